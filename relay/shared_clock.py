"""One timebase for every relay process: Redis's clock.

Clients count hosted timers down on the relay's clock (they learn their offset to it from
pings), so all processes behind one address must stamp timers, pongs and challenges on the same
clock, however far their machines' clocks drift apart. Each process measures its offset to
Redis's ``TIME`` (the sample with the shortest round trip, halved) and adds it to its own clock;
it measures again every ``RESYNC_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from focusmate.clock import Clock
from relay.logs import fields
from relay.redis_link import RedisLink

log = logging.getLogger("focusmate.relay")
SAMPLES = 5
RESYNC_SECONDS = 30.0


class SharedClock:
    def __init__(self, link: RedisLink, base: Clock) -> None:
        self.link = link
        self.base = base
        self.offset = 0.0  # Redis's clock minus this process's
        self.round_trip = 0.0  # of the sample the offset came from
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self.base.now() + self.offset

    async def measure(self) -> float:
        best: tuple[float, float] | None = None
        for _ in range(SAMPLES):
            before = self.base.now()
            redis_now = await self.link.time()
            after = self.base.now()
            sample = (after - before, redis_now - (before + after) / 2)
            if best is None or sample[0] < best[0]:
                best = sample
        assert best is not None
        self.round_trip, self.offset = best
        return self.offset

    async def start(self) -> None:
        await self.measure()
        log.info(
            "relay.clock_offset",
            extra=fields(
                offset_seconds=round(self.offset, 6), round_trip=round(self.round_trip, 6)
            ),
        )
        self._task = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                await self.measure()
            except (RedisError, OSError) as err:  # keep the last offset until Redis is back
                log.error("relay.clock_sync_failed", extra=fields(error=str(err)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
