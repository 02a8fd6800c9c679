"""Fair reading (relay/turns.py): an address's share of each turn of the event loop is the same
however many connections it has. Counted in turns of the real asyncio loop, never in time."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

import pytest

from relay.turns import Turns

QUOTA = 4


class Ticks:
    """Counts turns of the running loop: a callback that runs once per iteration."""

    def __init__(self) -> None:
        self.now = 0
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        if not self._stopped:
            self.now += 1
            self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._stopped = True


@pytest.fixture
async def ticks() -> Iterator[Ticks]:
    counter = Ticks()
    yield counter
    counter.stop()


async def connection(
    turns: Turns, address: str, frames: int, log: list[tuple[int, str, int]], ticks: Ticks
) -> None:
    for i in range(frames):
        await turns.take(address)
        log.append((ticks.now, address, i))


async def test_an_address_with_many_connections_gets_one_quota_per_turn(ticks: Ticks) -> None:
    turns, log = Turns(QUOTA), []
    flood = [connection(turns, "10.0.0.1", 20, log, ticks) for _ in range(32)]
    await asyncio.gather(*flood, connection(turns, "10.0.0.2", QUOTA, log, ticks))

    per_turn = collections.Counter((tick, address) for tick, address, _ in log)
    assert max(n for (_, address), n in per_turn.items() if address == "10.0.0.1") == QUOTA
    # The calm address's frames all went in the first turn, ahead of the flood's 640.
    assert {tick for tick, address, _ in log if address == "10.0.0.2"} == {log[0][0]}
    assert sum(address == "10.0.0.1" for _, address, _ in log) == 32 * 20
    assert turns.waiting() == 0


async def test_a_lone_connection_is_not_held_up_within_its_quota(ticks: Ticks) -> None:
    turns, log = Turns(QUOTA), []
    start = ticks.now
    await connection(turns, "10.0.0.3", QUOTA, log, ticks)
    assert [tick for tick, _, _ in log] == [start] * QUOTA  # no wait at all


async def test_waiting_frames_are_handled_in_arrival_order(ticks: Ticks) -> None:
    turns, order = Turns(1), []

    async def frame(name: str) -> None:
        await turns.take("10.0.0.4")
        order.append(name)

    tasks = [asyncio.create_task(frame(f"f{i}")) for i in range(10)]
    await asyncio.gather(*tasks)
    assert order == [f"f{i}" for i in range(10)]


async def test_a_closed_connection_waiting_for_its_turn_does_not_hold_up_the_rest(
    ticks: Ticks,
) -> None:
    turns, order = Turns(1), []

    async def frame(name: str) -> None:
        await turns.take("10.0.0.5")
        order.append(name)

    first, gone, last = (asyncio.create_task(frame(n)) for n in ("first", "gone", "last"))
    await asyncio.sleep(0)  # all three have asked for a turn
    gone.cancel()
    await asyncio.gather(first, last)
    assert order == ["first", "last"]
    assert gone.cancelled()
    assert turns.waiting() == 0


def test_a_quota_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Turns(0)
