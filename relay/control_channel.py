"""The ``/v1`` control channel: handshake, clock, subscriptions, hosted timers, direct messages.

After the identity handshake (``sync.handshake``: the client signs the relay's nonce and the
address it dialled) the connection carries control messages (text frames) and, for every
document it subscribed to with a valid token, y-websocket messages prefixed with the document
id (binary frames). Requests are handled one at a time, in order: a reply to a ping means
everything sent before it has been handled.

A ``subscribe`` with a wrong token is a failed login, like a bad token on ``/doc``, but it comes
after the upgrade, and the admission checks its budgets only at the upgrade. So failed
subscriptions have a budget of their own per address and document (as ``/doc`` has, the same
``auth_failures_per_ip_per_minute``): once it is spent, the relay answers ``unauthorized``
without checking the token until it refills. The connection stays open, so its other rooms go
on, and other documents (a neighbour behind the same NAT) are not affected. A FocusMate client
never fails a subscription: a room id is the hash of its token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from focusmate.clock import Clock
from focusmate.errors import FocusMateError, ValidationError
from relay.admission import DOC_ID, Admission
from relay.config import RelayConfig
from relay.docs import DocHub
from relay.logs import fields
from relay.mailbox import Mailboxes
from relay.metrics import RelayMetrics
from relay.peer import Peer
from relay.redis_link import RedisUnavailable
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
from sync.ratelimit import BucketsByKey
from sync.wire import ProtocolError
from sync.ysync import decode_message

log = logging.getLogger("focusmate.relay")


class Sessions:
    """Authenticated connections by user id (a user may be online on several devices)."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[Peer]] = {}

    def add(self, peer: Peer) -> None:
        assert peer.identity is not None
        self._by_user.setdefault(peer.identity.user_id, set()).add(peer)

    def remove(self, peer: Peer) -> None:
        if peer.identity is None:
            return
        peers = self._by_user.get(peer.identity.user_id)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self._by_user[peer.identity.user_id]

    def online(self, user_id: str) -> Iterable[Peer]:
        return tuple(self._by_user.get(user_id, ()))


class ControlChannel:
    def __init__(
        self,
        *,
        hub: DocHub,
        mailboxes: Mailboxes,
        admission: Admission,
        sessions: Sessions,
        config: RelayConfig,
        clock: Clock,
        metrics: RelayMetrics,
        server_name: str,
    ) -> None:
        self.hub = hub
        self.mailboxes = mailboxes
        self.admission = admission
        self.sessions = sessions
        self.config = config
        self.limits = config.limits
        self.clock = clock
        self.metrics = metrics
        self.server_name = server_name
        per_minute = self.limits.auth_failures_per_ip_per_minute
        self._subscribe_failures = BucketsByKey(per_minute / 60.0, per_minute)

    def prune(self, *, now: float | None = None) -> int:
        """Forget the subscribe-failure budgets that have refilled (housekeeping calls this, as
        it does :meth:`Admission.prune`); returns how many went."""
        now = self.admission.monotonic() if now is None else now
        return self._subscribe_failures.prune(now=now)

    def tracked(self) -> int:
        """Per-address state held (for tests and metrics)."""
        return len(self._subscribe_failures)

    async def serve(self, peer: Peer, frames: AsyncIterator[bytes | str]) -> None:
        if not await self._authenticate(peer):
            return
        async for frame in frames:
            if isinstance(frame, bytes):
                doc_id, payload = control.decode_doc_frame(frame)
                state = self.hub.docs.get(doc_id)
                if doc_id not in peer.subscriptions or state is None:
                    raise ProtocolError(f"not subscribed to document {doc_id!r}")
                self.hub.receive(state, peer, decode_message(payload), payload)
                continue
            received_at = self.clock.now()
            try:
                message = control.decode(frame)
            except control.UnknownMessageType as err:
                peer.send_control(Error("unknown_type", str(err)))
                continue
            await self._handle(peer, message, received_at)

    async def _authenticate(self, peer: Peer) -> bool:
        nonce = handshake.new_nonce()
        peer.send_control(Challenge(nonce=nonce, server=self.server_name, time=self.clock.now()))
        try:
            first = await asyncio.wait_for(peer.ws.recv(), self.limits.handshake_seconds)
        except TimeoutError:
            self.admission.auth_failed(peer.ip, "handshake_timeout")
            peer.close(CloseCode.HANDSHAKE_TIMEOUT, "no hello within the handshake time")
            return False
        message = control.decode(first)
        if not isinstance(message, Hello):
            raise ProtocolError(f"expected hello, got {message.TYPE}")
        try:
            identity = handshake.check(message, nonce=nonce, addresses=self._addresses(peer))
        except ValidationError as err:
            self.admission.auth_failed(peer.ip, "bad_handshake")
            peer.close(CloseCode.UNAUTHORIZED, f"handshake failed: {err}")
            return False
        peer.identity = identity
        self.sessions.add(peer)
        peer.send_control(
            Welcome(
                user_id=identity.user_id,
                max_frame=self.limits.max_frame_bytes,
                max_docs=self.limits.max_docs_per_connection,
            )
        )
        await self.mailboxes.arrived(peer)
        return True

    def _addresses(self, peer: Peer) -> frozenset[str]:
        """What the handshake must be bound to: the configured public URLs, else this request's
        Host (fine on a LAN; a relay on the internet should set --public-url)."""
        if self.config.public_urls:
            return frozenset(handshake.normalise_address(url) for url in self.config.public_urls)
        host = peer.ws.request.headers.get("Host", "") if peer.ws.request else ""
        scheme = "wss" if self.config.tls else "ws"
        return frozenset({handshake.normalise_address(f"{scheme}://{host}")})

    async def _handle(self, peer: Peer, message: ControlMessage, received_at: float) -> None:
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
        now = self.admission.monotonic()
        # only well-formed ids have a budget: no room has any other id, so nothing to guess
        key = f"{peer.ip} {doc_id}" if DOC_ID.fullmatch(doc_id) else None
        if key is not None and self._subscribe_failures.peek(key, now=now) < 1:
            self.metrics.rejected.labels("auth_failures").inc()
            log.info("relay.subscribe_refused", extra=fields(ip=peer.ip, doc_id=doc_id))
            peer.send_control(Error("unauthorized", "too many failed logins", doc_id))
            return
        problem = self.admission.check_token(peer.ip, doc_id, message.token)
        if problem is not None:
            if key is not None:  # only a failure makes a bucket (prune forgets it once full)
                self._subscribe_failures.get(key, now=now).take(1, now=now)
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
        """Apply a member's timer command on the relay's clock (relay.timers); the new state
        reaches every subscriber as a document update, committed like any other."""
        state = self.hub.docs.get(request.doc_id)
        if request.doc_id not in peer.subscriptions or state is None:
            peer.send_control(Error("not_subscribed", "subscribe to the room first", request.id))
            return
        assert peer.identity is not None
        async with state.timer_lock:
            try:
                async with self.hub.exclusive(state.doc_id):
                    new_state, delta = host_command(
                        doc_id=request.doc_id,
                        merged=state.merged(),
                        member=peer.identity,
                        command=request.command,
                        now=self.clock.now(),
                        client_id=state.relay_client_id,
                    )
                    if delta is not None:
                        committed = self.hub.submit_update(state, delta, origin=None)
                        if committed is not None:
                            await committed
            except FocusMateError as err:
                peer.send_control(Error("timer_refused", str(err), request.id))
                return
            except RedisUnavailable as err:
                peer.send_control(Error("timer_refused", f"try again: {err}", request.id))
                return
        self.metrics.timer_commands.inc()
        peer.send_control(TimerApplied(request.id, request.doc_id, new_state.to_dict()))
