"""The relay server: websockets in, documents, timers and mailboxes behind, health and metrics out.

Endpoints (all on one port):

=====================================  ==========================================================
``GET /healthz``                       JSON status with a storage check (503 when storage fails)
``GET /metrics``                       Prometheus text format
``ws /doc/<doc_id>?token=<token>``     plain y-websocket: any Yjs client syncs one document
``ws /v1``                             the control channel (``sync.control``): handshake, clock,
                                       hosted timers, DMs, and many documents multiplexed
=====================================  ==========================================================

Who may connect is :mod:`relay.admission`'s call; ``/v1`` is :mod:`relay.control_channel`.
Every frame is charged to three token buckets (the connection's messages and bytes, and the
sender's address); an empty bucket pauses reading that connection, so a flood slows only its
sender. A malformed frame closes its own connection with 4400 and a reason; nothing else is
affected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import logging
import ssl
import time
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from focusmate.clock import Clock, SystemClock
from relay import __version__
from relay.admission import CONTROL_PATH, DOC_PREFIX, Admission
from relay.committer import Committer
from relay.config import RelayConfig
from relay.control_channel import ControlChannel, Sessions
from relay.doclog import DocLog, SqliteDocLog
from relay.docs import DocHub
from relay.keepalive import Keepalive
from relay.logs import fields
from relay.mailbox import Mailboxes
from relay.mailbox_store import MailStore, SqliteMailStore
from relay.metrics import CONTENT_TYPE, RelayMetrics
from relay.peer import Outbox, Peer
from relay.redis_link import RedisLink, RedisUnavailable
from relay.shared_clock import SharedClock
from relay.shared_log import SharedDocLog
from relay.shared_mailbox import SharedMailStore
from relay.storage import RelayStorage
from relay.turns import Turns
from sync.control import CloseCode
from sync.wire import ProtocolError
from sync.ysync import decode_message

log = logging.getLogger("focusmate.relay")
SERVER_NAME = f"focusmate-relay/{__version__}"
HOUSEKEEPING_SECONDS = 5.0
MAIL_EXPIRY_SECONDS = 600.0
LOOP_PROBE_SECONDS = 0.1
# CPython 3.11 runs a full collection whenever its oldest generation has grown by 25 %. While 10k
# clients connect that is ~10 of them, each walking every open connection's objects (up to
# 0.9 s at 10k on the benchmark machine, bench/gc_storm.py) and stalling every room. Open
# connections are not garbage; what closed ones leave in reference cycles is. So the relay pushes
# CPython's own full collections far back and runs one itself, between two housekeeping rounds,
# once enough connections have closed since the last (a quarter of those open, like CPython's
# rule, but counting departures instead of arrivals): no full collection during a reconnect
# storm, and the memory of departed connections still comes back.
FULL_COLLECTION_THRESHOLD = 1000  # younger collections before CPython's own full one (was 10)
CLOSED_BEFORE_COLLECTING = 1000


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
        self.clock: Clock = clock or SystemClock()
        self.monotonic = monotonic
        self.metrics = RelayMetrics(shared=config.redis_url is not None)
        # SQLite in the data directory (the default), or Redis shared with other relay processes
        self.storage: RelayStorage | None = None
        self.committer: Committer | None = None
        self.link: RedisLink | None = None
        self.shared_clock: SharedClock | None = None
        doclog: DocLog
        store: MailStore
        if config.redis_url:
            self.link = RedisLink(config.redis_url, on_batch=self._observe_batch)
            self.clock = self.shared_clock = SharedClock(self.link, self.clock)
            doclog = SharedDocLog(self.link, self.metrics)
            store = SharedMailStore(self.link, self.limits)
        else:
            self.storage = RelayStorage(config.database, synchronous=config.synchronous)
            self.committer = Committer(
                self.storage, on_batch=self._observe_batch, clock=self.clock.now
            )
            doclog = SqliteDocLog(self.committer)
            store = SqliteMailStore(self.committer, self.limits)
        self.hub = DocHub(
            log=doclog,
            config=config,
            metrics=self.metrics,
            clock=self.clock,
            monotonic=monotonic,
        )
        self.sessions = Sessions()
        self.mailboxes = Mailboxes(
            store=store,
            limits=self.limits,
            clock=self.clock,
            metrics=self.metrics,
            online=self.sessions.online,
        )
        self.outbox = Outbox()
        self.peers: set[Peer] = set()
        self.turns = Turns(self.limits.ip_frames_per_turn)
        self.keepalive = Keepalive(interval=config.keepalive_seconds, monotonic=monotonic)
        self.admission = Admission(
            self.limits,
            metrics=self.metrics,
            monotonic=monotonic,
            trust_forwarded_for=config.trust_forwarded_for,
        )
        self.control = ControlChannel(
            hub=self.hub,
            mailboxes=self.mailboxes,
            admission=self.admission,
            sessions=self.sessions,
            config=config,
            clock=self.clock,
            metrics=self.metrics,
            server_name=SERVER_NAME,
        )
        self._server: Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._loop_probe: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._gc_started: float | None = None
        self._gc_threshold: tuple[int, int, int] | None = None
        self.closed_since_collection = 0
        self.closed_before_collecting = CLOSED_BEFORE_COLLECTING
        self._last_expiry = monotonic()
        self._stopping = False
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.link is not None and self.shared_clock is not None:
            await self.link.start()
            await self.shared_clock.start()
            self.link.on_process_dead = self.hub.process_dead
        if self.committer is not None:
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
            ping_interval=None,  # relay/keepalive.py: frames count as signs of life too
            close_timeout=5,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._housekeeping = loop.create_task(self._housekeep())
        self._loop_probe = loop.create_task(self._probe_loop())
        self._keepalive = loop.create_task(self._keepalive_loop())
        gc.callbacks.append(self._on_gc)
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(self._gc_threshold[0], self._gc_threshold[1], FULL_COLLECTION_THRESHOLD)
        await self.mailboxes.refresh_gauges()
        log.info(
            "relay.listening",
            extra=fields(
                host=self.config.host,
                port=self.port,
                tls=self.config.tls,
                data_dir=str(self.config.data_dir) if self.link is None else None,
                redis=self.link.process_id if self.link is not None else None,
                version=__version__,
            ),
        )

    async def stop(self) -> None:
        """Drain: stop accepting, close every connection with 1001, commit what was received."""
        if self._stopping:
            return
        self._stopping = True
        log.info("relay.draining", extra=fields(connections=len(self.peers)))
        for task in (self._housekeeping, self._loop_probe, self._keepalive):
            if task is not None:
                task.cancel()
        await self.keepalive.close()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
        if self._server is not None:
            self._server.close(close_connections=True, reason="relay shutting down")
            try:
                await asyncio.wait_for(self._server.wait_closed(), self.config.drain_seconds)
            except TimeoutError:
                log.warning("relay.drain_timeout", extra=fields(connections=len(self.peers)))
        if self.committer is not None:
            await self.committer.close()
        if self.link is not None and self.shared_clock is not None:
            await self.shared_clock.close()
            await self.link.close()
        log.info("relay.stopped")

    async def _housekeep(self) -> None:
        self._last_expiry = self.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self.housekeep()
            except Exception:
                log.exception("relay.housekeeping_failed")

    async def housekeep(self) -> None:
        """One pass (every HOUSEKEEPING_SECONDS): unload idle documents, forget per-address
        state that has refilled, expire old mail. What connections leave behind goes here, so
        memory returns to its baseline after any amount of churn."""
        self.hub.evict_idle()
        self.admission.prune()
        self.control.prune()
        self.metrics.address_entries.set(self.admission.tracked() + self.control.tracked())
        if self.closed_since_collection >= max(self.closed_before_collecting, len(self.peers) // 4):
            gc.collect()  # (resets closed_since_collection, through _on_gc)
        if self.monotonic() - self._last_expiry >= MAIL_EXPIRY_SECONDS:
            self._last_expiry = self.monotonic()
            await self.mailboxes.expire()

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive.sweep_seconds)
            try:
                self.metrics.dropped_silent.inc(self.keepalive.sweep(self.peers))
            except Exception:
                log.exception("relay.keepalive_failed")

    async def _probe_loop(self) -> None:
        """Measure event-loop stalls (a long callback, a full garbage collection): every one
        delays every connection, so operators should see them."""
        while True:
            due = time.perf_counter() + LOOP_PROBE_SECONDS
            await asyncio.sleep(LOOP_PROBE_SECONDS)
            self.metrics.loop_lag.observe(max(0.0, time.perf_counter() - due))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.metrics.gc_pauses.observe(time.perf_counter() - self._gc_started)
            self._gc_started = None
            self.closed_since_collection = 0

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
            if self.link is not None and self.shared_clock is not None:
                self.metrics.redis_up.set(1 if self.link.connected.is_set() else 0)
                self.metrics.clock_offset.set(self.shared_clock.offset)
            return _response(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE)
        if not (path.startswith(DOC_PREFIX) or path == CONTROL_PATH):
            return _text(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        if self._stopping:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, "relay shutting down\n")
        refusal = self.admission.refusal(self.admission.ip(connection), path)
        if refusal is None:
            return None
        status, text = refusal
        return _text(status, text + "\n")

    async def _healthz(self, connection: ServerConnection) -> Response:
        problem = await self.hub.log.check()
        body = {
            "status": "ok" if problem is None else "failing",
            "storage": "ok" if problem is None else problem,
            "version": __version__,
            "connections": len(self.peers),
            "documents_in_memory": len(self.hub.docs),
            "commit_queue": self.hub.log.queued,
        }
        status = HTTPStatus.OK if problem is None else HTTPStatus.SERVICE_UNAVAILABLE
        return _response(status, json.dumps(body).encode(), "application/json")

    # -- websocket connections ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path if ws.request else "")
        endpoint = "doc" if path.path.startswith(DOC_PREFIX) else "control"
        ip = self.admission.ip(ws)
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
        self.admission.connected(ip)
        self.metrics.connections.labels(endpoint).inc()
        self.metrics.connections_total.labels(endpoint).inc()
        try:
            if endpoint == "doc":
                await self._serve_doc(peer, path.path[len(DOC_PREFIX) :], path.query)
            else:
                await self.control.serve(peer, self._frames(peer))
        except ProtocolError as err:
            self.metrics.rejected.labels("bad_frame").inc()
            peer.close(CloseCode.BAD_FRAME, f"bad frame: {err}")
        except RedisUnavailable as err:
            log.error("relay.redis_unavailable", extra=fields(ip=ip, error=str(err)))
            peer.close(CloseCode.TRY_AGAIN, "the relay cannot reach its storage; try again")
        except ConnectionClosed:
            pass
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException:  # a bug, or a Rust panic in pycrdt (PanicException): this peer only
            log.exception("relay.connection_failed", extra=fields(ip=ip))
            peer.close(CloseCode.INTERNAL, "internal error")
        finally:
            self._forget(peer)
            await self.mailboxes.left(peer)
            await peer.finish()

    def _forget(self, peer: Peer) -> None:
        self.peers.discard(peer)
        self.closed_since_collection += 1
        self.admission.disconnected(peer.ip)
        self.metrics.connections.labels(peer.endpoint).dec()
        self.hub.drop_peer(peer)
        self.sessions.remove(peer)

    async def _frames(self, peer: Peer) -> collections.abc.AsyncIterator[bytes | str]:
        """The connection's frames, each charged to the rate limits, counted, and handled in
        its address's turn (relay/turns.py)."""
        ip_bucket = self.admission.message_bucket(peer.ip)
        async for frame in peer.ws:
            if peer.closed:  # closed by the relay (a failed commit, a bad frame): read no more,
                return  # or its buffered frames would still be stored after the client resent
            size = len(frame)
            self.metrics.bytes_in.inc(size)
            peer.heard = now = self.monotonic()
            wait = peer.throttle(size, now=now, ip_bucket=ip_bucket)
            if wait > 0:
                self.metrics.rejected.labels("rate_limited").inc()
                await asyncio.sleep(wait)
            if not self.turns.try_take(peer.ip):
                await self.turns.wait(peer.ip)
            if peer.closed:  # (while it waited)
                return
            yield frame
            if peer.reading_paused():
                await peer.wait_for_inflight_room()

    # -- /doc/<id>: plain y-websocket -----------------------------------------------------------

    async def _serve_doc(self, peer: Peer, doc_id: str, query: str) -> None:
        tokens = parse_qs(query).get("token")
        problem = self.admission.check_token(peer.ip, doc_id, tokens[0] if tokens else None)
        if problem is not None:
            peer.close(*problem)
            return
        state = await self.hub.subscribe(doc_id, peer)
        async for frame in self._frames(peer):
            if isinstance(frame, str):
                raise ProtocolError("text frame on a y-websocket endpoint")
            self.hub.receive(state, peer, decode_message(frame), frame)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers()  # (websockets adds the Server header)
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    return Response(status.value, status.phrase, headers, body)


def _text(status: HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")
