"""Document logs in Redis, shared by every relay process (``serve --redis-url``).

A document is ``snapshot + stream of updates``, like in SQLite, but every process appends to it
and follows it:

* An append is one Lua script: the next sequence number (dense, per document), ``XADD`` to the
  stream under that number, and ``PUBLISH`` of the entry on the document's channel. Atomic, so
  no process ever sees a number without its entry.
* Each process applies entries in sequence order only: from the channel when they come in
  order, else from the stream (a gap means messages were lost: pub/sub is at-most-once). Its own
  appends are confirmed the same way, when their entry comes round, so they reach its
  subscribers in log order like everyone else's. Anything a process forwards is in Redis.
* The hub (relay/docs.py) checks each entry against the document before it goes live, as it
  does its own clients' updates: entries from other processes may overlap or conflict with what
  it holds (a client sending the same ids to two processes at once).
* Compaction writes the snapshot and trims the stream up to it in one script; a process that
  finds its next entries trimmed away reloads the document from the snapshot.
* Presence (awareness) lives in a hash per document, so a process that loads the document later
  greets its clients with everyone's; a script checks that a client id belongs to the
  connection changing it, and publishes what it accepted.
* Hosted timer commands hold a short lock per room and first catch up with the log, so each
  applies to the latest timer state, on Redis's clock (relay/shared_clock.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from redis.exceptions import RedisError

from relay.logs import fields
from relay.metrics import RelayMetrics
from relay.redis_link import KEY_PREFIX, PROCESSES, RedisLink, RedisUnavailable
from relay.resp import Arg
from relay.storage import LoadedDoc
from sync.ysync import AwarenessEntry

log = logging.getLogger("focusmate.relay")
DOCS = KEY_PREFIX + "docs"  # sorted set: document id -> when it was last written (Redis time)
CATCH_UP_SECONDS = 5.0
TIMER_LOCK_MS = 5_000  # a process that dies holding a room's timer lock holds it this long
TIMER_LOCK_WAIT_SECONDS = 5.0

_APPEND = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'o', ARGV[2], 'u', ARGV[1])
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], now[1], ARGV[4])
redis.call('PUBLISH', ARGV[3], 'u' .. seq .. ' ' .. ARGV[2] .. ' ' .. ARGV[1])
return seq
"""

_SNAPSHOT = """
local upto = tonumber(ARGV[1])
if upto <= tonumber(redis.call('HGET', KEYS[1], 'upto') or '0') then return 0 end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'upto', upto)
redis.call('XTRIM', KEYS[2], 'MINID', (upto + 1) .. '-0')
redis.call('PUBLISH', ARGV[3], 's' .. upto)
return 1
"""

# ARGV: owner, channel, then (client id, clock, removal 0/1, entry JSON) per entry. The rules of
# DocHub._awareness: a client id belongs to the connection that first announced it; a stale
# clock is ignored. Hash values: owner, clock and entry JSON, separated by newlines.
_PRESENCE = """
local accepted = {}
for i = 3, #ARGV, 4 do
    local id, clock, entry = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 3]
    local removal = ARGV[i + 2] == '1'
    local current = redis.call('HGET', KEYS[1], id)
    local ok
    if current then
        local owner, held = string.match(current, '^([^\\n]*)\\n(%d+)\\n')
        held = tonumber(held)
        ok = owner == ARGV[1] and (clock > held or (clock == held and removal))
    else
        ok = not removal
    end
    if ok then
        if removal then
            redis.call('HDEL', KEYS[1], id)
        else
            redis.call('HSET', KEYS[1], id, ARGV[1] .. '\\n' .. clock .. '\\n' .. entry)
        end
        accepted[#accepted + 1] = entry
    end
end
if #accepted > 0 then
    redis.call('PUBLISH', ARGV[2], 'a' .. ARGV[1] .. '\\n' .. table.concat(accepted, '\\n'))
end
return #accepted
"""

# ARGV: channel, owner prefix ('<process>:<connection>' for one connection, '<process>:' for a
# whole process), then the client ids to look at (none: every one). Removes the entries owned
# under the prefix and publishes their removal (clock + 1, as y-protocols does).
_DROP_PRESENCE = """
local ids = {}
if #ARGV > 2 then
    for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
    ids = redis.call('HKEYS', KEYS[1])
end
local gone = {}
for _, id in ipairs(ids) do
    local current = redis.call('HGET', KEYS[1], id)
    if current then
        local owner, held = string.match(current, '^([^\\n]*)\\n(%d+)\\n')
        if owner == ARGV[2] or string.sub(owner, 1, #ARGV[2]) == ARGV[2] and
                string.sub(ARGV[2], -1) == ':' then
            redis.call('HDEL', KEYS[1], id)
            gone[#gone + 1] = '[' .. id .. ',' .. (tonumber(held) + 1) .. ',null]'
        end
    end
end
if #gone > 0 then
    redis.call('PUBLISH', ARGV[1], 'a' .. ARGV[2] .. '\\n' .. table.concat(gone, '\\n'))
end
return #gone
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LogSink(Protocol):
    """What the hub does with what other processes wrote (relay/docs.py implements it)."""

    def entry(self, doc_id: str, seq: int, update: bytes) -> None: ...

    def presence(self, doc_id: str, owner: str, entries: list[AwarenessEntry]) -> None: ...

    def snapshot_saved(self, doc_id: str, upto: int) -> None: ...

    def reload(self, doc_id: str, loaded: LoadedDoc) -> None: ...


def keys(doc_id: str) -> tuple[str, str, str, str, str]:
    """(meta, stream, snapshot, presence, timer lock); the hash tag keeps a document's keys in
    one slot, should the keyspace ever be split."""
    base = f"{KEY_PREFIX}d:{{{doc_id}}}:"
    return base + "m", base + "l", base + "s", base + "a", base + "t"


def channel(doc_id: str) -> str:
    return f"{KEY_PREFIX}d:{doc_id}"


@dataclass(slots=True)
class _Own:
    doc_id: str
    on_commit: Callable[[int], None]
    on_fail: Callable[[BaseException], None]


@dataclass(slots=True)
class _Follow:
    doc_id: str
    last: int = 0  # the highest sequence number handed on (in order)
    ready: bool = False  # the hub holds the document: entries may be handed on
    buffer: dict[int, tuple[str, bytes]] = field(default_factory=dict)  # ahead of a gap
    presence: list[tuple[str, list[AwarenessEntry]]] = field(default_factory=list)  # (loading)
    syncing: asyncio.Task[None] | None = None
    sync_again: bool = False
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class SharedDocLog:
    """The hub's document log on Redis (see the module docstring)."""

    shared = True

    def __init__(self, link: RedisLink, metrics: RelayMetrics) -> None:
        self.link = link
        self.metrics = metrics
        self.sink: LogSink | None = None
        self._follows: dict[str, _Follow] = {}
        self._own: dict[str, _Own] = {}  # origin token -> an append of this process in flight
        self._counter = 0
        self._append = link.script(_APPEND)
        self._snapshot = link.script(_SNAPSHOT)
        self._presence = link.script(_PRESENCE)
        self._drop_presence = link.script(_DROP_PRESENCE)
        self._release = link.script(_RELEASE)

    @property
    def queued(self) -> int:
        return self.link.queued

    # -- following a document -------------------------------------------------------------------

    async def load(self, doc_id: str) -> LoadedDoc:
        """Follow the document's channel, then read it: nothing written after the read is
        missed, and what came on the channel meanwhile waits for :meth:`started`."""
        follow = self._follows[doc_id] = _Follow(doc_id)
        try:
            await self.link.listen(
                channel(doc_id), partial(self._message, follow), partial(self.sync, doc_id)
            )
            loaded = await self._read(doc_id)
        except (RedisUnavailable, RedisError, OSError) as err:
            self.release(doc_id)
            raise RedisUnavailable(f"cannot load the document from Redis: {err}") from None
        follow.last = loaded.last_id
        return loaded

    def started(self, doc_id: str) -> None:
        """The hub holds the document now: hand on what came meanwhile."""
        follow = self._follows[doc_id]
        follow.ready = True
        for owner, entries in follow.presence:
            self._hand_presence(follow, owner, entries)
        follow.presence.clear()
        self._drain(follow)

    def release(self, doc_id: str) -> None:
        """The hub dropped the document: stop following it."""
        follow = self._follows.pop(doc_id, None)
        if follow is None:
            return
        if follow.syncing is not None:
            follow.syncing.cancel()
        for _, waiter in follow.waiters:
            if not waiter.done():
                waiter.set_exception(RedisUnavailable("the document was unloaded"))
        self.link.unlisten(channel(doc_id))

    async def _read(self, doc_id: str) -> LoadedDoc:
        """Snapshot, the entries after it and the presence, in one transaction (a compaction
        between two reads could trim entries the first did not cover)."""
        meta, stream, snapshot, presence_key, _ = keys(doc_id)
        pipe = self.link.client.pipeline(transaction=True)
        pipe.get(snapshot)
        pipe.hmget(meta, "upto", "seq")
        pipe.xrange(stream)
        pipe.hgetall(presence_key)
        pipe.time()
        pipe.zrange(PROCESSES, 0, -1, withscores=True)
        snap, (upto, seq), entries, held, (seconds, _), processes = await pipe.execute()
        upto = int(upto or 0)
        updates = [bytes(snap)] if snap else []
        last = upto
        for entry_id, values in entries:
            number = _seq(entry_id)
            if number > upto:
                updates.append(bytes(values[b"u"]))
                last = number
        if int(seq or 0) != last:
            raise RedisError(f"the log of {doc_id} ends at {last}, its counter says {seq}")
        live = {raw.decode() for raw, dies in processes if dies > int(seconds)}
        presence: list[tuple[str, AwarenessEntry]] = []
        dead: set[str] = set()
        for owner, entry in _held_presence(held):
            process = owner.partition(":")[0]
            if process in live:
                presence.append((owner, entry))
            else:
                dead.add(process)
        for process in dead:  # (it stopped without saying goodbye: clean up after it)
            self.drop_presence(doc_id, process + ":")
        return LoadedDoc(
            updates=updates,
            last_id=last,
            pending=last - upto,
            trusted=False,
            presence=tuple(presence),
        )

    def _message(self, follow: _Follow, data: bytes) -> None:
        kind = data[:1]
        if kind == b"u":
            number, origin, update = data[1:].split(b" ", 2)
            seq = int(number)
            if seq > follow.last:
                follow.buffer[seq] = (origin.decode(), update)
                if follow.ready and follow.syncing is None:
                    self._drain(follow)
        elif kind == b"a":
            owner, _, body = data[1:].partition(b"\n")
            entries = [_entry(line) for line in body.split(b"\n")]
            if follow.ready:
                self._hand_presence(follow, owner.decode(), entries)
            else:
                follow.presence.append((owner.decode(), entries))
        elif kind == b"s" and follow.ready and self.sink is not None:
            self.sink.snapshot_saved(follow.doc_id, int(data[1:]))

    def _hand_presence(self, follow: _Follow, owner: str, entries: list[AwarenessEntry]) -> None:
        if self.sink is not None:
            self.sink.presence(follow.doc_id, owner, entries)

    def _drain(self, follow: _Follow) -> None:
        """Hand on buffered entries while they follow on; a gap left behind is filled from the
        stream (the messages in it were lost)."""
        buffer = follow.buffer
        while buffer:
            entry = buffer.pop(follow.last + 1, None)
            if entry is None:
                break
            self._hand_on(follow, follow.last + 1, *entry)
        for seq in [s for s in buffer if s <= follow.last]:
            del buffer[seq]
        if buffer:
            self.sync(follow.doc_id)

    def _hand_on(self, follow: _Follow, seq: int, origin: str, update: bytes) -> None:
        follow.last = seq
        own = self._own.pop(origin, None)
        if own is not None:
            own.on_commit(seq)
        elif self.sink is not None:
            self.sink.entry(follow.doc_id, seq, update)
        if follow.waiters:
            waiting = []
            for target, waiter in follow.waiters:
                if target <= seq:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    waiting.append((target, waiter))
            follow.waiters = waiting

    def sync(self, doc_id: str) -> None:
        """Catch up with the stream (after a gap, a reconnection, or a failed append)."""
        follow = self._follows.get(doc_id)
        if follow is None or not follow.ready:
            return
        if follow.syncing is not None:
            follow.sync_again = True
            return
        follow.syncing = asyncio.get_running_loop().create_task(self._sync(follow))

    async def _sync(self, follow: _Follow) -> None:
        """Catch up until nothing more was asked for; while Redis cannot be read, retry with
        backoff (the document stays behind until then, and its writers wait)."""
        try:
            while True:
                follow.sync_again = False
                await self.link.persist(
                    partial(self._catch_up, follow),
                    "relay.redis_catch_up_failed",
                    doc_id=follow.doc_id,
                )
                if not follow.sync_again:
                    break
        finally:
            follow.syncing = None
        if follow.buffer and self._follows.get(follow.doc_id) is follow:
            self._drain(follow)

    async def _catch_up(self, follow: _Follow) -> None:
        meta, stream, *_ = keys(follow.doc_id)
        pipe = self.link.client.pipeline(transaction=True)
        pipe.hget(meta, "upto")
        pipe.xrange(stream, f"{follow.last + 1}-0", "+")
        upto, entries = await pipe.execute()
        numbered = [(_seq(entry_id), values) for entry_id, values in entries]
        first = numbered[0][0] if numbered else None
        if int(upto or 0) > follow.last and first != follow.last + 1:
            await self._reload(follow)  # what we missed was folded into a snapshot
            return
        self.metrics.redis_catch_ups.inc()
        for seq, values in numbered:
            if seq > follow.last:
                follow.buffer[seq] = (values[b"o"].decode(), bytes(values[b"u"]))
        buffer = follow.buffer
        while (entry := buffer.pop(follow.last + 1, None)) is not None:
            self._hand_on(follow, follow.last + 1, *entry)

    async def _reload(self, follow: _Follow) -> None:
        """The entries after ours were trimmed: take the document as Redis has it. This
        process's own appends in flight are failed (their senders resend after reconnecting,
        and whatever of them is stored already is cut then)."""
        loaded = await self._read(follow.doc_id)
        self.metrics.redis_reloads.inc()
        for token, own in list(self._own.items()):
            if own.doc_id == follow.doc_id:
                del self._own[token]
                own.on_fail(RedisUnavailable("the relay lost track of the document's log"))
        follow.buffer = {s: e for s, e in follow.buffer.items() if s > loaded.last_id}
        follow.last = loaded.last_id
        if self.sink is not None:
            self.sink.reload(follow.doc_id, loaded)

    async def reached(self, doc_id: str, seq: int) -> None:
        """Return once this process has handed on the document's entries up to ``seq``."""
        follow = self._follows.get(doc_id)
        if follow is None:
            raise RedisUnavailable("the document is not loaded")
        if follow.last >= seq:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        follow.waiters.append((seq, waiter))
        self.sync(doc_id)
        try:
            await asyncio.wait_for(waiter, CATCH_UP_SECONDS)
        except TimeoutError:
            raise RedisUnavailable("the relay could not catch up with the room") from None

    # -- writing --------------------------------------------------------------------------------

    def append(
        self,
        doc_id: str,
        update: bytes,
        *,
        on_commit: Callable[[int], None],
        on_fail: Callable[[BaseException], None],
    ) -> None:
        """Append an update; ``on_commit`` gets its sequence number when this process hands it
        on (in log order), ``on_fail`` the error if Redis refused it or did not answer."""
        self._counter += 1
        token = f"{self.link.process_id}:{self._counter}"
        self._own[token] = _Own(doc_id, on_commit, on_fail)
        meta, stream, *_ = keys(doc_id)
        args: list[Arg] = [update, token, channel(doc_id), doc_id]

        def done(reply: Any) -> None:
            if isinstance(reply, BaseException):
                own = self._own.pop(token, None)
                if own is not None:  # (an error reply too: out of memory, say)
                    failure = reply if isinstance(reply, RedisUnavailable) else None
                    own.on_fail(failure or RedisUnavailable(f"redis refused it: {reply}"))

        self.link.write(doc_id, self._append.command([meta, stream, DOCS], args), done)

    def save_snapshot(
        self, doc_id: str, merged: bytes, *, upto: int, slow: bool = False
    ) -> asyncio.Future[None]:
        """Replace the log up to ``upto`` with ``merged`` (unless a newer snapshot is there)."""
        meta, stream, snapshot, *_ = keys(doc_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(reply: Any) -> None:
            if isinstance(reply, BaseException):
                log.error("relay.snapshot_failed", extra=fields(doc_id=doc_id, error=str(reply)))
                future.set_exception(reply)
                future.exception()  # (logged here: nobody need await a compaction's outcome)
            else:
                future.set_result(None)

        command = self._snapshot.command([meta, stream, snapshot], [upto, merged, channel(doc_id)])
        self.link.write(doc_id, command, done)
        return future

    def publish_presence(self, doc_id: str, owner: str, entries: Iterable[AwarenessEntry]) -> None:
        """Offer presence entries of connection ``owner``; what the script accepts comes back
        to every process (this one too) through :meth:`LogSink.presence`."""
        args: list[Arg] = [owner, channel(doc_id)]
        for entry in entries:
            body = json.dumps([entry.client_id, entry.clock, entry.state], separators=(",", ":"))
            args += [entry.client_id, entry.clock, 1 if entry.state is None else 0, body]
        presence_key = keys(doc_id)[3]

        command = self._presence.command([presence_key], args)
        self.link.write(doc_id, command, partial(_log_failure, "relay.presence_failed"))

    def drop_presence(self, doc_id: str, owner: str, client_ids: Iterable[int] = ()) -> None:
        """Remove what ``owner`` (a connection, or ``'<process>:'`` for a whole process)
        announced, and tell everyone it is gone."""
        args: list[Arg] = [channel(doc_id), owner, *client_ids]
        presence_key = keys(doc_id)[3]

        command = self._drop_presence.command([presence_key], args)
        self.link.write(doc_id, command, partial(_log_failure, "relay.presence_failed"))

    def loaded_ids(self) -> list[str]:
        return [doc_id for doc_id, follow in self._follows.items() if follow.ready]

    # -- hosted timers --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def exclusive(self, doc_id: str) -> AsyncIterator[None]:
        """The room's timer, for one command at a time over all processes, with this process
        caught up with the log first: the command applies to the latest timer state."""
        meta, *_, lock = keys(doc_id)
        token = secrets.token_hex(8)
        deadline = time.monotonic() + TIMER_LOCK_WAIT_SECONDS
        try:
            while not await self.link.client.set(lock, token, nx=True, px=TIMER_LOCK_MS):
                if time.monotonic() >= deadline:
                    raise RedisUnavailable("another relay process holds the room's timer")
                await asyncio.sleep(0.01)  # (another process's command: a few milliseconds)
            seq = int(await self.link.client.hget(meta, "seq") or 0)
        except (RedisError, OSError) as err:
            raise RedisUnavailable(f"redis: {err}") from None
        try:
            await self.reached(doc_id, seq)
            yield
        finally:
            with contextlib.suppress(RedisUnavailable):
                await self.link.run(self._release, [lock], [token])

    async def check(self) -> str | None:
        return await self.link.check()

    async def close(self) -> None:
        await self.link.flush()


def _seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _entry(line: bytes) -> AwarenessEntry:
    client_id, clock, state = json.loads(line)
    return AwarenessEntry(int(client_id), int(clock), state)


def _held_presence(held: dict[bytes, bytes]) -> Iterable[tuple[str, AwarenessEntry]]:
    for value in held.values():
        owner, _, rest = value.partition(b"\n")
        _, _, body = rest.partition(b"\n")
        yield owner.decode(), _entry(body)


def _log_failure(event: str, reply: Any) -> None:
    if isinstance(reply, BaseException):
        log.error(event, extra=fields(error=str(reply)))
