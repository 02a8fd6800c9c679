"""Time as an injected dependency.

Domain code takes ``now`` (seconds since the Unix epoch, a float) as an argument; composition roots
pass a :class:`Clock`. Tests use :class:`FakeClock` and move it with ``advance``.
"""

from __future__ import annotations

import os
import time
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from focusmate.errors import ValidationError


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


def local_zone(name: str | None = None) -> ZoneInfo:
    """The named zone, else this machine's (``$TZ``, then /etc/localtime), else UTC."""
    candidates = [name] if name else [os.environ.get("TZ", "").lstrip(":"), _etc_localtime()]
    for candidate in candidates:
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError) as err:
                if name:
                    raise ValidationError(f"Unknown time zone {name!r}.") from err
    return ZoneInfo("UTC")


def _etc_localtime() -> str:
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return ""
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else ""
