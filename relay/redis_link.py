"""One relay process's link to the shared Redis: commands, ordered writes, channels, liveness.

Several relay processes behind one load balancer share their state through Redis
(``serve --redis-url``); this module is the plumbing they share, and knows nothing of documents
or mail:

* :meth:`RedisLink.write` queues a command in a lane (one per document) for the writer, which
  sends what is queued in one go and waits for its replies before sending the next batch. So
  one process's writes to a document reach Redis in the order they were made, and many writes
  share a round trip, like the SQLite group commit (relay/committer.py).
* :meth:`RedisLink.listen` subscribes a channel and returns once Redis confirmed it. Its
  ``on_resubscribed`` runs when the link to Redis was lost and came back: what was published
  meanwhile is gone, and the listener must catch up from what Redis stored (pub/sub is
  at-most-once; the document logs are streams).
* Liveness: every process keeps its entry in a sorted set fresh (``HEARTBEAT_SECONDS``); one
  missing for ``PROCESS_TTL_SECONDS`` is dead, and what it owned (presence) is cleaned up by the
  others.

Lua scripts are the atomic steps (an append and its announcement, a mailbox put within quota):
nothing is ever half done, and no process needs a lock for them. The writer and the listener
have connections of their own (relay/resp.py: every update passes through both); the rest goes
through redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from relay.lanes import Lanes
from relay.logs import fields
from relay.resp import Arg, ReplyError, RespConnection

log = logging.getLogger("focusmate.relay")
KEY_PREFIX = "fm:"
PROCESSES = KEY_PREFIX + "procs"  # sorted set: process id -> when it counts as dead
HEARTBEAT_SECONDS = 5.0
PROCESS_TTL_SECONDS = 15.0
FORGET_DEAD_SECONDS = 3600.0  # (every live process has reported a dead one long before)
MAX_PIPELINE = 256  # commands per round trip (the committer's MAX_BATCH, for the same reasons)
RETRY_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
SUBSCRIBE_SECONDS = 5.0  # for Redis to confirm a subscription
REPLY_SECONDS = 10.0  # for a batch's replies: a Redis that stalls longer counts as down


class RedisUnavailable(Exception):
    """Redis did not answer: the operation is refused, and the client should retry later."""


class Script:
    """A Lua script, sent by its SHA (loaded at start, and again if Redis lost it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: list[str], args: list[Arg]) -> tuple[Arg, ...]:
        """The script as a command for :meth:`RedisLink.write`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


@dataclass(slots=True)
class _Write:
    command: tuple[Arg, ...]
    done: Callable[[Any], None]  # the reply, or the exception that replaced it


@dataclass(slots=True)
class _Channel:
    on_message: Callable[[bytes], None]
    on_resubscribed: Callable[[], None] | None
    confirmed: asyncio.Future[None]


class RedisLink:
    def __init__(
        self,
        url: str,
        *,
        process_id: str | None = None,
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
    ) -> None:
        self.url = url
        self._on_batch = on_batch  # (writes, seconds) per pipeline, for metrics
        self.process_id = process_id or secrets.token_hex(8)
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_keepalive=True, socket_connect_timeout=5.0, health_check_interval=30
        )
        self._writer: RespConnection | None = None
        self._subscriber: RespConnection | None = None  # (while the listener is connected)
        self._channels: dict[bytes, _Channel] = {}
        self._unconfirmed: dict[bytes, int] = {}  # SUBSCRIBE commands sent, not yet confirmed
        self._lanes: Lanes[_Write] = Lanes()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._scripts: list[Script] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._dead: set[str] = set()  # processes already reported dead
        self.on_process_dead: Callable[[str], None] = lambda process_id: None
        self.connected = asyncio.Event()  # the channel link is up (cleared while it is down)
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis answers (a clear error at start-up instead of a relay that fails every
        write), then run the writer, the listener and the heartbeat."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as err:
            raise RedisUnavailable(f"cannot reach Redis at {_safe(self.url)}: {err}") from None
        await self._check_settings()
        await self._load_scripts()
        await self.heartbeat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_batches(), name="redis-writer"),
            loop.create_task(self._listen(), name="redis-listener"),
            loop.create_task(self._heartbeats(), name="redis-heartbeat"),
        ]
        try:
            await asyncio.wait_for(self.connected.wait(), SUBSCRIBE_SECONDS)
        except TimeoutError:
            raise RedisUnavailable(f"no channel link to Redis at {_safe(self.url)}") from None

    async def close(self) -> None:
        """Send what is queued, leave the process registry, close the connections."""
        self._closed = True
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self.client.zrem(PROCESSES, self.process_id)
        for connection in (self._writer, self._subscriber):
            if connection is not None:
                connection.close()
        await self.client.aclose()

    async def persist(self, what: Callable[[], Awaitable[None]], event: str, **about: Any) -> None:
        """Run ``what`` until it gets through to Redis, with backoff (logged once as
        ``event``): for catching up after the link was lost, which must happen eventually."""
        failures = 0
        while True:
            try:
                await what()
                return
            except (RedisError, RedisUnavailable, OSError) as err:
                if failures == 0:
                    log.error(event, extra=fields(error=str(err), **about))
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1

    async def _check_settings(self) -> None:
        """Warn about settings that lose documents: a Redis that evicts keys when full drops
        rooms and mail silently, and one that persists nothing loses everything on a restart.
        (A managed Redis may refuse CONFIG: then nothing is known, and nothing is said.)"""
        try:
            policy = await self.client.config_get("maxmemory-policy")
            persistence = await self.client.config_get("appendonly")
            snapshots = await self.client.config_get("save")
        except (RedisError, OSError):
            return
        value = _text(policy.get("maxmemory-policy"))
        if value and value != "noeviction":
            log.warning("relay.redis_evicts", extra=fields(maxmemory_policy=value))
        if _text(persistence.get("appendonly")) != "yes" and not _text(snapshots.get("save")):
            log.warning("relay.redis_not_persistent", extra=fields(url=_safe(self.url)))

    def script(self, source: str) -> Script:
        script = Script(source)
        self._scripts.append(script)
        return script

    async def _load_scripts(self) -> None:
        for script in self._scripts:
            await self.client.script_load(script.source)

    async def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a script now (not in a lane), raising RedisUnavailable if Redis did not answer."""
        try:
            try:
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:  # Redis restarted without its script cache
                await self._load_scripts()
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except (RedisError, OSError) as err:
            raise RedisUnavailable(f"redis: {err}") from None

    async def time(self) -> float:
        """Redis's clock, in seconds since the epoch: the one timebase of all processes."""
        seconds, micros = await self.client.time()
        return float(seconds) + float(micros) / 1e6

    async def check(self) -> str | None:
        """None if Redis answers, else what went wrong (for /healthz)."""
        try:
            await asyncio.wait_for(self.client.ping(), 5.0)
        except (RedisError, OSError, TimeoutError) as err:
            return f"redis: {err or type(err).__name__}"
        return None

    # -- ordered writes -------------------------------------------------------------------------

    def write(self, lane: str, command: tuple[Arg, ...], done: Callable[[Any], None]) -> None:
        """Queue a command; ``done`` gets its reply (an error reply or a lost connection as an
        exception instance) once its batch returns. Commands in one lane reach Redis in order."""
        if self._closed:
            raise RuntimeError("the relay is shutting down")
        self._lanes.push(lane, _Write(command, done))
        self._idle.clear()
        self._wake.set()

    async def call(self, lane: str, command: tuple[Arg, ...]) -> Any:
        """:meth:`write`, awaiting the reply (raising the error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.write(lane, command, done)
        return await future

    @property
    def queued(self) -> int:
        return self._lanes.queued

    async def flush(self) -> None:
        await self._idle.wait()

    async def _write_batches(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(0)  # let this loop iteration's other writes join the batch
            self._wake.clear()
            while self._lanes.queued:
                batch = self._lanes.batch(MAX_PIPELINE)
                replies = await self._send(batch)
                if any(_no_script(reply) for reply in replies):
                    # Redis restarted and lost its scripts: none of those ran. Load them and
                    # send those writes again (in their order, before anything newer).
                    retry = [w for w, r in zip(batch, replies, strict=True) if _no_script(r)]
                    try:
                        await self._load_scripts()
                    except (RedisError, OSError):
                        pass  # (Redis went again: those writes fail with their NOSCRIPT reply)
                    else:
                        again = iter(await self._send(retry))
                        replies = [next(again) if _no_script(r) else r for r in replies]
                for write, reply in zip(batch, replies, strict=True):
                    try:
                        write.done(reply)
                    except Exception:
                        log.exception("relay.redis_callback_failed")
            self._idle.set()

    async def _send(self, batch: list[_Write]) -> list[Any]:
        """One round trip for the batch, on the writer's own connection (opened on demand; a
        connection that failed is dropped, and the batch with it: its fate is unknown)."""
        started = time.perf_counter()
        try:
            if self._writer is None:
                self._writer = await RespConnection.open(self.url)
            connection = self._writer
            connection.send(write.command for write in batch)
            async with asyncio.timeout(REPLY_SECONDS):
                replies = [await connection.reply() for _ in batch]
        except (OSError, TimeoutError, RedisError) as err:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            return [RedisUnavailable(f"redis: {err or type(err).__name__}")] * len(batch)
        self._on_batch(len(batch), time.perf_counter() - started)
        return replies

    # -- channels -------------------------------------------------------------------------------

    async def listen(
        self,
        channel: str,
        on_message: Callable[[bytes], None],
        on_resubscribed: Callable[[], None] | None = None,
    ) -> None:
        """Subscribe, and return once Redis confirmed it: what is published from then on
        reaches ``on_message``. RedisUnavailable at once while the link is down, or if Redis
        does not confirm in time."""
        key = channel.encode()
        if not self.connected.is_set():
            raise RedisUnavailable("the relay's link to Redis is down")
        listener = self._channels.get(key)
        if listener is None:
            confirmed = asyncio.get_running_loop().create_future()
            listener = self._channels[key] = _Channel(on_message, on_resubscribed, confirmed)
            self._subscribe([key])
        try:
            await asyncio.wait_for(asyncio.shield(listener.confirmed), SUBSCRIBE_SECONDS)
        except TimeoutError:
            if self._channels.get(key) is listener:
                self.unlisten(channel)
            raise RedisUnavailable(f"Redis did not confirm the subscription to {channel}") from None

    def unlisten(self, channel: str) -> None:
        key = channel.encode()
        if self._channels.pop(key, None) is not None and self._subscriber is not None:
            self._subscriber.send([("UNSUBSCRIBE", key)])

    def _subscribe(self, keys: list[bytes]) -> None:
        """SUBSCRIBE on the listener's connection (if it is up: on reconnecting, it subscribes
        to every channel anyway), counting the confirmations to come."""
        if self._subscriber is None or not keys:
            return
        for key in keys:
            self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
        self._subscriber.send([("SUBSCRIBE", *keys)])

    def _subscribed(self, key: bytes) -> None:
        """A confirmation: the first of a channel, or its resubscription after a reconnect
        (when what was published meanwhile is lost: the listener must catch up)."""
        pending = self._unconfirmed.get(key, 0)
        if pending > 1:
            self._unconfirmed[key] = pending - 1
            return
        self._unconfirmed.pop(key, None)
        listener = self._channels.get(key)
        if listener is None:
            return
        if not listener.confirmed.done():
            listener.confirmed.set_result(None)
        elif listener.on_resubscribed is not None:
            listener.on_resubscribed()

    async def _listen(self) -> None:
        """Connect, subscribe to every channel, dispatch; when the link drops (or stays silent
        past the heartbeat's PINGs), reconnect with backoff."""
        failures = 0
        silent = 3 * HEARTBEAT_SECONDS
        while True:
            try:
                connection = await RespConnection.open(self.url)
            except (OSError, TimeoutError) as err:
                failures = await self._link_down(err, failures)
                continue
            self._subscriber = connection
            self._unconfirmed = {}
            connection.send([("PING",)])  # (an answer before any channel: the link is up)
            self._subscribe(list(self._channels))
            try:
                while True:
                    # (asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the task's
                    # cancellation when the read completes at the same moment, and the relay
                    # then never finishes stopping)
                    async with asyncio.timeout(silent):
                        message = await connection.reply()
                    if not self.connected.is_set():
                        if failures:
                            log.info("relay.redis_reconnected")
                        self.connected.set()
                    failures = 0
                    self._dispatch(message)
                    for more in connection.ready():  # (what the same read brought: one turn)
                        self._dispatch(more)
            except (OSError, TimeoutError) as err:
                self._subscriber = None
                connection.close()
                failures = await self._link_down(err, failures)

    async def _link_down(self, err: BaseException, failures: int) -> int:
        if self.connected.is_set() or failures == 0:
            log.error("relay.redis_unreachable", extra=fields(error=str(err) or type(err).__name__))
        self.connected.clear()
        await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
        return failures + 1

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3:
            return  # (PING's answer: [b"pong", b""] in subscribe mode; or a plain +PONG)
        kind, channel = message[0], message[1]
        try:
            if kind == b"message":
                listener = self._channels.get(channel)
                if listener is not None:
                    listener.on_message(message[2])
            elif kind == b"subscribe":
                self._subscribed(channel)
        except Exception:
            log.exception("relay.redis_message_failed", extra=fields(channel=channel.decode()))

    # -- liveness -------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Renew this process's entry, and report processes whose entry ran out. Pings the
        listener's connection too: a link that stays silent is a dead one."""
        if self._subscriber is not None:
            self._subscriber.send([("PING",)])
        now = await self.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(PROCESSES, {self.process_id: now + PROCESS_TTL_SECONDS})
        pipe.zremrangebyscore(PROCESSES, "-inf", now - FORGET_DEAD_SECONDS)
        pipe.zrangebyscore(PROCESSES, "-inf", now)
        _, _, expired = await pipe.execute()
        dead = {raw.decode() for raw in cast(list[bytes], expired)}
        self._dead &= dead  # (forgotten with their entries, an hour on)
        for process_id in dead:
            if process_id not in self._dead:
                self._dead.add(process_id)
                log.warning("relay.process_dead", extra=fields(process=process_id))
                self.on_process_dead(process_id)

    async def _heartbeats(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.heartbeat()
            except (RedisError, OSError) as err:
                if not failing:  # (once per outage, not every few seconds)
                    log.error("relay.redis_heartbeat_failed", extra=fields(error=str(err)))
                failing = True
                continue
            except Exception:
                log.exception("relay.redis_heartbeat_failed")
                continue
            failing = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _no_script(reply: Any) -> bool:
    return isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT")


def _safe(url: str) -> str:
    """The URL without its password, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
