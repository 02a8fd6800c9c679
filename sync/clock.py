"""Clock offset to a peer, NTP-style: four timestamps per probe, trust the fastest probes.

For one ping/pong: ``t0`` our send, ``t1`` their receipt, ``t2`` their reply, ``t3`` our receipt.
Round-trip delay is ``(t3 - t0) - (t2 - t1)``; offset (their clock minus ours) is
``((t1 - t0) + (t2 - t3)) / 2``. The error of one sample is at most half its delay, so the
estimator keeps the last few samples and reports the offset of the one with the smallest delay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockSample:
    offset: float
    delay: float

    @classmethod
    def from_times(cls, t0: float, t1: float, t2: float, t3: float) -> ClockSample:
        delay = max(0.0, (t3 - t0) - (t2 - t1))
        return cls(offset=((t1 - t0) + (t2 - t3)) / 2, delay=delay)


class OffsetEstimator:
    """Keeps a window of samples; ``offset`` is the minimum-delay sample's (None before any)."""

    def __init__(self, window: int = 16) -> None:
        self._samples: deque[ClockSample] = deque(maxlen=window)

    def add(self, sample: ClockSample) -> None:
        self._samples.append(sample)

    @property
    def best(self) -> ClockSample | None:
        return min(self._samples, key=lambda s: s.delay, default=None)

    @property
    def offset(self) -> float | None:
        best = self.best
        return None if best is None else best.offset

    def __len__(self) -> int:
        return len(self._samples)
