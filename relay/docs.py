"""Documents in memory: who is subscribed, what the document holds, and presence.

Rules:

* An update is validated, committed (group commit), and only then added to the document and
  forwarded to every other subscriber, in commit order. So anything a client has received
  survives ``kill -9``, and a new subscriber's sync step 2 never contains an uncommitted update.
* The document is kept as merged update bytes (``base``) plus the updates committed since
  (``pending``), merged when someone needs the whole state or every ``MERGE_EVERY`` updates.
  What the relay serves never comes from applying updates one by one, which sidesteps pycrdt's
  out-of-order apply bug (the shadow below applies them, but only to check them).
* Awareness: a client id belongs to the connection that first announced it; others cannot change
  or remove it. When a connection goes, its client ids are announced as removed.
* A document with no subscribers and no write in flight leaves memory after
  ``idle_document_seconds``; its log is compacted on the way out and it reloads on demand.
* Each update is also checked against the document, not only alone (see :class:`Shadow`): two
  updates valid alone can together make pycrdt panic, which would poison the room for every
  pycrdt client (each new subscriber's sync step 2 panics) and break compaction.
* With several relay processes on one Redis (relay/shared_log.py) the log also holds other
  processes' entries: each is checked the same way before it goes live here, and presence
  changes go through Redis (which owns the ownership rule) and come back to every process.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, cast

from pycrdt import Doc, get_state, get_update, merge_updates

from focusmate.clock import Clock
from focusmate.document import validate_update
from focusmate.errors import ValidationError
from relay.config import RelayConfig
from relay.doclog import DocLog
from relay.logs import fields
from relay.metrics import RelayMetrics
from relay.peer import Peer, frame_for
from relay.shared_log import SharedDocLog
from relay.storage import LoadedDoc, UnfoldableLog, fold_log
from relay.timers import new_client_id
from sync.control import CloseCode
from sync.wire import ProtocolError
from sync.ysync import (
    AuthDenied,
    AwarenessEntry,
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_message,
    update_message,
)

log = logging.getLogger("focusmate.relay")
EMPTY_UPDATE = b"\x00\x00"
EMPTY_STATE = b"\x00"
MERGE_EVERY = 64  # pending updates merged into the base in small steps (64: ~0.2 ms)


@dataclass(slots=True)
class Subscription:
    """One peer's view of one document; ``prefix`` frames messages for its endpoint."""

    peer: Peer
    prefix: bytes
    awareness_ids: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Presence:
    clock: int
    entry: AwarenessEntry
    owner: Peer | str | None  # a connection here, or (shared logs) "<process>:<connection>"


class ConflictingUpdate(Exception):
    """An update that pycrdt cannot integrate into the document (it panics)."""


# A snapshot this big is committed off the loop: a flooded room's took up to 20 ms there, the
# calm rooms' p99 during a flood (bench/flood_fairness.py ``conns``: 1.9-2.0x with every snapshot
# on the loop, 1.2-1.4x with them on the thread). The small ones of busy ordinary rooms commit
# with the updates: sending every snapshot to the thread cost 5-10 % of saturated fan-out
# (bench/relay_fanout.py), as the committer then waits for the GIL.
SLOW_SNAPSHOT_BYTES = 32 * 1024


class Shadow:
    """The document integrated by pycrdt (no observer, so freed with its DocState), holding
    what is committed plus what is being committed, in order: each update is applied here
    before it is committed, so one pycrdt cannot integrate is refused instead of stored.

    The relay serves byte-wise merges of its log, and merging an update that reuses ids the
    document already has with other content (equivocation) gives bytes no pycrdt client can
    apply, even when applying the two in that order works (the second is ignored). So the part
    of an update the document already holds is cut off before it is stored: a legitimate
    duplicate (the same edit through two paths) shrinks to what is new, an equivocation to
    nothing. An update that is entirely new (the usual case) is stored as sent.
    """

    __slots__ = ("_doc",)

    def __init__(self, parts: list[bytes]) -> None:
        self._doc: Doc[Any] = Doc()
        for part in parts:
            self._doc.apply_update(part)

    def integrate(self, update: bytes) -> bytes:
        """Apply ``update``; returns the part of it to store (EMPTY_UPDATE if nothing is new).
        Raises ConflictingUpdate (the shadow must then be rebuilt: Yrs may have half-applied
        it)."""
        try:
            known = self._doc.get_state()
            novel = update if known == EMPTY_STATE else get_update(update, known)
            if novel != update and novel != get_update(update, EMPTY_STATE):
                update = novel  # part of it was known: keep only the rest
            self._doc.apply_update(update)
        except BaseException as err:  # pycrdt raises ValueError or panics (PanicException)
            if isinstance(err, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                raise
            raise ConflictingUpdate(str(err)) from None
        return update


@dataclass(slots=True, eq=False)
class InFlight:
    """An update submitted for commit: what is stored, who sent it, and whether part of what
    they sent was cut off as already held (by an update that may yet fail)."""

    update: bytes
    origin: Peer | None
    cut: bool
    # senders of updates that arrived while this was the last in flight and were cut entirely
    # (made on the first: this is on every update's path, and almost always stays empty)
    dependents: list[Peer] | None = None


class DocState:
    __slots__ = (
        "_base",
        "awareness",
        "compact_after",
        "doc_id",
        "idle_since",
        "inflight",
        "last_id",
        "metrics",
        "pending",
        "relay_client_id",
        "shadow",
        "shadow_failed",
        "subs",
        "timer_lock",
        "unconfirmed",
        "unfoldable",
        "unsnapshotted",
    )

    def __init__(
        self,
        doc_id: str,
        loaded: LoadedDoc,
        *,
        now: float,
        metrics: RelayMetrics,
        compact_after: int,
    ) -> None:
        self.doc_id = doc_id
        # Jittered per document: rooms written at the same pace would otherwise all compact in
        # the same moment (measured: a 180 ms fan-out stall with 50 rooms at 2000 updates/s).
        self.compact_after = max(1, round(compact_after * random.uniform(0.5, 1.5)))
        self.metrics = metrics
        self._base: bytes | None = None
        self.pending: list[bytes] = []
        self.subs: dict[Peer, Subscription] = {}
        self.awareness: dict[int, Presence] = {}
        self.inflight = 0
        self.idle_since: float | None = now
        self.relay_client_id = new_client_id()  # the relay's own edits (hosted timer commands)
        self.timer_lock = asyncio.Lock()  # one hosted command at a time, each on the last state
        # Built on the first write, dropped when the last subscriber leaves (see Shadow).
        self.shadow: Shadow | None = None
        self.unconfirmed: deque[InFlight] = deque()  # submitted, not committed or failed yet
        self.shadow_failed = False  # the stored log itself cannot be integrated (logged once)
        self.unfoldable = False  # compaction keeps the log merged byte-wise (logged once)
        self.take(loaded)

    def take(self, loaded: LoadedDoc) -> None:
        """Hold ``loaded`` (at load, or again when a shared log was reloaded). A shared log's
        entries were written by several processes: each is checked against those before it,
        as updates are before they are stored (a conflicting one is left out, an overlapping
        one cut), and the check's document is kept for the entries still to come."""
        self._base = None
        self.last_id = loaded.last_id
        self.unsnapshotted = loaded.pending
        if loaded.trusted:
            self.pending = list(loaded.updates)
            self.shadow = None
            return
        self.pending = []
        self.shadow = Shadow([])
        for update in loaded.updates:
            try:
                stored = self.shadow.integrate(update)
            except ConflictingUpdate as err:
                self._left_out(str(err))
                self.shadow = Shadow(self.pending)
                continue
            if stored != EMPTY_UPDATE:
                self.pending.append(stored)

    def _left_out(self, problem: str) -> None:
        self.metrics.rejected.labels("conflicting_entry").inc()
        log.error("relay.entry_left_out", extra=fields(doc_id=self.doc_id, error=problem))

    def merged(self) -> bytes:
        """The whole document as one update (merging what arrived since the last call)."""
        if self.pending:
            parts = [self._base, *self.pending] if self._base is not None else self.pending
            try:
                self._base = parts[0] if len(parts) == 1 else merge_updates(*parts)
            except BaseException as err:  # a Rust panic: never seen, but a log could hold one
                if isinstance(err, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                    raise
                self._unfoldable(str(err), kept="raw updates")
                raise UnfoldableLog(f"the updates cannot be merged: {err}") from None
            self.pending = []
        return self._base if self._base is not None else EMPTY_UPDATE

    def fold(self) -> bytes:
        """Replace the in-memory document by its folded form (see focusmate.store), or by its
        byte-wise merge when pycrdt cannot integrate it (a log poisoned before updates were
        checked against the document): nothing is lost, and clients get what they got before.
        Raises UnfoldableLog when not even a merge works; the log then stays as it is."""
        parts = [self._base, *self.pending] if self._base is not None else self.pending
        if not parts:
            return EMPTY_UPDATE
        try:
            folded, problem = fold_log(parts)
        except UnfoldableLog as err:
            self._unfoldable(str(err), kept="raw updates")
            raise
        if problem is not None:
            self._unfoldable(problem, kept="merged log")
        self._base, self.pending = folded, []
        return folded

    def _unfoldable(self, problem: str, *, kept: str) -> None:
        if not self.unfoldable:  # once per load: a compaction is retried on later writes
            self.unfoldable = True
            log.error(
                "relay.document_unfoldable",
                extra=fields(doc_id=self.doc_id, error=problem, kept=kept),
            )

    def check(self, update: bytes) -> bytes:
        """The part of ``update`` to store, once it is known to integrate into the document
        (committed and in flight); ConflictingUpdate if it does not."""
        if self.shadow is None:
            try:
                self.shadow = Shadow([self.merged(), *(e.update for e in self.unconfirmed)])
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                    raise
                if not self.shadow_failed:
                    self.shadow_failed = True
                    log.error(
                        "relay.document_unreadable",
                        extra=fields(doc_id=self.doc_id, error=str(err), kept="raw updates"),
                    )
                return update  # already poisoned: served and stored as before, nothing lost
        try:
            return self.shadow.integrate(update)
        except ConflictingUpdate:
            self.shadow = None  # rebuilt on the next write, without this update
            raise

    def confirmed(self, entry: InFlight, *, failed: bool) -> list[Peer]:
        """An update in flight was committed or failed (usually the oldest: a shared log
        reports a failure as soon as Redis answers, and successes in log order). After a
        failure, the senders of later updates that were cut against it: what was cut is now
        stored nowhere, and they must send it again."""
        if self.unconfirmed[0] is entry:
            self.unconfirmed.popleft()
            index = 0
        else:
            index = self.unconfirmed.index(entry)
            del self.unconfirmed[index]
        if not failed:
            return []
        self.shadow = None  # it holds an update that is not stored
        later = list(self.unconfirmed)[index:]
        senders = [d for e in (entry, *later) for d in e.dependents or ()]
        senders += [e.origin for e in later if e.cut and e.origin is not None]
        return senders

    def add_entry(self, update: bytes, seq: int) -> bytes | None:
        """Another process's entry, in log order: the part of it to hand on, or None."""
        try:
            stored = self.check(update)
        except ConflictingUpdate as err:
            self._left_out(str(err))
            stored = EMPTY_UPDATE
        if stored == EMPTY_UPDATE:
            self.last_id = seq
            self.unsnapshotted += 1
            return None
        self.add_committed(stored, seq)
        return stored

    def add_committed(self, update: bytes, row_id: int) -> None:
        self.pending.append(update)
        self.last_id = row_id
        self.unsnapshotted += 1
        if len(self.pending) >= MERGE_EVERY:
            with suppress(UnfoldableLog):  # (logged once) the updates stay unmerged
                self.merged()  # merging cost grows faster than linearly: keep each merge small

    def broadcast(self, message: bytes, *, skip: Peer | None = None) -> int:
        """Send ``message`` to every subscriber but ``skip``, serialising each distinct frame
        (plain y-websocket, or prefixed for /v1) once."""
        frames: dict[bytes, bytes] = {}
        sent = size = 0
        for peer, sub in self.subs.items():
            if peer is skip:
                continue
            frame = frames.get(sub.prefix)
            if frame is None:
                frame = frames[sub.prefix] = frame_for(sub.prefix + message)
            peer.send_frame(frame)
            sent += 1
            size += len(sub.prefix) + len(message)
        self.metrics.bytes_out.inc(size)
        return sent


class DocHub:
    def __init__(
        self,
        *,
        log: DocLog,
        config: RelayConfig,
        metrics: RelayMetrics,
        clock: Clock,
        monotonic: Callable[[], float],
    ) -> None:
        self.log = log
        # the same object when the log is shared by several processes (relay/shared_log.py)
        self.shared = cast(SharedDocLog, log) if log.shared else None
        if self.shared is not None:
            self.shared.sink = self
        self.owners: dict[str, Peer] = {}  # (shared) "<process>:<connection>" -> connection
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.docs: dict[str, DocState] = {}
        self._loading: dict[str, asyncio.Future[DocState]] = {}

    # -- membership -----------------------------------------------------------------------------

    async def open(self, doc_id: str) -> DocState:
        """The document in memory, loading it once however many clients ask at the same time."""
        state = self.docs.get(doc_id)
        if state is not None:
            return state
        pending = self._loading.get(doc_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DocState] = asyncio.get_running_loop().create_future()
        self._loading[doc_id] = future
        try:
            loaded = await self.log.load(doc_id)
            state = DocState(
                doc_id,
                loaded,
                now=self.monotonic(),
                metrics=self.metrics,
                compact_after=self.config.compact_after_updates,
            )
            self.docs[doc_id] = state
            for owner, entry in loaded.presence:
                state.awareness[entry.client_id] = Presence(entry.clock, entry, owner)
            self.log.started(doc_id)
            self.metrics.documents.set(len(self.docs))
            future.set_result(state)
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._loading[doc_id]
        return state

    async def subscribe(self, doc_id: str, peer: Peer, *, prefix: bytes = b"") -> DocState:
        """Add a subscriber and greet it as a y-websocket server does: sync step 1, presence."""
        state = await self.open(doc_id)
        state.subs[peer] = Subscription(peer, prefix)
        if self.shared is not None:
            self.owners[self.owner_key(peer)] = peer
        state.idle_since = None
        peer.subscriptions.add(doc_id)
        merged = state.merged()
        peer.send(prefix + encode_message(SyncStep1(get_state(merged))))
        if state.awareness:
            entries = tuple(p.entry for p in state.awareness.values())
            peer.send(prefix + encode_message(AwarenessMessage(entries)))
        return state

    def unsubscribe(self, doc_id: str, peer: Peer) -> None:
        state = self.docs.get(doc_id)
        peer.subscriptions.discard(doc_id)
        if state is None:
            return
        sub = state.subs.pop(peer, None)
        if sub is not None and sub.awareness_ids and self.shared is not None:
            self.shared.drop_presence(doc_id, self.owner_key(peer), sub.awareness_ids)
        elif sub is not None and sub.awareness_ids:
            gone = []
            for client_id in sub.awareness_ids:
                presence = state.awareness.pop(client_id, None)
                if presence is not None:
                    gone.append(AwarenessEntry(client_id, presence.clock + 1, None))
            if gone:
                state.broadcast(encode_message(AwarenessMessage(tuple(gone))))
        if not state.subs:
            state.idle_since = self.monotonic()
            state.shadow = None  # memory for active rooms only; rebuilt on the next write

    # -- messages from a subscriber -------------------------------------------------------------

    def receive(self, state: DocState, peer: Peer, message: Message, raw: bytes) -> None:
        """Handle one y-websocket message; ProtocolError closes the sender's connection."""
        sub = state.subs.get(peer)
        if sub is None:
            raise ProtocolError(f"not subscribed to {state.doc_id}")
        if isinstance(message, SyncUpdate | SyncStep2):
            self.submit_update(state, message.update, origin=peer)
        elif isinstance(message, SyncStep1):
            try:
                diff = get_update(state.merged(), message.state_vector)
            except BaseException as err:  # pycrdt raises ValueError or panics on garbage
                if isinstance(err, KeyboardInterrupt | SystemExit):
                    raise
                raise ProtocolError("malformed state vector") from None
            peer.send(sub.prefix + encode_message(SyncStep2(diff)))
        elif isinstance(message, AwarenessMessage):
            self._awareness(state, sub, message, raw)
        elif isinstance(message, QueryAwareness):
            entries = tuple(p.entry for p in state.awareness.values())
            peer.send(sub.prefix + encode_message(AwarenessMessage(entries)))
        elif isinstance(message, AuthDenied):
            raise ProtocolError("clients do not send auth messages")

    def submit_update(
        self, state: DocState, update: bytes, *, origin: Peer | None, received: float | None = None
    ) -> asyncio.Future[None] | None:
        """Validate, commit, then apply and forward. For the relay's own updates (``origin``
        None) a future that resolves once it is committed; None otherwise."""
        if update == EMPTY_UPDATE:
            return None
        try:
            validate_update(update)
            stored = state.check(update)
        except ValidationError as err:
            self.metrics.rejected.labels("invalid_update").inc()
            raise ProtocolError(str(err)) from None
        except ConflictingUpdate:
            self.metrics.rejected.labels("invalid_update").inc()
            raise ProtocolError("the update conflicts with the document") from None
        if stored == EMPTY_UPDATE:  # everything in it is stored already, or in flight
            if state.unconfirmed and origin is not None:  # (see DocState.confirmed)
                last = state.unconfirmed[-1]
                last.dependents = [*(last.dependents or ()), origin]
            return None
        cut, update = stored != update, stored
        received = self.monotonic() if received is None else received
        state.inflight += 1
        if origin is not None:
            origin.inflight += 1
        done = asyncio.get_running_loop().create_future() if origin is None else None

        inflight = InFlight(update, origin, cut)
        state.unconfirmed.append(inflight)

        def committed(row_id: int) -> None:
            state.confirmed(inflight, failed=False)
            state.add_committed(update, row_id)
            self.metrics.updates_in.inc()
            sent = state.broadcast(update_message(update), skip=origin)
            self.metrics.updates_out.inc(sent)
            self.metrics.fanout_latency.observe(self.monotonic() - received)
            if state.unsnapshotted >= state.compact_after:
                self.compact(state)
            self._write_done(state, origin, None)
            if done is not None:
                done.set_result(None)

        def failed(err: BaseException) -> None:
            for sender in state.confirmed(inflight, failed=True):
                self._lost_part(sender, err)
            self._write_done(state, origin, err)
            if done is not None:
                done.set_exception(err)
            if self.shared is not None:  # (it may be stored after all: the reply was lost)
                self.shared.sync(state.doc_id)

        self.log.append(state.doc_id, update, on_commit=committed, on_fail=failed)
        return done

    def _write_done(self, state: DocState, origin: Peer | None, err: BaseException | None) -> None:
        state.inflight -= 1
        if origin is None:
            return
        origin.update_committed()
        if err is not None:
            self._lost_part(origin, err)

    @staticmethod
    def _lost_part(sender: Peer, err: BaseException) -> None:
        """Part of what ``sender`` sent is not stored, so not forwarded: the client must learn
        it, and its next sync (after reconnecting) sends it again. Logged once per connection,
        not per update: a full disk fails every update a writer has in flight."""
        if not sender.closed:
            log.error("relay.commit_failed", extra=fields(error=str(err)))
            sender.close(CloseCode.INTERNAL, "the relay could not store an update")

    def _awareness(
        self, state: DocState, sub: Subscription, message: AwarenessMessage, raw: bytes
    ) -> None:
        if self.shared is not None:
            self._offer_presence(state, sub, message)
            return
        accepted = []
        limit = sub.peer.limits.awareness_clients_per_connection
        for entry in message.entries:
            current = state.awareness.get(entry.client_id)
            if current is not None and current.owner is not sub.peer:
                continue  # someone else's presence: not ours to change
            if current is None:
                if entry.state is None:
                    continue
                if entry.client_id not in sub.awareness_ids and len(sub.awareness_ids) >= limit:
                    self.metrics.rejected.labels("awareness_clients").inc()
                    continue
            elif entry.clock < current.clock or (
                entry.clock == current.clock and entry.state is not None
            ):
                continue  # stale
            if entry.state is None:
                state.awareness.pop(entry.client_id, None)
                sub.awareness_ids.discard(entry.client_id)
            else:
                state.awareness[entry.client_id] = Presence(entry.clock, entry, sub.peer)
                sub.awareness_ids.add(entry.client_id)
            accepted.append(entry)
        if not accepted:
            return
        out = raw if len(accepted) == len(message.entries) else None
        if out is None:
            out = encode_message(AwarenessMessage(tuple(accepted)))
        state.broadcast(out, skip=sub.peer)

    def _offer_presence(
        self, state: DocState, sub: Subscription, message: AwarenessMessage
    ) -> None:
        """(shared) Offer what this connection may change to Redis, whose script applies the
        ownership rule for every process at once; what it accepts comes back through
        :meth:`presence`, here too. New client ids count against the connection's limit now."""
        assert self.shared is not None
        offered = []
        limit = sub.peer.limits.awareness_clients_per_connection
        for entry in message.entries:
            current = state.awareness.get(entry.client_id)
            if current is not None and current.owner is not sub.peer:
                continue
            if current is None and entry.client_id not in sub.awareness_ids:
                if entry.state is None:
                    continue
                if len(sub.awareness_ids) >= limit:
                    self.metrics.rejected.labels("awareness_clients").inc()
                    continue
                sub.awareness_ids.add(entry.client_id)
            offered.append(entry)
        if offered:
            self.shared.publish_presence(state.doc_id, self.owner_key(sub.peer), offered)

    def exclusive(self, doc_id: str) -> AbstractAsyncContextManager[None]:
        """For a hosted timer command: the room's timer to itself, over all relay processes,
        with this one caught up with the log (one process: the DocState's lock is enough)."""
        if self.shared is None:
            return nullcontext()
        return self.shared.exclusive(doc_id)

    def owner_key(self, peer: Peer) -> str:
        assert self.shared is not None
        return f"{self.shared.link.process_id}:{peer.serial}"

    # -- what other processes wrote (shared logs: relay/shared_log.py calls these) ----------------

    def entry(self, doc_id: str, seq: int, update: bytes) -> None:
        state = self.docs.get(doc_id)
        if state is None or seq <= state.last_id:
            return
        stored = state.add_entry(update, seq)
        if stored is not None:
            self.metrics.updates_out.inc(state.broadcast(update_message(stored)))

    def presence(self, doc_id: str, owner: str, entries: list[AwarenessEntry]) -> None:
        """Presence changes Redis accepted (from any process), applied and sent on. Checked
        against the clocks held: one may have waited while the document loaded."""
        state = self.docs.get(doc_id)
        if state is None:
            return
        peer = self.owners.get(owner)
        sub = state.subs.get(peer) if peer is not None else None
        accepted = []
        for entry in entries:
            current = state.awareness.get(entry.client_id)
            if current is None and entry.state is None:
                continue
            if current is not None and (
                entry.clock < current.clock
                or (entry.clock == current.clock and entry.state is not None)
            ):
                continue
            if entry.state is None:
                del state.awareness[entry.client_id]
                if sub is not None:
                    sub.awareness_ids.discard(entry.client_id)
            else:
                state.awareness[entry.client_id] = Presence(entry.clock, entry, peer or owner)
            accepted.append(entry)
        if accepted:
            state.broadcast(encode_message(AwarenessMessage(tuple(accepted))), skip=peer)

    def process_dead(self, process_id: str) -> None:
        """A relay process stopped without saying goodbye: its connections' presence goes."""
        assert self.shared is not None
        prefix = f"{process_id}:"
        for doc_id, state in self.docs.items():
            gone = [
                AwarenessEntry(client_id, presence.clock + 1, None)
                for client_id, presence in state.awareness.items()
                if isinstance(presence.owner, str) and presence.owner.startswith(prefix)
            ]
            for entry in gone:
                del state.awareness[entry.client_id]
            if gone:
                state.broadcast(encode_message(AwarenessMessage(tuple(gone))))
            self.shared.drop_presence(doc_id, prefix)

    def snapshot_saved(self, doc_id: str, upto: int) -> None:
        state = self.docs.get(doc_id)
        if state is not None:
            state.unsnapshotted = min(state.unsnapshotted, max(0, state.last_id - upto))

    def reload(self, doc_id: str, loaded: LoadedDoc) -> None:
        """The shared log moved on past what this process could follow: take it as it is now,
        and send the subscribers what they are missing."""
        state = self.docs.get(doc_id)
        if state is None:
            return
        before = get_state(state.merged())
        state.take(loaded)
        missing = get_update(state.merged(), before)
        if missing != EMPTY_UPDATE:
            self.metrics.updates_out.inc(state.broadcast(update_message(missing)))

    # -- housekeeping ---------------------------------------------------------------------------

    def compact(self, state: DocState) -> asyncio.Future[None]:
        """Fold the committed log into a snapshot (garbage-collected when nothing is pending,
        so overwritten values stop costing bytes), in memory and on disk. A log that cannot
        even be merged is left as it is (logged once by DocState.fold)."""
        upto = state.last_id
        try:
            merged = state.fold()
        except UnfoldableLog:
            state.unsnapshotted = 0  # retried after as many updates again, not on each one
            skipped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            skipped.set_result(None)
            return skipped
        state.unsnapshotted = 0
        state.compact_after = max(
            1, round(self.config.compact_after_updates * random.uniform(0.5, 1.5))
        )

        return self.log.save_snapshot(
            state.doc_id, merged, upto=upto, slow=len(merged) > SLOW_SNAPSHOT_BYTES
        )

    def evict_idle(self) -> list[str]:
        """Drop documents idle for longer than the configured time; returns their ids."""
        cutoff = self.monotonic() - self.config.idle_document_seconds
        evicted = []
        for doc_id, state in list(self.docs.items()):
            if state.subs or state.inflight or state.idle_since is None:
                continue
            if state.idle_since <= cutoff:
                if state.unsnapshotted:
                    self.compact(state)
                del self.docs[doc_id]
                self.log.release(doc_id)
                evicted.append(doc_id)
        self.metrics.documents.set(len(self.docs))
        return evicted

    def drop_peer(self, peer: Peer) -> None:
        for doc_id in list(peer.subscriptions):
            self.unsubscribe(doc_id, peer)
        if self.shared is not None:
            self.owners.pop(self.owner_key(peer), None)


def close_for(err: ProtocolError) -> tuple[int, str]:
    return CloseCode.BAD_FRAME, f"bad frame: {err}"
