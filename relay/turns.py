"""Fair reading: each client address gets a few frames handled per turn of the event loop.

The rate limits cap how much an address may send, but not when: a connection with frames
buffered would otherwise have them all handled back to back, and an address with 32 connections
gets 32 runs of them per turn of the loop to a calm client's one frame. Every calm update then
waits behind the flood (measured: calm p99 4x its baseline). Here an address's frames beyond
``quota`` per turn wait for the next turn, in arrival order, so each address, however many
connections it has, gets the same share of the loop; a couple of frames per turn keep a lone fast
writer's updates batched into one commit.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Turns:
    def __init__(self, quota: int) -> None:
        if quota < 1:
            raise ValueError("quota must be at least 1")
        self.quota = quota
        self._used: dict[str, int] = {}  # frames handled this turn, per address
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._turn_scheduled = False

    def try_take(self, address: str) -> bool:
        """Whether ``address`` may have one more frame handled now: it has frames left this
        turn, and none waiting before it. (Not a coroutine: this is on every frame's path.)"""
        used = self._used.get(address, 0)
        if used < self.quota and address not in self._waiting:
            self._used[address] = used + 1
            self._schedule_turn()
            return True
        return False

    async def take(self, address: str) -> None:
        """Return when ``address`` may have one more frame handled: at once if
        :meth:`try_take` allows it, else as :meth:`wait`."""
        if not self.try_take(address):
            await self.wait(address)

    async def wait(self, address: str) -> None:
        """Return in a later turn, after the frames of ``address`` waiting before this one
        (for a frame :meth:`try_take` has just refused)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(address, deque()).append(waiter)
        self._schedule_turn()
        await waiter  # (a cancelled waiter is skipped when its turn comes)

    def waiting(self) -> int:
        """Frames waiting for a turn, over all addresses (for tests and metrics)."""
        return sum(len(queue) for queue in self._waiting.values())

    def _schedule_turn(self) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new turn: every address's count starts again, first spent on its waiting frames."""
        self._turn_scheduled = False
        self._used.clear()
        for address, queue in list(self._waiting.items()):
            granted = 0
            while queue and granted < self.quota:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    granted += 1
            if granted:
                self._used[address] = granted
            if not queue:
                del self._waiting[address]
        if self._waiting or self._used:
            self._schedule_turn()
