"""The relay server: websockets in, documents, timers and mailboxes behind, health and metrics out.

Endpoints (all on one port):

=====================================  ==========================================================
``GET /healthz``                       JSON status with a storage check (503 when storage fails)
``GET /metrics``                       Prometheus text format
``ws /doc/<doc_id>?token=<token>``     plain y-websocket: any Yjs client syncs one document
``ws /v1``                             the control channel (``sync.control``): handshake, clock,
                                       hosted timers, DMs, and many documents multiplexed
=====================================  ==========================================================

Every frame is charged to three token buckets (the connection's messages and bytes, and the
sender's IP); an empty bucket pauses reading that connection, so a flood slows only its sender.
A malformed frame closes its own connection with 4400 and a reason; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from focusmate.clock import Clock, SystemClock
from focusmate.errors import FocusMateError, ValidationError
from focusmate.invite import room_id_for_token
from relay import __version__
from relay.committer import Committer
from relay.config import RelayConfig
from relay.docs import DocHub, DocState
from relay.logs import fields
from relay.mailbox import Mailboxes
from relay.metrics import CONTENT_TYPE, RelayMetrics
from relay.peer import Outbox, Peer
from relay.ratelimit import BucketsByKey
from relay.storage import RelayStorage
from relay.timers import host_command
from sync import control, handshake
from sync.control import (
    Challenge,
    CloseCode,
    ControlMessage,
    DmAck,
    DmRead,
    DmSend,
    Error,
    Hello,
    Ping,
    Pong,
    Subscribe,
    Subscribed,
    TimerApplied,
    TimerRequest,
    Unsubscribe,
    Welcome,
)
from sync.wire import ProtocolError
from sync.ysync import decode_message

log = logging.getLogger("focusmate.relay")
SERVER_NAME = f"focusmate-relay/{__version__}"
DOC_ID = re.compile(r"[0-9a-f]{32}")
DOC_PREFIX = "/doc/"
CONTROL_PATH = "/v1"
HOUSEKEEPING_SECONDS = 5.0
MAIL_EXPIRY_SECONDS = 600.0


class Relay:
    def __init__(
        self,
        config: RelayConfig,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.limits = config.limits
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.metrics = RelayMetrics()
        self.storage = RelayStorage(config.database, synchronous=config.synchronous)
        self.committer = Committer(self.storage, on_batch=self._observe_batch, clock=self.clock.now)
        self.hub = DocHub(
            committer=self.committer,
            config=config,
            metrics=self.metrics,
            clock=self.clock,
            monotonic=monotonic,
        )
        self.mailboxes = Mailboxes(
            committer=self.committer,
            limits=self.limits,
            clock=self.clock,
            metrics=self.metrics,
            online=self._online,
        )
        self.outbox = Outbox()
        self.peers: set[Peer] = set()
        self._users: dict[str, set[Peer]] = {}
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._ip_messages = BucketsByKey(
            self.limits.ip_messages_per_second, self.limits.ip_message_burst
        )
        self._ip_connects = BucketsByKey(
            self.limits.connects_per_ip_per_second, self.limits.connect_burst_per_ip
        )
        per_minute = self.limits.auth_failures_per_ip_per_minute
        self._auth_failures = BucketsByKey(per_minute / 60.0, per_minute)
        self._server: Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopping = False
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.committer.start()
        tls = None
        if self.config.tls_cert is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=self.limits.max_frame_bytes,
            max_queue=16,
            compression=None,
            ssl=tls,
            server_header=SERVER_NAME,
            ping_interval=30,
            ping_timeout=30,
            close_timeout=5,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())
        await self.mailboxes.refresh_gauges()
        log.info(
            "relay.listening",
            extra=fields(
                host=self.config.host,
                port=self.port,
                tls=self.config.tls,
                data_dir=str(self.config.data_dir),
                version=__version__,
            ),
        )

    async def stop(self) -> None:
        """Drain: stop accepting, close every connection with 1001, commit what was received."""
        if self._stopping:
            return
        self._stopping = True
        log.info("relay.draining", extra=fields(connections=len(self.peers)))
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._server is not None:
            self._server.close(close_connections=True, reason="relay shutting down")
            try:
                await asyncio.wait_for(self._server.wait_closed(), self.config.drain_seconds)
            except TimeoutError:
                log.warning("relay.drain_timeout", extra=fields(connections=len(self.peers)))
        await self.committer.close()
        log.info("relay.stopped")

    async def _housekeep(self) -> None:
        last_expiry = self.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                self.hub.evict_idle()
                if self.monotonic() - last_expiry >= MAIL_EXPIRY_SECONDS:
                    last_expiry = self.monotonic()
                    await self.mailboxes.expire()
            except Exception:
                log.exception("relay.housekeeping_failed")

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.commit_batch.observe(size)
        self.metrics.commit_seconds.observe(seconds)

    # -- HTTP -----------------------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return await self._healthz(connection)
        if path == "/metrics":
            await self.mailboxes.refresh_gauges()
            return _response(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE)
        if not (path.startswith(DOC_PREFIX) or path == CONTROL_PATH):
            return _text(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        if self._stopping:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, "relay shutting down\n")
        ip = self._ip(connection)
        now = self.monotonic()
        refusal = None
        if len(self.peers) >= self.limits.max_connections:
            refusal = (HTTPStatus.SERVICE_UNAVAILABLE, "relay full", "max_connections")
        elif self._per_ip[ip] >= self.limits.max_connections_per_ip:
            refusal = (HTTPStatus.TOO_MANY_REQUESTS, "too many connections", "connections_per_ip")
        elif not self._ip_connects.get(ip, now=now).try_take(1, now=now):
            refusal = (HTTPStatus.TOO_MANY_REQUESTS, "connecting too fast", "connect_rate")
        elif self._auth_failures.get(_auth_key(ip, path), now=now).available(now=now) < 1:
            refusal = (HTTPStatus.TOO_MANY_REQUESTS, "too many failed logins", "auth_failures")
        if refusal is None:
            return None
        status, text, reason = refusal
        self.metrics.rejected.labels(reason).inc()
        return _text(status, text + "\n")

    async def _healthz(self, connection: ServerConnection) -> Response:
        try:
            problem = await asyncio.wait_for(self.committer.read(lambda s: s.check()), 5.0)
        except TimeoutError:
            problem = "storage did not answer within 5 s"
        body = {
            "status": "ok" if problem is None else "failing",
            "storage": "ok" if problem is None else problem,
            "version": __version__,
            "connections": len(self.peers),
            "documents_in_memory": len(self.hub.docs),
            "commit_queue": self.committer.queued,
        }
        status = HTTPStatus.OK if problem is None else HTTPStatus.SERVICE_UNAVAILABLE
        return _response(status, json.dumps(body).encode(), "application/json")

    # -- websocket connections ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path if ws.request else "")
        endpoint = "doc" if path.path.startswith(DOC_PREFIX) else "control"
        ip = self._ip(ws)
        peer = Peer(
            ws,
            ip=ip,
            endpoint=endpoint,
            limits=self.limits,
            metrics=self.metrics,
            outbox=self.outbox,
            now=self.monotonic(),
        )
        self.peers.add(peer)
        self._per_ip[ip] += 1
        self.metrics.connections.labels(endpoint).inc()
        self.metrics.connections_total.labels(endpoint).inc()
        try:
            if endpoint == "doc":
                await self._serve_doc(peer, path.path[len(DOC_PREFIX) :], path.query)
            else:
                await self._serve_control(peer)
        except ProtocolError as err:
            self.metrics.rejected.labels("bad_frame").inc()
            peer.close(CloseCode.BAD_FRAME, f"bad frame: {err}")
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("relay.connection_failed", extra=fields(ip=ip))
            peer.close(CloseCode.INTERNAL, "internal error")
        finally:
            self._forget(peer)
            await peer.finish()

    def _ip(self, connection: ServerConnection) -> str:
        return _peer_ip(connection, trust_forwarded_for=self.config.trust_forwarded_for)

    def _forget(self, peer: Peer) -> None:
        self.peers.discard(peer)
        self._per_ip[peer.ip] -= 1
        if self._per_ip[peer.ip] <= 0:
            del self._per_ip[peer.ip]
        self.metrics.connections.labels(peer.endpoint).dec()
        self.hub.drop_peer(peer)
        if peer.identity is not None:
            sessions = self._users.get(peer.identity.user_id)
            if sessions is not None:
                sessions.discard(peer)
                if not sessions:
                    del self._users[peer.identity.user_id]

    def _online(self, user_id: str) -> Iterable[Peer]:
        return tuple(self._users.get(user_id, ()))

    async def _frames(self, peer: Peer) -> collections.abc.AsyncIterator[bytes | str]:
        """The connection's frames, each charged to the rate limits and counted."""
        ip_bucket = self._ip_messages.get(peer.ip, now=self.monotonic())
        async for frame in peer.ws:
            size = len(frame)
            self.metrics.bytes_in.inc(size)
            wait = peer.throttle(size, now=self.monotonic(), ip_bucket=ip_bucket)
            if wait > 0:
                self.metrics.rejected.labels("rate_limited").inc()
                await asyncio.sleep(wait)
            yield frame
            if peer.inflight >= self.limits.max_inflight_updates:
                await peer.wait_for_inflight_room()

    def _check_token(self, peer: Peer, doc_id: str, token: str | None) -> tuple[int, str] | None:
        """None when the token opens ``doc_id``; else a close code and reason (and the failure
        is counted against the sender's address)."""
        if not DOC_ID.fullmatch(doc_id):
            self.metrics.rejected.labels("bad_doc_id").inc()
            return CloseCode.NOT_FOUND, "malformed document id"
        if token is None or not hmac.compare_digest(room_id_for_token(token), doc_id):
            self._auth_failed(peer, "bad_token", doc_id=doc_id)
            return CloseCode.UNAUTHORIZED, "invalid token for this document"
        return None

    def _auth_failed(self, peer: Peer, reason: str, *, doc_id: str | None = None) -> None:
        """Count a failed login against the address (and, for a token, that document only: a
        stock client retrying a mistyped URL forever must not lock its whole NAT out)."""
        self.metrics.rejected.labels(reason).inc()
        now = self.monotonic()
        key = _auth_key(peer.ip, DOC_PREFIX + doc_id if doc_id else CONTROL_PATH)
        self._auth_failures.get(key, now=now).take(1, now=now)
        log.info("relay.auth_failed", extra=fields(ip=peer.ip, reason=reason))

    # -- /doc/<id>: plain y-websocket -----------------------------------------------------------

    async def _serve_doc(self, peer: Peer, doc_id: str, query: str) -> None:
        tokens = parse_qs(query).get("token")
        problem = self._check_token(peer, doc_id, tokens[0] if tokens else None)
        if problem is not None:
            peer.close(*problem)
            return
        state = await self.hub.subscribe(doc_id, peer)
        async for frame in self._frames(peer):
            if isinstance(frame, str):
                raise ProtocolError("text frame on a y-websocket endpoint")
            self.hub.receive(state, peer, decode_message(frame), frame)

    # -- /v1: the control channel ---------------------------------------------------------------

    async def _serve_control(self, peer: Peer) -> None:
        if not await self._authenticate(peer):
            return
        async for frame in self._frames(peer):
            if isinstance(frame, bytes):
                doc_id, payload = control.decode_doc_frame(frame)
                state = self.hub.docs.get(doc_id)
                if doc_id not in peer.subscriptions or state is None:
                    raise ProtocolError(f"not subscribed to document {doc_id!r}")
                self.hub.receive(state, peer, decode_message(payload), payload)
            else:
                received_at = self.clock.now()
                try:
                    message = control.decode(frame)
                except control.UnknownMessageType as err:
                    peer.send_control(Error("unknown_type", str(err)))
                    continue
                await self._control(peer, message, received_at)

    async def _authenticate(self, peer: Peer) -> bool:
        nonce = handshake.new_nonce()
        peer.send_control(Challenge(nonce=nonce, server=SERVER_NAME, time=self.clock.now()))
        try:
            first = await asyncio.wait_for(peer.ws.recv(), self.limits.handshake_seconds)
        except TimeoutError:
            self._auth_failed(peer, "handshake_timeout")
            peer.close(CloseCode.HANDSHAKE_TIMEOUT, "no hello within the handshake time")
            return False
        message = control.decode(first)
        if not isinstance(message, Hello):
            raise ProtocolError(f"expected hello, got {message.TYPE}")
        try:
            identity = handshake.check(message, nonce=nonce, addresses=self._addresses(peer))
        except ValidationError as err:
            self._auth_failed(peer, "bad_handshake")
            peer.close(CloseCode.UNAUTHORIZED, f"handshake failed: {err}")
            return False
        peer.identity = identity
        self._users.setdefault(identity.user_id, set()).add(peer)
        peer.send_control(
            Welcome(
                user_id=identity.user_id,
                max_frame=self.limits.max_frame_bytes,
                max_docs=self.limits.max_docs_per_connection,
            )
        )
        await self.mailboxes.deliver_waiting(peer)
        return True

    def _addresses(self, peer: Peer) -> frozenset[str]:
        if self.config.public_urls:
            return frozenset(handshake.normalise_address(url) for url in self.config.public_urls)
        host = peer.ws.request.headers.get("Host", "") if peer.ws.request else ""
        scheme = "wss" if self.config.tls else "ws"
        return frozenset({handshake.normalise_address(f"{scheme}://{host}")})

    async def _control(self, peer: Peer, message: ControlMessage, received_at: float) -> None:
        if isinstance(message, Ping):
            peer.send_control(Pong(message.id, message.t0, received_at, self.clock.now()))
        elif isinstance(message, Subscribe):
            await self._subscribe(peer, message)
        elif isinstance(message, Unsubscribe):
            self.hub.unsubscribe(message.doc_id, peer)
        elif isinstance(message, TimerRequest):
            await self._timer(peer, message)
        elif isinstance(message, DmSend):
            ref = message.envelope.get("id")
            try:
                await self.mailboxes.send(peer, message.envelope)
            except ValidationError as err:
                peer.send_control(
                    Error("dm_refused", str(err), ref if isinstance(ref, str) else None)
                )
        elif isinstance(message, DmAck):
            await self.mailboxes.acknowledge(peer, message.ids)
        elif isinstance(message, DmRead):
            try:
                await self.mailboxes.mark_read(peer, message.sender, message.message_ids)
            except ValidationError as err:
                peer.send_control(Error("bad_request", str(err)))
        else:
            raise ProtocolError(f"a client does not send {message.TYPE}")

    async def _subscribe(self, peer: Peer, message: Subscribe) -> None:
        doc_id = message.doc_id
        problem = self._check_token(peer, doc_id, message.token)
        if problem is not None:
            peer.send_control(Error("unauthorized", problem[1], doc_id))
            return
        if doc_id in peer.subscriptions:
            peer.send_control(Subscribed(doc_id))
            return
        if len(peer.subscriptions) >= self.limits.max_docs_per_connection:
            self.metrics.rejected.labels("too_many_documents").inc()
            limit = self.limits.max_docs_per_connection
            peer.send_control(
                Error("too_many_documents", f"at most {limit} documents per connection", doc_id)
            )
            return
        peer.send_control(Subscribed(doc_id))
        await self.hub.subscribe(doc_id, peer, prefix=control.doc_frame_prefix(doc_id))

    async def _timer(self, peer: Peer, request: TimerRequest) -> None:
        state = self.hub.docs.get(request.doc_id)
        if request.doc_id not in peer.subscriptions or state is None:
            peer.send_control(Error("not_subscribed", "subscribe to the room first", request.id))
            return
        assert peer.identity is not None
        async with state.timer_lock:
            try:
                new_state, delta = host_command(
                    doc_id=request.doc_id,
                    merged=state.merged(),
                    member=peer.identity,
                    command=request.command,
                    now=self.clock.now(),
                    client_id=state.relay_client_id,
                )
            except FocusMateError as err:
                peer.send_control(Error("timer_refused", str(err), request.id))
                return
            if delta is not None:
                await self._commit_own_update(state, delta)
        self.metrics.timer_commands.inc()
        peer.send_control(TimerApplied(request.id, request.doc_id, new_state.to_dict()))

    async def _commit_own_update(self, state: DocState, update: bytes) -> None:
        future = self.hub.submit_update(state, update, origin=None)
        if future is not None:
            await future


def _auth_key(ip: str, path: str) -> str:
    """Failed logins are budgeted per address for handshakes, per address and document for
    tokens (256-bit tokens cannot be guessed; the budget only stops hammering)."""
    return f"{ip} {path}" if path.startswith(DOC_PREFIX) else ip


def _peer_ip(connection: ServerConnection, *, trust_forwarded_for: bool) -> str:
    """The client's address; behind a reverse proxy (``--trust-forwarded-for``) the one the
    proxy appended last to X-Forwarded-For, as a client can forge the earlier entries."""
    if trust_forwarded_for and connection.request is not None:
        forwarded = connection.request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    address = connection.remote_address
    return str(address[0]) if address else "unknown"


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers()  # (websockets adds the Server header)
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    return Response(status.value, status.phrase, headers, body)


def _text(status: HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")
