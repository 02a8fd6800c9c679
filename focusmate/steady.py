"""Shown time that never runs backwards, whatever the wall clock does.

Countdowns are drawn from "now on the room's timebase": this machine's wall clock plus the
offset the sync engine measured. The wall clock can step back (a manual change, an NTP step, a
resumed virtual machine) and the offset only catches up at the next clock exchange, so drawn
straight, a countdown would jump up by however far the clock stepped. :class:`SteadyTime` sits
between the two: time that went forward is shown as it is (a countdown may jump ahead: that
is the room's real time), time that went back is not. Until the timebase catches up, the shown
time moves on at :data:`CATCH_UP_RATE` of the monotonic clock's pace, so a countdown slows
down but never stops and never goes back, and it meets the timebase again after twice the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CATCH_UP_RATE = 0.5  # how fast shown time moves, per monotonic second, while it is ahead


class SteadyTime:
    """Per key (a room), the time to show for a computed timebase reading."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._shown: dict[str, tuple[float, float]] = {}  # key -> (shown time, monotonic then)

    def __call__(self, key: str, computed: float) -> float:
        mono = self._monotonic()
        last = self._shown.get(key)
        shown = computed
        if last is not None and computed <= last[0]:  # the clock went back: keep going forward
            shown = max(computed, last[0] + CATCH_UP_RATE * max(0.0, mono - last[1]))
        self._shown[key] = (shown, mono)
        return shown
