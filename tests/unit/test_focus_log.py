"""From timer history to focus sessions: what ran, what completed, what was cut short."""

from __future__ import annotations

from focusmate import timer
from focusmate.focus_log import Watch, reconcile

T0 = 1_780_000_000.0
CONFIG = timer.TimerConfig(
    focus_s=25 * 60.0, short_break_s=5 * 60.0, long_break_s=15 * 60.0, rounds_before_long=4
)


def started(at: float = T0) -> timer.TimerState:
    return timer.apply(timer.initial_state(now=at), timer.Command.START, CONFIG, now=at)


def run(watch: Watch, current: timer.TimerState, now: float) -> tuple[list, Watch]:
    return reconcile(
        room_id="r1", watch=watch, current=current, config=CONFIG, task="write", now=now
    )


def test_nothing_is_recorded_before_a_focus_phase_ends() -> None:
    state = started()
    sessions, _ = run(Watch(state, T0), state, T0 + 24 * 60)
    assert sessions == []


def test_a_completed_focus_phase_is_one_full_session() -> None:
    state = started()
    sessions, watch = run(Watch(state, T0), state, T0 + 26 * 60)
    assert len(sessions) == 1
    session = sessions[0]
    assert session.completed
    assert session.duration_s == 25 * 60
    assert session.started_at == T0
    assert session.task == "write"
    assert watch.checked_at == T0 + 26 * 60


def test_a_long_unobserved_stretch_records_every_focus_phase_once() -> None:
    state = started()
    cycle = CONFIG.cycle_s  # 4 focus phases per cycle
    sessions, watch = run(Watch(state, T0), state, T0 + 2 * cycle + 60)
    assert len(sessions) == 8
    assert len({s.session_id for s in sessions}) == 8
    more, _ = run(watch, state, T0 + 2 * cycle + 120)
    assert more == []  # already accounted for


def test_two_observers_of_the_same_history_derive_the_same_session_ids() -> None:
    state = started()
    # One process looks often, the other once: the same sessions, the same ids.
    often: list = []
    watch = Watch(state, T0)
    for minute in range(0, 120, 7):
        found, watch = run(watch, state, T0 + minute * 60)
        often += found
    once, _ = run(Watch(state, T0), state, T0 + 119 * 60)
    assert sorted(s.session_id for s in often) == sorted(s.session_id for s in once)


def test_a_reset_during_focus_records_an_interrupted_session() -> None:
    state = started()
    reset = timer.apply(state, timer.Command.RESET, CONFIG, now=T0 + 10 * 60)
    sessions, watch = run(Watch(state, T0), reset, T0 + 11 * 60)
    assert [(s.completed, s.duration_s, s.started_at) for s in sessions] == [(False, 600.0, T0)]
    assert watch.state == reset


def test_a_skip_in_the_first_minute_is_not_a_session() -> None:
    state = started()
    skipped = timer.apply(state, timer.Command.SKIP, CONFIG, now=T0 + 30)
    sessions, _ = run(Watch(state, T0), skipped, T0 + 60)
    assert sessions == []


def test_pausing_does_not_end_the_session() -> None:
    state = started()
    paused = timer.apply(state, timer.Command.PAUSE, CONFIG, now=T0 + 10 * 60)
    sessions, watch = run(Watch(state, T0), paused, T0 + 60 * 60)
    assert sessions == []
    resumed = timer.apply(paused, timer.Command.RESUME, CONFIG, now=T0 + 60 * 60)
    sessions, _ = run(watch, resumed, T0 + 76 * 60)
    assert len(sessions) == 1
    assert sessions[0].completed


def test_phases_completed_before_a_peer_changed_the_timer_still_count() -> None:
    state = started()
    # A peer pauses 40 minutes in (in the short break); we look only an hour later.
    paused = timer.apply(state, timer.Command.PAUSE, CONFIG, now=T0 + 40 * 60)
    sessions, _ = run(Watch(state, T0), paused, T0 + 100 * 60)
    assert len(sessions) == 1
    assert sessions[0].started_at == T0
