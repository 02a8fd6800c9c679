"""Keepalive: find the connections whose client is gone, and only those.

websockets' own keepalive pings every connection and closes it when the pong is late. A pong
travels behind everything the client sent before it, though, so a connection the relay reads
slowly on purpose (a throttled flood, a backlog waiting for the disk) missed its pong deadline
and was dropped with its unread frames, when it should only have been slowed. Here a client is
alive while frames keep arriving from it: only a connection the relay has heard nothing from for
a whole interval is pinged, and only one that then stays silent for another is closed.

One sweep a second (four per interval, if that is shorter) walks every connection, a comparison
each; pings go out per connection as it falls due (staggered by connect time, like the
library's), as a short task that lives until the pong, so an idle connection costs no task
between pings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sync.control import CloseCode

if TYPE_CHECKING:
    from relay.peer import Peer

SWEEP_SECONDS = 1.0


class Keepalive:
    def __init__(self, *, interval: float, monotonic: Callable[[], float]) -> None:
        self.interval = interval
        self.monotonic = monotonic
        self._pings: set[asyncio.Task[None]] = set()
        self.pongs = 0  # answered pings (for tests)

    @property
    def sweep_seconds(self) -> float:
        return min(SWEEP_SECONDS, self.interval / 4)

    def sweep(self, peers: Iterable[Peer]) -> int:
        """Ping the connections silent for an interval; close those still silent an interval
        after their ping (1011, like the library). Returns how many were closed."""
        now = self.monotonic()
        closed = 0
        for peer in peers:
            if now < peer.keepalive_due or peer.closed:
                continue
            if now - peer.heard < self.interval or peer.reading_paused():
                # Heard from it (or it is the relay that is not reading): alive.
                peer.pinged = False
                peer.keepalive_due = max(peer.heard, now) + self.interval
            elif peer.pinged:  # and not answered since
                peer.close(CloseCode.INTERNAL, "keepalive ping timeout")
                closed += 1
            else:
                peer.pinged = True
                peer.keepalive_due = now + self.interval
                task = asyncio.get_running_loop().create_task(self._ping(peer))
                self._pings.add(task)
                task.add_done_callback(self._pings.discard)
        return closed

    async def _ping(self, peer: Peer) -> None:
        try:
            pong = await peer.ws.ping()
            await asyncio.wait_for(pong, self.interval)
        except Exception:  # closed meanwhile, or no pong in time: the next sweep decides
            return
        peer.heard = self.monotonic()
        peer.pinged = False  # answered
        self.pongs += 1

    async def close(self) -> None:
        for task in list(self._pings):
            task.cancel()
        await asyncio.gather(*self._pings, return_exceptions=True)
