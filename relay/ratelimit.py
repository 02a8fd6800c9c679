"""Token buckets: a sustained rate with a burst on top, on an injected monotonic time."""

from __future__ import annotations

from collections import OrderedDict
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
    """One bucket per key (an IP address), bounded in number: the least recently used go."""

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
