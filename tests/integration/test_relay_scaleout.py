"""Several relay processes on one real Redis (``serve --redis-url``): one room, one timer, one
set of mailboxes, whichever process a client lands on.

Each test starts its own ``redis-server`` on a free loopback port (tests/integration/
rediskit.py) and real relays on port-0 sockets; clients are real websocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from focusmate.clock import FakeClock
from focusmate.dm import Envelope, open_envelope, seal
from focusmate.identity import Identity
from focusmate.invite import Invite, relay_token, room_id_for
from focusmate.room import DOC_KIND
from focusmate.workspace import Workspace
from relay.__main__ import main as relay_main
from relay.redis_link import PROCESSES
from relay.server import Relay
from relay.shared_log import keys
from sync import control
from sync.clock import ClockSample, OffsetEstimator
from tests.integration.hostile import legit_round
from tests.integration.rediskit import RedisProxy, RedisServer, needs_redis, running_redis
from tests.integration.relaykit import (
    DEADLINE,
    ControlClient,
    DocClient,
    doc_url,
    limits,
    open_room,
    poll,
    relay_committed,
    running_relay,
    self_signed,
    wait_until,
)
from tests.integration.synckit import free_port
from tests.pycrdt_panics import EQUIVOCATION, EQUIVOCATION_BASE

pytestmark = needs_redis
SECRET = b"s" * 32
DOC_ID = room_id_for(SECRET)
START = 1_800_000_000.0


async def poll_async(read: Callable[[], Awaitable[Any]], value: Any, what: str) -> None:
    """Poll an async read until it returns ``value`` (within the deadline)."""
    try:
        async with asyncio.timeout(DEADLINE):
            while await read() != value:
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def metric(relay: Relay, name: str) -> float:
    """A sample's value, scraped from /metrics."""

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    for line in (await asyncio.to_thread(scrape)).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def _online(relay: Relay, identity: Identity) -> ControlClient:
    client = await ControlClient.open(relay, identity)
    await client.expect(control.Welcome)
    return client


async def _processed(client: ControlClient) -> None:
    """Once a ping is answered, everything the connection sent before it was handled."""
    await client.send(control.Ping(id="marker", t0=0))
    await client.expect(control.Pong, lambda m: m.id == "marker")


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path / "redis") as server:
        yield server


@contextlib.asynccontextmanager
async def relays(
    tmp_path: Path, redis: RedisServer, count: int, **options: Any
) -> AsyncIterator[list[Relay]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                running_relay(tmp_path / f"relay{i}", redis_url=redis.url, **options)
            )
            for i in range(count)
        ]


async def test_clients_on_different_processes_converge(tmp_path: Path, redis: RedisServer) -> None:
    async with relays(tmp_path, redis, 2) as (one, two):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.set("from_a", 1)
        await b.wait_value("from_a", 1)
        await b.set("from_b", 2)
        await a.wait_value("from_b", 2)
        # a newcomer on either process gets everything in its sync step 2
        for relay in (one, two):
            [late] = await open_room(relay, SECRET, 1)
            await late.wait_value("from_a", 1)
            await late.wait_value("from_b", 2)
        assert one.hub.docs[DOC_ID].last_id == two.hub.docs[DOC_ID].last_id == 2


async def test_writes_from_both_sides_at_once_arrive_everywhere_in_one_order(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 2) as (one, two):
        a, b = (await open_room(one, SECRET, 1))[0], (await open_room(two, SECRET, 1))[0]
        for i in range(50):
            await a.set(f"a{i}", i)
            await b.set(f"b{i}", i)
        for client in (a, b):
            await wait_until(
                lambda c=client: all(c.value(f"{s}{i}") == i for s in "ab" for i in range(50)),
                client.changed,
                "all 100 writes",
            )
        await poll(lambda: one.hub.docs[DOC_ID].last_id == two.hub.docs[DOC_ID].last_id == 100,
                   "both processes at entry 100")  # fmt: skip
        assert one.hub.docs[DOC_ID].merged() == two.hub.docs[DOC_ID].merged()


async def test_presence_crosses_processes_and_only_its_owner_changes_it(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 2) as (one, two):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.send_awareness(7, 1, {"name": "Ada"})
        await wait_until(lambda: b.awareness.get(7) == {"name": "Ada"}, b.changed, "Ada on two")
        # b, on the other process, cannot take over or remove a's client id
        await b.send_awareness(7, 5, {"name": "Mallory"})
        await b.send_awareness(7, 6, None)
        await a.send_awareness(7, 2, {"name": "Ada", "focus": True})
        await wait_until(lambda: b.awareness.get(7) == {"name": "Ada", "focus": True}, b.changed,
                         "Ada's own change")  # fmt: skip
        assert a.awareness.get(7) is None  # (a never hears its own presence back)
        # a newcomer on process two is greeted with a's presence, held in Redis
        [c] = await open_room(two, SECRET, 1)
        await wait_until(lambda: c.awareness.get(7) is not None, c.changed, "greeting")
        assert c.awareness[7] == {"name": "Ada", "focus": True}
        # a leaves: everyone on the other process sees it go
        await a.close()
        await wait_until(lambda: 7 in b.awareness and b.awareness[7] is None, b.changed,
                         "Ada's removal")  # fmt: skip
        presence_key = keys(DOC_ID)[3]
        async with contextlib.aclosing(redis.client()) as client:
            assert await client.hlen(presence_key) == 0


async def test_a_dead_processes_presence_is_removed_by_the_others(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 1) as (one,):
        [a] = await open_room(one, SECRET, 1)
        async with running_relay(tmp_path / "doomed", redis_url=redis.url) as doomed:
            [d] = await open_room(doomed, SECRET, 1)
            await d.send_awareness(9, 1, {"name": "Ghost"})
            await wait_until(lambda: a.awareness.get(9) is not None, a.changed, "ghost present")
            # The process dies without a goodbye: its connections vanish and its heartbeat
            # stops (a relay stopping cleanly would remove the presence itself).
            assert doomed.link is not None
            doomed.hub.drop_peer = lambda peer: None  # type: ignore[method-assign]
            dead_id = doomed.link.process_id
        assert one.link is not None
        async with contextlib.aclosing(redis.client()) as client:
            now, _ = await client.time()
            await client.zadd(PROCESSES, {dead_id: now - 1})  # (its registration ran out)
        await one.link.heartbeat()
        await wait_until(lambda: 9 in a.awareness and a.awareness[9] is None, a.changed,
                         "ghost removed")  # fmt: skip


async def test_a_relay_restarted_on_redis_alone_serves_everything_compacted(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 2, compact_after_updates=4) as (one, two):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        for i in range(30):
            await (a if i % 2 else b).set(f"k{i}", i)
        await wait_until(lambda: a.value("k29") == 29 and b.value("k28") == 28, a.changed, "all")
        await relay_committed(one, DOC_ID, "k29", 29)
    meta, stream, snapshot, *_ = keys(DOC_ID)
    async with contextlib.aclosing(redis.client()) as client:
        assert await client.exists(snapshot)
        assert await client.xlen(stream) < 10  # the log was folded into snapshots as it grew
        assert int(await client.hget(meta, "seq")) == 30
    redis.stop()  # Redis itself restarts from its append-only file
    await redis.start()
    async with relays(tmp_path / "again", redis, 1) as (fresh,):
        [c] = await open_room(fresh, SECRET, 1)
        for i in range(30):
            await c.wait_value(f"k{i}", i)


async def test_a_process_cut_off_from_redis_catches_up_from_the_stream(
    tmp_path: Path, redis: RedisServer
) -> None:
    """What Redis published while the link was down is gone for that process (pub/sub is
    at-most-once); once it is back it reads what it missed from the document's stream."""
    async with (
        RedisProxy(redis) as link,
        running_relay(tmp_path / "one", redis_url=redis.url) as one,
        running_relay(tmp_path / "two", redis_url=link.url) as two,
    ):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.set("before", 1)
        await b.wait_value("before", 1)
        link.hold()
        for i in range(5):
            await a.set(f"lost{i}", i)
        await relay_committed(one, DOC_ID, "lost4", 4)
        link.cut()  # what was held back for process two is lost with the connections
        link.release()
        for i in range(5):
            await b.wait_value(f"lost{i}", i)
        await a.set("after", 2)
        await b.wait_value("after", 2)
        assert await metric(two, "focusmate_relay_redis_catch_ups_total") >= 1
        for relay in (one, two):
            assert await metric(relay, "focusmate_relay_redis_up") == 1


async def test_an_equivocation_across_two_processes_does_not_poison_the_room(
    tmp_path: Path, redis: RedisServer
) -> None:
    """Two updates that together make pycrdt panic (tests/pycrdt_panics.py), sent to two
    processes at once: each checks its own against what it holds, and neither knows the other's
    yet. The other's then arrives through the log, and must be checked before it goes live, or
    every newcomer's sync step 2 panics its pycrdt client."""
    async with (
        RedisProxy(redis) as link,
        running_relay(tmp_path / "one", redis_url=redis.url) as one,
        running_relay(tmp_path / "two", redis_url=link.url) as two,
    ):
        x, y = (await open_room(one, SECRET, 1))[0], (await open_room(two, SECRET, 1))[0]
        await legit_round(x, y, "before")
        link.hold()  # process two does not hear of process one's entry ...
        await x.push(EQUIVOCATION_BASE)
        await poll(lambda: one.hub.docs[DOC_ID].last_id == 2, "the base stored")
        await y.push(EQUIVOCATION)  # ... before it checks and appends this one
        meta = keys(DOC_ID)[0]
        async with contextlib.aclosing(redis.client()) as client:
            await poll_async(lambda: client.hget(meta, "seq"), b"3", "the equivocation stored")
        link.release()
        await poll(lambda: two.hub.docs[DOC_ID].last_id == 3, "process two caught up")
        for relay in (one, two):
            [late] = await open_room(relay, SECRET, 1)
            assert not late._reader.done(), late._reader.exception()
            await legit_round(late, x, f"after, on {relay.port}")
        # and the raw log (both entries) loads cleanly on a fresh process, and compacts
        async with running_relay(tmp_path / "three", redis_url=redis.url) as three:
            [fresh] = await open_room(three, SECRET, 1)
            assert not fresh._reader.done(), fresh._reader.exception()
            await three.hub.compact(three.hub.docs[DOC_ID])
            [late] = await open_room(three, SECRET, 1)
            assert late.map().to_py() == x.map().to_py()


# -- hosted timers --------------------------------------------------------------------------


async def _room(relay: Relay, tmp_path: Path) -> tuple[Workspace, Invite]:
    ws = Workspace(tmp_path / "owner", clock=FakeClock(START))
    room, invite = ws.create_room("Deep work")
    pusher = await DocClient.open(doc_url(relay, invite.secret))
    await pusher.push(ws.document(room.room_id, kind=DOC_KIND).encode_update())
    await relay_committed(relay, invite.room_id, "owner", ws.user_id, name="meta")
    await pusher.close()
    return ws, invite


async def _member(relay: Relay, ws: Workspace, invite: Invite) -> ControlClient:
    client = await _online(relay, ws.identity)
    await client.send(control.Subscribe(doc_id=invite.room_id, token=relay_token(invite.secret)))
    await client.expect(control.Subscribed)
    return client


async def test_timer_commands_through_two_processes_share_one_timer_on_one_clock(
    tmp_path: Path, redis: RedisServer
) -> None:
    """Process two's machine clock is an hour fast; both stamp the timer on Redis's clock."""
    fast = FakeClock(START + 3600)
    async with (
        running_relay(tmp_path / "one", redis_url=redis.url, clock=FakeClock(START)) as one,
        running_relay(tmp_path / "two", redis_url=redis.url, clock=fast) as two,
    ):
        ws, invite = await _room(one, tmp_path)
        a, b = await _member(one, ws, invite), await _member(two, ws, invite)
        commands = ("start", "pause", "resume", "pause", "resume", "skip")
        for i, command in enumerate(commands):
            client = a if i % 2 == 0 else b
            await client.send(
                control.TimerRequest(id=str(i), doc_id=invite.room_id, command=command)
            )
            applied = await client.expect(control.TimerApplied, lambda m, i=i: m.ref == str(i))
        # one timer: each command applied to the state the previous one left, wherever it ran
        assert applied.state["revision"] == len(commands)
        stamps = [applied.state["changed_at"], applied.state["phase_started_at"]]
        assert all(abs(stamp - one.clock.now()) < 5 for stamp in stamps)
        # and clients on either process measure the same offset to "the relay"
        offsets = []
        for client in (a, b):
            estimator = OffsetEstimator()
            for i in range(3):
                await client.send(control.Ping(id=f"p{i}", t0=START))
                pong = await client.expect(control.Pong, lambda m, i=i: m.id == f"p{i}")
                estimator.add(ClockSample.from_times(pong.t0, pong.t1, pong.t2, START))
            offsets.append(estimator.offset)
        assert offsets[0] is not None and offsets[1] is not None
        assert abs(offsets[0] - offsets[1]) < 0.5


async def test_simultaneous_timer_commands_on_two_processes_apply_one_after_the_other(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 2) as (one, two):
        ws, invite = await _room(one, tmp_path)
        a, b = await _member(one, ws, invite), await _member(two, ws, invite)
        await a.send(control.TimerRequest(id="s", doc_id=invite.room_id, command="start"))
        await a.expect(control.TimerApplied)
        await asyncio.gather(
            a.send(control.TimerRequest(id="pa", doc_id=invite.room_id, command="pause")),
            b.send(control.TimerRequest(id="pb", doc_id=invite.room_id, command="pause")),
        )
        replies = [
            await client.expect(object, lambda m, r=ref: getattr(m, "ref", None) == r)
            for client, ref in ((a, "pa"), (b, "pb"))
        ]
        applied = [r for r in replies if isinstance(r, control.TimerApplied)]
        refused = [r for r in replies if isinstance(r, control.Error)]
        # the second pause met a paused timer: refused by the room's rules, not applied twice
        assert len(applied) == 1 and len(refused) == 1
        assert refused[0].code == "timer_refused"
        assert applied[0].state["revision"] == 2


# -- direct messages ------------------------------------------------------------------------


async def test_a_dm_reaches_its_recipient_on_another_process_and_receipts_come_back(
    tmp_path: Path, redis: RedisServer
) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with relays(tmp_path, redis, 2) as (one, two):
        a = await _online(one, alice)
        b = await _online(two, bob)
        envelope = seal(alice, bob.public, "Break at :50?", now=START)
        await a.send(control.DmSend(envelope=envelope.to_dict()))
        assert (await a.expect(control.DmAccepted)).id == envelope.id
        delivered = await b.expect(control.DmDeliver)  # live, from the other process
        assert open_envelope(bob, Envelope.from_dict(delivered.envelope)).text == "Break at :50?"
        await b.send(control.DmAck(ids=(envelope.id,)))
        receipt = await a.expect(control.Receipt, lambda r: r.kind == "delivered")
        assert (receipt.message_id, receipt.by) == (envelope.id, bob.user_id)
        await a.send(control.DmAck(ids=(receipt.id,)))
        await _processed(a)
        assert await one.mailboxes.store.totals() == (0, 0)


async def test_mail_waits_in_redis_for_a_recipient_who_comes_online_elsewhere(
    tmp_path: Path, redis: RedisServer
) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with relays(tmp_path, redis, 2) as (one, _):
        a = await _online(one, alice)
        sent = [seal(alice, bob.public, f"note {i}", now=START + i) for i in range(3)]
        for envelope in sent:
            await a.send(control.DmSend(envelope=envelope.to_dict()))
            await a.expect(control.DmAccepted, lambda m, e=envelope: m.id == e.id)
    async with relays(tmp_path / "later", redis, 1) as (three,):  # every relay restarted
        b = await ControlClient.open(three, bob)
        got = [await b.expect(control.DmDeliver) for _ in sent]
        assert [d.envelope["id"] for d in got] == [e.id for e in sent]  # in the order sent


async def _health(relay: Relay) -> tuple[int, dict[str, Any]]:
    def get() -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    return await asyncio.to_thread(get)


async def test_relays_ride_out_a_redis_restart(tmp_path: Path, redis: RedisServer) -> None:
    async with relays(tmp_path, redis, 2) as (one, two):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.set("before", 1)
        await b.wait_value("before", 1)
        redis.stop()
        status, body = await _health(one)
        assert status == 503 and body["storage"].startswith("redis"), body
        await a.set("lost with the connection", 1)  # cannot be stored: the writer must resend
        code, reason = await a.wait_closed()
        assert code == control.CloseCode.INTERNAL, reason
        refused = await DocClient.open(doc_url(two, b"another room" * 3))  # nor can one load
        assert (await refused.wait_closed())[0] == control.CloseCode.TRY_AGAIN
        await redis.start()  # same port, its append-only file, and no Lua scripts cached
        [c] = await open_room(one, SECRET, 1)
        await c.wait_value("before", 1)
        await c.set("after", 2)
        await b.wait_value("after", 2)  # b stayed connected to two throughout
        await b.set("reply", 3)
        await c.wait_value("reply", 3)
        assert (await _health(two))[0] == 200


async def test_mail_announced_while_a_process_was_cut_off_still_reaches_its_recipient(
    tmp_path: Path, redis: RedisServer
) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with (
        RedisProxy(redis) as link,
        running_relay(tmp_path / "one", redis_url=redis.url) as one,
        running_relay(tmp_path / "two", redis_url=link.url) as two,
    ):
        a = await _online(one, alice)
        b = await _online(two, bob)
        await _processed(b)  # (two is watching bob's mailbox)
        link.hold()
        envelope = seal(alice, bob.public, "sent while two was cut off", now=START)
        await a.send(control.DmSend(envelope=envelope.to_dict()))
        await a.expect(control.DmAccepted)  # stored in Redis, announced: lost on the way to two
        link.cut()
        link.release()
        delivered = await b.expect(control.DmDeliver)
        assert delivered.envelope["id"] == envelope.id


async def test_a_redis_that_would_lose_rooms_is_called_out_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_redis(tmp_path / "redis", persistent=False) as volatile:
        async with contextlib.aclosing(volatile.client()) as client:
            await client.config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level("WARNING", logger="focusmate.relay"):
            async with running_relay(tmp_path / "relay", redis_url=volatile.url):
                pass
    events = {record.getMessage() for record in caplog.records}
    assert {"relay.redis_evicts", "relay.redis_not_persistent"} <= events


def test_serve_refuses_a_redis_url_it_cannot_use(tmp_path: Path) -> None:
    for url, said in (
        ("http://127.0.0.1:6379", "--redis-url must start with redis://"),
        (f"redis://127.0.0.1:{free_port()}/0", "cannot reach Redis at redis://127.0.0.1:"),
    ):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = relay_main(["--data-dir", str(tmp_path), "serve", "--redis-url", url])
        assert code == 1, err.getvalue()
        assert said in err.getvalue()


async def test_a_process_that_missed_a_compaction_reloads_the_room(
    tmp_path: Path, redis: RedisServer
) -> None:
    """While process two was cut off, process one's writes were folded into a snapshot and
    trimmed from the stream: two cannot replay them, so it reloads the room from the snapshot
    and sends its clients what they miss."""
    async with (
        RedisProxy(redis) as link,
        running_relay(tmp_path / "one", redis_url=redis.url, compact_after_updates=4) as one,
        running_relay(tmp_path / "two", redis_url=link.url, compact_after_updates=4) as two,
    ):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.set("before", 0)
        await b.wait_value("before", 0)
        link.hold()
        for i in range(20):  # several compactions' worth
            await a.set(f"k{i}", i)
        await relay_committed(one, DOC_ID, "k19", 19)
        stream = keys(DOC_ID)[1]
        async with contextlib.aclosing(redis.client()) as client:
            first = await client.xrange(stream, count=1)
            assert not first or int(first[0][0].split(b"-")[0]) > 2  # two's next entry is gone
        link.cut()
        link.release()
        for i in range(20):
            await b.wait_value(f"k{i}", i)
        assert await metric(two, "focusmate_relay_redis_reloads_total") >= 1
        await b.set("after", 1)
        await a.wait_value("after", 1)


async def test_a_full_redis_refuses_writes_and_loses_nothing(
    tmp_path: Path, redis: RedisServer
) -> None:
    """With noeviction, a Redis at its memory limit refuses the append script: the writer is
    closed with 1011 (its app resends later) and nothing stored is touched."""
    async with relays(tmp_path, redis, 2) as (one, two):
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.set("kept", 1)
        await b.wait_value("kept", 1)
        async with contextlib.aclosing(redis.client()) as client:
            used = int((await client.info("memory"))["used_memory"])
            await client.config_set("maxmemory", used)  # full from now on
            await b.set("refused", "x" * 50_000)
            code, reason = await b.wait_closed()
            assert code == control.CloseCode.INTERNAL, reason
            await client.config_set("maxmemory", 0)
        [c] = await open_room(two, SECRET, 1)
        await c.wait_value("kept", 1)
        assert c.value("refused") is None
        await c.set("after", 2)
        await a.wait_value("after", 2)


async def test_a_timer_lock_left_by_a_dead_process_delays_a_command_only_until_it_expires(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 1) as (one,):
        ws, invite = await _room(one, tmp_path)
        a = await _member(one, ws, invite)
        lock = keys(invite.room_id)[4]
        async with contextlib.aclosing(redis.client()) as client:
            await client.set(lock, "a process that died holding it", px=300)
            await a.send(control.TimerRequest(id="t", doc_id=invite.room_id, command="start"))
            applied = await a.expect(control.TimerApplied)
            assert applied.state["status"] == "running"
            assert not await client.exists(lock)  # released after the command


async def test_a_mailbox_limit_holds_over_every_process(tmp_path: Path, redis: RedisServer) -> None:
    alice, carol, bob = Identity.generate(), Identity.generate(), Identity.generate()
    async with relays(tmp_path, redis, 2, limits=limits(mailbox_max_items=2)) as (one, two):
        a, c = await _online(one, alice), await _online(two, carol)
        for i in range(2):
            envelope = seal(alice, bob.public, f"from alice {i}", now=START + i)
            await a.send(control.DmSend(envelope=envelope.to_dict()))
            await a.expect(control.DmAccepted, lambda m, e=envelope: m.id == e.id)
        third = seal(carol, bob.public, "from carol, on the other process", now=START + 2)
        await c.send(control.DmSend(envelope=third.to_dict()))
        refused = await c.expect(control.Error)
        assert (refused.code, refused.ref) == ("dm_refused", third.id)
        assert "mailbox is full" in refused.message
        b = await _online(two, bob)
        got = [await b.expect(control.DmDeliver) for _ in range(2)]
        assert {d.envelope["sender"] for d in got} == {alice.user_id}


async def test_a_timer_command_on_a_full_redis_is_refused_and_the_member_stays(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with relays(tmp_path, redis, 1) as (one,):
        ws, invite = await _room(one, tmp_path)
        member = await _member(one, ws, invite)
        async with contextlib.aclosing(redis.client()) as client:
            used = int((await client.info("memory"))["used_memory"])
            await client.config_set("maxmemory", used)
            await member.send(control.TimerRequest(id="t", doc_id=invite.room_id, command="start"))
            refused = await member.expect(control.Error)
            assert (refused.code, refused.ref) == ("timer_refused", "t"), refused
            await client.config_set("maxmemory", 0)
        await _processed(member)  # still connected
        await member.send(control.TimerRequest(id="u", doc_id=invite.room_id, command="start"))
        assert (await member.expect(control.TimerApplied)).state["status"] == "running"


async def test_relays_share_a_redis_over_tls(tmp_path: Path) -> None:
    """``rediss://`` with a private CA (``?ssl_ca_certs=``), as redis-py reads it: the relay's
    own connections (writer, listener) trust it the same way."""
    tls = self_signed(tmp_path, "127.0.0.1")
    async with (
        running_redis(tmp_path / "redis", tls=tls) as secure,
        relays(tmp_path, secure, 2) as (one, two),
    ):
        assert secure.url.startswith("rediss://")
        [a] = await open_room(one, SECRET, 1)
        [b] = await open_room(two, SECRET, 1)
        await a.set("over", "tls")
        await b.wait_value("over", "tls")
