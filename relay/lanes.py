"""Fair queues: writes wait in one lane per document and leave round-robin, a batch at a time.

Both writers (the SQLite group commit, relay/committer.py, and the Redis log writer, relay/
shared_log.py) batch what is queued. Taking one write from each lane in turn means a flood into
some rooms (one address over many connections, each within its own budget) cannot put a calm
room's update behind thousands of its own: that update goes into the next batch. Each lane stays
in submission order, so a document's writes are applied in order.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    def __init__(self) -> None:
        self._lanes: dict[str, deque[T]] = {}  # by lane name, in round-robin order
        self.queued = 0

    def push(self, lane: str, item: T) -> None:
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = deque()
        queue.append(item)
        self.queued += 1

    def batch(self, limit: int) -> list[T]:
        """Up to ``limit`` items, one from each lane in turn; a lane left with items goes to
        the back of the order, so the lanes after it come first next time."""
        batch: list[T] = []
        lanes = self._lanes
        while lanes and len(batch) < limit:
            for lane in list(lanes):
                queue = lanes.pop(lane)
                batch.append(queue.popleft())
                if queue:
                    lanes[lane] = queue  # (re-inserted: now last in the order)
                if len(batch) >= limit:
                    break
        self.queued -= len(batch)
        return batch
