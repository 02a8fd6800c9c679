"""Shown time never runs backwards: a clock stepping back slows the countdown, never reverses it."""

from __future__ import annotations

import itertools

from focusmate.steady import CATCH_UP_RATE, SteadyTime


class Monotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_time_moving_forward_is_shown_as_it_is_jumps_included() -> None:
    mono = Monotonic()
    steady = SteadyTime(mono)
    assert steady("room", 1000.0) == 1000.0
    mono.t += 1
    assert steady("room", 1001.0) == 1001.0
    assert steady("room", 1100.0) == 1100.0  # the timebase jumped ahead: so does the countdown


def test_a_step_back_is_absorbed_then_the_timebase_is_met_again() -> None:
    mono = Monotonic()
    steady = SteadyTime(mono)
    wall = 1000.0
    shown = [steady("room", wall)]
    wall -= 60  # the clock steps back a minute
    for _ in range(200):
        mono.t += 1
        wall += 1
        shown.append(steady("room", wall))
    steps = [b - a for a, b in itertools.pairwise(shown)]
    assert min(steps) > 0  # never back, never stopped
    assert steps[0] == CATCH_UP_RATE  # slowed down while ahead...
    met = next(i for i, s in enumerate(shown) if s == 1000.0 - 60 + i)  # ...until it meets
    assert met == 60 / (1 - CATCH_UP_RATE)  # twice the step
    assert shown[-1] == wall  # then follows the timebase exactly


def test_rooms_are_kept_apart() -> None:
    mono = Monotonic()
    steady = SteadyTime(mono)
    steady("a", 1000.0)
    assert steady("b", 500.0) == 500.0  # another room's timebase is not held back by room a
