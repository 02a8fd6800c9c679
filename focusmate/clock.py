"""Time as an injected dependency.

Domain code takes ``now`` (seconds since the Unix epoch, a float) as an argument; composition roots
pass a :class:`Clock`. Tests use :class:`FakeClock` and move it with ``advance``.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The wall clock of this machine."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("FakeClock.advance takes a non-negative number of seconds")
        self._now += seconds

    def set(self, now: float) -> None:
        self._now = float(now)
