"""Token buckets: a sustained rate with a burst on top, on an injected monotonic time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # capacity
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, *, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, amount: float, *, now: float) -> float:
        """Spend ``amount``; returns how long to wait (0 when it was there). May go negative, so
        a burst larger than the bucket is allowed once and then paid back by waiting."""
        self._refill(now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def available(self, *, now: float) -> float:
        self._refill(now)
        return self.tokens

    def try_take(self, amount: float, *, now: float) -> bool:
        """Spend ``amount`` only if it is there."""
        self._refill(now)
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


class BucketsByKey:
    """One bucket per key (an IP address), bounded in number: the least recently used go.

    A bucket that has refilled is the same as a new one, so :meth:`prune` forgets those: the
    table holds only the keys active within the refill time, not every address ever seen.
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 65_536) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, key: str, *, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self.rate, self.burst, now=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def peek(self, key: str, *, now: float) -> float:
        """The tokens ``key`` has, without making it a bucket (a key never seen has a full one)."""
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else bucket.available(now=now)

    def prune(self, *, now: float, keep: Container[str] = ()) -> int:
        """Forget the full buckets, except those of ``keep`` (keys whose bucket is still held,
        e.g. by open connections sharing it); returns how many went."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.available(now=now) >= bucket.burst and key not in keep
        ]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
