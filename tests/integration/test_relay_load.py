"""What connection churn leaves behind in the relay, and that cleaning it up weakens no limit.

A relay that meets many addresses (users behind many homes, or an attacker) must not keep a
limiter bucket for each of them forever: ``bench/conn_churn.py`` measures the memory over 10k
cycles; these tests pin the behaviour behind it. Real relay on port 0, real websockets from
several loopback source addresses, an injected monotonic clock for the refill time; the
housekeeping pass is called directly instead of waiting its 5 s.
"""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from focusmate.invite import new_room_secret
from relay.server import FULL_COLLECTION_THRESHOLD, Relay
from sync.ysync import SyncStep1, encode_message
from tests.integration.relaykit import DEADLINE, doc_url, limits, poll, running_relay

REJECTED = "focusmate_relay_rejected_frames_total"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rejected(relay: Relay, reason: str) -> float:
    value = relay.metrics.registry.get_sample_value(REJECTED, {"reason": reason})
    return value or 0.0


async def open_from(url: str, address: str) -> ClientConnection:
    """A websocket to ``url`` from the loopback source ``address`` (Linux routes 127/8)."""
    return await connect(url, compression=None, local_addr=(address, 0))


def address_entries(relay: Relay) -> float:
    value = relay.metrics.registry.get_sample_value("focusmate_relay_address_entries")
    return value or 0.0


async def test_relay_forgets_departed_addresses_after_the_refill_time(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    rooms = [new_room_secret() for _ in range(3)]
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, monotonic=clock) as relay:
        for i in range(12):
            ws = await open_from(doc_url(relay, rooms[i % 3]), f"127.0.3.{10 + i}")
            await ws.send(encode_message(SyncStep1(b"\x00")))
            await ws.recv()
            await ws.close()
        await poll(lambda: not relay.peers, "every connection gone")
        await relay.housekeep()
        held = relay.admission.tracked()
        assert held >= 12  # just now: each address's connect budget is still being refilled

        clock.now += 3600  # every budget has refilled: a fresh one would be the same
        await relay.housekeep()
        assert relay.admission.tracked() == 0
        assert address_entries(relay) == 0  # what an operator sees on /metrics


async def test_forgetting_does_not_reset_an_address_that_is_still_limited(tmp_path: Path) -> None:
    clock = FakeMonotonic()  # frozen: nothing refills during the test
    secret = new_room_secret()
    lim = limits(connect_burst_per_ip=2.0, connects_per_ip_per_second=1.0)
    async with (
        asyncio.timeout(DEADLINE),
        running_relay(tmp_path, monotonic=clock, limits=lim) as relay,
    ):
        url = doc_url(relay, secret)
        for _ in range(2):
            ws = await open_from(url, "127.0.4.1")
            await ws.close()
        await relay.housekeep()
        with pytest.raises(InvalidStatus) as refused:  # the spent budget was not reset
            await open_from(url, "127.0.4.1")
        assert refused.value.response.status_code == 429
        ws = await open_from(url, "127.0.4.2")  # another address is not affected
        await ws.close()


async def test_connections_of_one_address_still_share_its_budget_after_housekeeping(
    tmp_path: Path,
) -> None:
    """The per-address message budget is held by the open connections: housekeeping must not
    swap it for a fresh one, or each new connection would bring a budget of its own."""
    clock = FakeMonotonic()
    secret = new_room_secret()
    burst = 10
    lim = limits(ip_message_burst=float(burst), ip_messages_per_second=1000.0)
    async with (
        asyncio.timeout(DEADLINE),
        running_relay(tmp_path, monotonic=clock, limits=lim) as relay,
    ):
        url = doc_url(relay, secret)
        first = await open_from(url, "127.0.5.1")
        await first.recv()  # sync step 1: the relay's handler has the connection
        await first.send(encode_message(SyncStep1(b"\x00")))
        await first.recv()  # its answer: the first frame went through the budget
        clock.now += 3600  # the budget is full again, and still held by `first`
        await relay.housekeep()
        second = await open_from(url, "127.0.5.1")
        await second.recv()
        for ws in (first, second):
            for _ in range(burst // 2 + 1):
                await ws.send(encode_message(SyncStep1(b"\x00")))
        await poll(lambda: rejected(relay, "rate_limited") > 0, "the shared budget to run out")
        for ws in (first, second):
            ws.transport.abort()


async def test_an_event_loop_stall_shows_on_metrics(tmp_path: Path) -> None:
    """A stall (a long callback, a full garbage collection) delays every room: operators see
    it in ``focusmate_relay_event_loop_lag_seconds``."""
    name = "focusmate_relay_event_loop_lag_seconds_bucket"

    def stalls_over(relay: Relay, seconds: str) -> float:
        registry = relay.metrics.registry
        total = registry.get_sample_value(name, {"le": "+Inf"}) or 0.0
        return total - (registry.get_sample_value(name, {"le": seconds}) or 0.0)

    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        await poll(lambda: sum(relay.metrics.loop_lag.counts) > 0, "a first probe")
        before = stalls_over(relay, "0.2")
        time.sleep(0.3)  # the stall under test: blocks the relay's loop (it runs in this one)
        await poll(lambda: stalls_over(relay, "0.2") > before, "the stall on /metrics")


async def test_a_full_garbage_collection_shows_on_metrics(tmp_path: Path) -> None:
    """Full collections pause every room (bench/gc_storm.py): operators can count them."""
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        before = sum(relay.metrics.gc_pauses.counts)
        gc.collect(1)  # a younger generation does not count
        assert sum(relay.metrics.gc_pauses.counts) == before
        gc.collect()
        assert sum(relay.metrics.gc_pauses.counts) == before + 1
    gc.collect()  # a stopped relay no longer listens
    assert sum(relay.metrics.gc_pauses.counts) == before + 1


async def test_the_relay_collects_fully_after_departures_not_during_arrivals(
    tmp_path: Path,
) -> None:
    """A reconnect storm triggers no full collection (each would stall every room, longer the
    more clients are connected); connections that left do, so their memory comes back."""
    secret = new_room_secret()
    threshold = gc.get_threshold()
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        assert gc.get_threshold()[2] == FULL_COLLECTION_THRESHOLD  # CPython's own: pushed back
        relay.closed_before_collecting = 5
        collections = relay.metrics.gc_pauses.counts
        clients = [await open_from(doc_url(relay, secret), f"127.0.6.{i + 1}") for i in range(6)]
        await poll(lambda: len(relay.peers) == 6, "six connections")
        await relay.housekeep()
        assert sum(collections) == 0  # arrivals only: nothing to collect

        for ws in clients[:5]:
            await ws.close()
        await poll(lambda: relay.closed_since_collection == 5, "five departures")
        await relay.housekeep()
        assert sum(collections) == 1
        assert relay.closed_since_collection == 0
        await clients[5].close()
    assert gc.get_threshold() == threshold  # a stopped relay leaves the process as it was
