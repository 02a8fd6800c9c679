"""The room timer: the transition table, the cycle over time, serialisation and stats segments."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusmate.errors import IllegalTransitionError, ValidationError
from focusmate.timer import (
    MAX_SEGMENTS,
    REFUSALS,
    TRANSITIONS,
    Command,
    Phase,
    Segment,
    Status,
    TimerConfig,
    TimerState,
    advance,
    allowed_commands,
    apply,
    initial_state,
    next_phase,
    segments,
    view,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIN = 60.0
CLASSIC = TimerConfig(
    focus_s=25 * MIN, short_break_s=5 * MIN, long_break_s=15 * MIN, rounds_before_long=4
)
MANUAL = replace(CLASSIC, auto_advance=False)
YEAR = 365 * 24 * 3600.0


def running(phase: Phase = Phase.FOCUS, round_: int = 1, *, started: float = T0) -> TimerState:
    return TimerState(
        status=Status.RUNNING,
        phase=phase,
        round=round_,
        phase_started_at=started,
        remaining_s=None,
        revision=1,
        changed_at=started,
        last_command=Command.START,
    )


def paused(phase: Phase = Phase.FOCUS, round_: int = 1, *, remaining: float) -> TimerState:
    return TimerState(
        status=Status.PAUSED,
        phase=phase,
        round=round_,
        phase_started_at=None,
        remaining_s=remaining,
        revision=2,
        changed_at=T0,
        last_command=Command.PAUSE,
    )


def idle(
    phase: Phase = Phase.FOCUS, round_: int = 1, *, remaining: float | None = None
) -> TimerState:
    return TimerState(
        status=Status.IDLE,
        phase=phase,
        round=round_,
        phase_started_at=None,
        remaining_s=remaining,
        revision=3,
        changed_at=T0,
        last_command=Command.SKIP,
    )


def expected_cycle(config: TimerConfig) -> list[tuple[Phase, int]]:
    """The phases of one cycle, spelled out from the settings rather than from next_phase."""
    n = config.rounds_before_long
    order: list[tuple[Phase, int]] = []
    for r in range(1, n + 1):
        order.append((Phase.FOCUS, r))
        order.append((Phase.SHORT_BREAK, r) if r < n else (Phase.LONG_BREAK, n))
    return order


# --- configuration ------------------------------------------------------------------------------


def test_config_cycle_and_durations() -> None:
    assert CLASSIC.cycle_s == 4 * 25 * MIN + 3 * 5 * MIN + 15 * MIN
    assert CLASSIC.duration(Phase.FOCUS) == 25 * MIN
    assert CLASSIC.duration(Phase.SHORT_BREAK) == 5 * MIN
    assert CLASSIC.duration(Phase.LONG_BREAK) == 15 * MIN
    single = TimerConfig(focus_s=10, short_break_s=5, long_break_s=20, rounds_before_long=1)
    assert single.cycle_s == 30


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("focus_s", 0),
        ("focus_s", -5.0),
        ("short_break_s", math.nan),
        ("long_break_s", math.inf),
        ("long_break_s", 1e9),
        ("focus_s", True),
        ("rounds_before_long", 0),
        ("rounds_before_long", 2.0),
        ("rounds_before_long", 1000),
        ("auto_advance", 1),
    ],
)
def test_config_rejects_nonsense(field: str, value: object) -> None:
    fields: dict[str, Any] = {**vars(CLASSIC), field: value}
    with pytest.raises(ValidationError, match=field):
        TimerConfig(**fields)


def test_next_phase_follows_the_cycle() -> None:
    position = (Phase.FOCUS, 1)
    seen = []
    for _ in range(2 * len(expected_cycle(CLASSIC))):
        seen.append(position)
        position = next_phase(*position, CLASSIC)
    assert seen == expected_cycle(CLASSIC) * 2


def test_next_phase_reads_a_round_beyond_the_settings_as_the_last_round() -> None:
    two = replace(CLASSIC, rounds_before_long=2)
    assert next_phase(Phase.FOCUS, 4, two) == (Phase.LONG_BREAK, 2)
    assert next_phase(Phase.SHORT_BREAK, 3, two) == (Phase.FOCUS, 2)


# --- the transition table -----------------------------------------------------------------------


def test_table_and_refusals_cover_every_pair_exactly_once() -> None:
    pairs = set(itertools.product(Status, Command))
    assert set(TRANSITIONS) | set(REFUSALS) == pairs
    assert not set(TRANSITIONS) & set(REFUSALS)


def test_initial_state_is_idle_at_focus_one() -> None:
    state = initial_state(now=T0)
    assert (state.status, state.phase, state.round) == (Status.IDLE, Phase.FOCUS, 1)
    assert (state.revision, state.changed_at, state.last_command) == (0, T0, None)
    assert view(state, CLASSIC, now=T0 + 999).remaining_s == 25 * MIN


def test_start_from_idle_runs_the_full_phase() -> None:
    state = apply(initial_state(now=T0), Command.START, CLASSIC, now=T0 + 10)
    assert state.status is Status.RUNNING
    assert state.phase_started_at == T0 + 10
    assert state.remaining_s is None
    assert (state.revision, state.changed_at, state.last_command) == (1, T0 + 10, Command.START)


def test_start_from_idle_with_time_left_runs_only_that_time() -> None:
    state = apply(idle(remaining=100.0), Command.START, CLASSIC, now=T0 + 10)
    assert view(state, CLASSIC, now=T0 + 10).remaining_s == pytest.approx(100.0)
    assert view(state, CLASSIC, now=T0 + 10).ends_at == pytest.approx(T0 + 110)


def test_pause_records_time_left() -> None:
    state = apply(running(), Command.PAUSE, CLASSIC, now=T0 + 100)
    assert state.status is Status.PAUSED
    assert state.remaining_s == 25 * MIN - 100
    assert state.phase_started_at is None
    assert (state.revision, state.last_command) == (2, Command.PAUSE)


def test_resume_continues_from_time_left() -> None:
    state = apply(paused(remaining=300.0), Command.RESUME, CLASSIC, now=T0 + 5000)
    assert state.status is Status.RUNNING
    assert state.phase_started_at == T0 + 5000 - (25 * MIN - 300)
    assert view(state, CLASSIC, now=T0 + 5000).remaining_s == pytest.approx(300.0)


def test_skip_while_running_runs_the_next_phase_in_full() -> None:
    state = apply(running(), Command.SKIP, CLASSIC, now=T0 + 100)
    assert (state.status, state.phase, state.round) == (Status.RUNNING, Phase.SHORT_BREAK, 1)
    assert state.phase_started_at == T0 + 100


@pytest.mark.parametrize("before", [paused(remaining=42.0), idle(), idle(remaining=42.0)])
def test_skip_while_stopped_waits_at_the_next_phase(before: TimerState) -> None:
    state = apply(before, Command.SKIP, CLASSIC, now=T0 + 100)
    assert (state.status, state.phase, state.round) == (Status.IDLE, Phase.SHORT_BREAK, 1)
    assert state.remaining_s is None
    assert state.revision == before.revision + 1


def test_skip_from_last_focus_goes_to_long_break_and_then_focus_one() -> None:
    state = apply(idle(Phase.FOCUS, 4), Command.SKIP, CLASSIC, now=T0)
    assert (state.phase, state.round) == (Phase.LONG_BREAK, 4)
    state = apply(state, Command.SKIP, CLASSIC, now=T0)
    assert (state.phase, state.round) == (Phase.FOCUS, 1)


@pytest.mark.parametrize(
    "before",
    [
        running(Phase.SHORT_BREAK, 2),
        paused(Phase.FOCUS, 3, remaining=1.0),
        idle(Phase.LONG_BREAK, 4),
    ],
)
def test_reset_returns_to_idle_focus_one(before: TimerState) -> None:
    state = apply(before, Command.RESET, CLASSIC, now=T0 + 100)
    assert (state.status, state.phase, state.round) == (Status.IDLE, Phase.FOCUS, 1)
    assert (state.phase_started_at, state.remaining_s) == (None, None)
    assert (state.revision, state.changed_at, state.last_command) == (
        before.revision + 1,
        T0 + 100,
        Command.RESET,
    )


@pytest.mark.parametrize(
    ("before", "command", "message"),
    [
        (running(), Command.START, "The timer is already running."),
        (paused(remaining=10.0), Command.START, "The timer is paused; resume it instead"),
        (idle(), Command.PAUSE, "The timer is not running, so it cannot be paused."),
        (paused(remaining=10.0), Command.PAUSE, "The timer is already paused."),
        (idle(), Command.RESUME, "The timer is not paused, so it cannot be resumed."),
        (running(), Command.RESUME, "The timer is already running."),
    ],
)
def test_illegal_commands_are_refused_with_a_message(
    before: TimerState, command: Command, message: str
) -> None:
    snapshot = before.to_dict()
    with pytest.raises(IllegalTransitionError, match=message.replace(".", r"\.")):
        apply(before, command, CLASSIC, now=T0 + 1)
    assert before.to_dict() == snapshot
    assert command not in allowed_commands(before, CLASSIC, now=T0 + 1)


def test_apply_accepts_command_strings_but_not_unknown_ones() -> None:
    assert apply(initial_state(), "start", CLASSIC, now=T0).status is Status.RUNNING  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="command"):
        apply(initial_state(), "explode", CLASSIC, now=T0)  # type: ignore[arg-type]


def test_commands_act_on_the_phase_current_at_now() -> None:
    # Focus 1 ended 10 s ago: the pause lands in short break 1.
    state = apply(running(), Command.PAUSE, CLASSIC, now=T0 + 25 * MIN + 10)
    assert (state.phase, state.round, state.remaining_s) == (Phase.SHORT_BREAK, 1, 5 * MIN - 10)
    # Without auto-advance the ended timer is idle, so START is allowed and PAUSE is not.
    assert allowed_commands(running(), MANUAL, now=T0 + 25 * MIN) == {
        Command.START,
        Command.SKIP,
        Command.RESET,
    }
    state = apply(running(), Command.START, MANUAL, now=T0 + 30 * MIN)
    assert (state.status, state.phase, state.phase_started_at) == (
        Status.RUNNING,
        Phase.SHORT_BREAK,
        T0 + 30 * MIN,
    )


# --- time passing -------------------------------------------------------------------------------


def test_auto_advance_runs_through_a_full_cycle() -> None:
    state = apply(initial_state(), Command.START, CLASSIC, now=T0)
    at = T0
    for phase, round_ in [*expected_cycle(CLASSIC), (Phase.FOCUS, 1)]:
        shown = view(state, CLASSIC, now=at)
        assert (shown.status, shown.phase, shown.round) == (Status.RUNNING, phase, round_)
        assert shown.remaining_s == shown.duration_s == CLASSIC.duration(phase)
        assert shown.ends_at == at + CLASSIC.duration(phase)
        assert shown.progress == 0.0
        halfway = view(state, CLASSIC, now=at + CLASSIC.duration(phase) / 2)
        assert (halfway.phase, halfway.progress) == (phase, 0.5)
        at += CLASSIC.duration(phase)
    assert at == T0 + CLASSIC.cycle_s + 25 * MIN
    assert state.revision == 1  # time passing is not a command


def test_without_auto_advance_each_phase_waits_for_start() -> None:
    state = apply(initial_state(), Command.START, MANUAL, now=T0)
    at = T0
    for phase, round_ in expected_cycle(MANUAL):
        assert (state.phase, state.round) == (phase, round_)
        at += MANUAL.duration(phase)
        shown = view(state, MANUAL, now=at - 1)
        assert (shown.status, shown.remaining_s) == (Status.RUNNING, 1.0)
        stopped = advance(state, MANUAL, now=at + 3600)  # nobody around for an hour
        assert stopped.status is Status.IDLE
        assert stopped.remaining_s is None
        assert view(stopped, MANUAL, now=at + 3600).ends_at is None
        at += 3600
        state = apply(stopped, Command.START, MANUAL, now=at)
    assert (state.phase, state.round) == (Phase.FOCUS, 1)


def test_a_timer_running_for_a_year_is_computed_directly() -> None:
    state = advance(running(), CLASSIC, now=T0 + YEAR)
    cycles, into = divmod(YEAR, CLASSIC.cycle_s)  # 4043 cycles and 600 s into focus 1
    assert (state.phase, state.round) == (Phase.FOCUS, 1)
    assert state.phase_started_at == T0 + cycles * CLASSIC.cycle_s
    assert view(state, CLASSIC, now=T0 + YEAR).remaining_s == 25 * MIN - into


def test_gaps_far_too_long_to_step_through_are_fine() -> None:
    # A trillion seconds is ~1e8 cycles: stepping phase by phase would not finish in time.
    now = T0 + 1e12
    state = advance(running(), CLASSIC, now=now)
    shown = view(state, CLASSIC, now=now)
    assert 0 < shown.remaining_s <= shown.duration_s
    assert state.phase_started_at is not None
    assert state.phase_started_at <= now < state.phase_started_at + shown.duration_s
    assert len(segments(running(), CLASSIC, start=T0, end=now)) == MAX_SEGMENTS


def test_pause_and_resume_keep_the_time_left() -> None:
    state = apply(initial_state(), Command.START, CLASSIC, now=T0)
    state = apply(state, Command.PAUSE, CLASSIC, now=T0 + 100)
    assert view(state, CLASSIC, now=T0 + 50_000).remaining_s == 25 * MIN - 100
    state = apply(state, Command.RESUME, CLASSIC, now=T0 + 50_000)
    assert view(state, CLASSIC, now=T0 + 50_000).remaining_s == pytest.approx(25 * MIN - 100)
    assert view(state, CLASSIC, now=T0 + 50_000 + 25 * MIN - 101).phase is Phase.FOCUS
    assert view(state, CLASSIC, now=T0 + 50_000 + 25 * MIN - 100).phase is Phase.SHORT_BREAK


def test_settings_changed_under_the_timer_are_clamped() -> None:
    shorter = replace(CLASSIC, focus_s=10 * MIN, rounds_before_long=2)
    assert view(paused(remaining=20 * MIN), shorter, now=T0).remaining_s == 10 * MIN
    assert view(idle(remaining=20 * MIN), shorter, now=T0).progress == 0.0
    # Twelve minutes into a focus phase that is now ten minutes long: it already ended.
    moved = view(running(), shorter, now=T0 + 12 * MIN)
    assert (moved.phase, moved.remaining_s) == (Phase.SHORT_BREAK, 3 * MIN)
    # A round beyond the new setting reads as the last round and leads to the long break.
    late = view(running(Phase.FOCUS, 4), shorter, now=T0)
    assert (late.round, late.rounds_before_long) == (2, 2)
    assert advance(running(Phase.FOCUS, 4), shorter, now=T0 + 10 * MIN).phase is Phase.LONG_BREAK
    # A start stamped slightly in our future never shows more than the full phase.
    assert view(running(started=T0 + 5), CLASSIC, now=T0).remaining_s == 25 * MIN


# --- serialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        initial_state(now=T0),
        running(Phase.SHORT_BREAK, 3, started=T0 + 0.25),
        paused(Phase.LONG_BREAK, 4, remaining=12.5),
        idle(Phase.FOCUS, 2, remaining=7.0),
    ],
)
def test_to_dict_round_trips(state: TimerState) -> None:
    assert TimerState.from_dict(state.to_dict()) == state


def test_from_dict_accepts_floats_for_whole_numbers() -> None:
    data = {**running(round_=3).to_dict(), "round": 3.0, "revision": 1.0}
    state = TimerState.from_dict(data)
    assert (state.round, state.revision) == (3, 1)
    assert type(state.round) is int
    assert type(state.revision) is int
    ints_for_floats = {**paused(remaining=5.0).to_dict(), "remaining_s": 5, "changed_at": 10}
    assert TimerState.from_dict(ints_for_floats).remaining_s == 5.0


GOOD = running().to_dict()


def test_from_dict_ignores_fields_a_newer_peer_added() -> None:
    assert TimerState.from_dict({**GOOD, "colour": "red"}) == TimerState.from_dict(GOOD)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([("status", "running")], "must be a mapping"),
        ({k: v for k, v in GOOD.items() if k != "round"}, "missing round"),
        ({**GOOD, "status": "sprinting"}, "status must be one of idle, running, paused"),
        ({**GOOD, "phase": 3}, "phase must be one of"),
        ({**GOOD, "round": 0}, "round must be a whole number ≥ 1"),
        ({**GOOD, "round": 2.5}, "round must be a whole number"),
        ({**GOOD, "round": True}, "round must be a whole number"),
        ({**GOOD, "round": "2"}, "round must be a whole number"),
        ({**GOOD, "revision": -1.0}, "revision must be a whole number ≥ 0"),
        ({**GOOD, "changed_at": math.nan}, "changed_at must be a finite number"),
        ({**GOOD, "phase_started_at": math.inf}, "phase_started_at must be a finite number"),
        ({**GOOD, "phase_started_at": None}, "running timer needs phase_started_at"),
        ({**GOOD, "remaining_s": 3.0}, "running timer needs phase_started_at and no remaining"),
        ({**GOOD, "status": "paused", "phase_started_at": None}, "paused timer needs remaining_s"),
        ({**GOOD, "status": "idle"}, "idle timer cannot have phase_started_at"),
        (
            {**GOOD, "status": "paused", "phase_started_at": None, "remaining_s": -1},
            "remaining_s cannot be negative",
        ),
        ({**GOOD, "last_command": "rewind"}, "last_command must be one of"),
    ],
)
def test_from_dict_rejects_bad_input(data: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TimerState.from_dict(data)  # type: ignore[arg-type]


# --- segments for stats -------------------------------------------------------------------------


def test_segments_record_completed_and_cut_phases() -> None:
    found = segments(running(), CLASSIC, start=T0, end=T0 + 50 * MIN)
    assert found == [
        Segment(Phase.FOCUS, 1, T0, T0 + 25 * MIN, completed=True),
        Segment(Phase.SHORT_BREAK, 1, T0 + 25 * MIN, T0 + 30 * MIN, completed=True),
        Segment(Phase.FOCUS, 2, T0 + 30 * MIN, T0 + 50 * MIN, completed=False),
    ]


def test_segments_start_at_the_window_for_a_resumed_phase() -> None:
    resumed = apply(paused(remaining=10 * MIN), Command.RESUME, CLASSIC, now=T0)
    found = segments(resumed, CLASSIC, start=T0, end=T0 + 10 * MIN)
    assert found == [Segment(Phase.FOCUS, 1, T0, T0 + 10 * MIN, completed=True)]


def test_segments_of_a_window_far_after_the_start() -> None:
    start = T0 + 10 * CLASSIC.cycle_s + 20 * MIN
    found = segments(running(), CLASSIC, start=start, end=start + 10 * MIN)
    assert found == [
        Segment(Phase.FOCUS, 1, start, start + 5 * MIN, completed=True),
        Segment(Phase.SHORT_BREAK, 1, start + 5 * MIN, start + 10 * MIN, completed=True),
    ]


def test_segments_without_auto_advance_stop_after_one_phase() -> None:
    found = segments(running(), MANUAL, start=T0, end=T0 + 5 * 3600)
    assert found == [Segment(Phase.FOCUS, 1, T0, T0 + 25 * MIN, completed=True)]
    assert segments(running(), MANUAL, start=T0 + 3600, end=T0 + 5 * 3600) == []


def test_segments_are_empty_when_nothing_runs() -> None:
    assert segments(paused(remaining=5.0), CLASSIC, start=T0, end=T0 + 3600) == []
    assert segments(idle(), CLASSIC, start=T0, end=T0 + 3600) == []
    assert segments(running(), CLASSIC, start=T0, end=T0) == []
    assert segments(running(), CLASSIC, start=T0 + 10, end=T0) == []


def test_segments_are_capped_and_contiguous() -> None:
    found = segments(running(), CLASSIC, start=T0, end=T0 + YEAR)
    assert len(found) == MAX_SEGMENTS
    assert all(a.end == b.start for a, b in itertools.pairwise(found))
    assert len(segments(running(), CLASSIC, start=T0, end=T0 + YEAR, limit=3)) == 3


# --- properties ---------------------------------------------------------------------------------

seconds = st.floats(min_value=1.0, max_value=3 * 3600.0, allow_nan=False)
whole_seconds = st.integers(min_value=1, max_value=3 * 3600).map(float)
configs = st.builds(
    TimerConfig,
    focus_s=seconds | whole_seconds,
    short_break_s=seconds | whole_seconds,
    long_break_s=seconds | whole_seconds,
    rounds_before_long=st.integers(min_value=1, max_value=8),
    auto_advance=st.booleans(),
)
# Whole-second settings and instants keep every sum exact, so results can be compared exactly.
exact_configs = st.builds(
    TimerConfig,
    focus_s=whole_seconds,
    short_break_s=whole_seconds,
    long_break_s=whole_seconds,
    rounds_before_long=st.integers(min_value=1, max_value=8),
    auto_advance=st.just(True),
)
offsets = st.floats(min_value=-1e6, max_value=1e8, allow_nan=False)
gaps = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
rounds = st.integers(min_value=1, max_value=10)


left = st.floats(min_value=0.0, max_value=1e5)
remaining_by_status = {
    Status.RUNNING: st.none(),
    Status.PAUSED: left,
    Status.IDLE: st.none() | left,
}


@st.composite
def states(draw: st.DrawFn) -> TimerState:
    status = draw(st.sampled_from(Status))
    return TimerState(
        status=status,
        phase=draw(st.sampled_from(Phase)),
        round=draw(rounds),
        phase_started_at=T0 + draw(offsets) if status is Status.RUNNING else None,
        remaining_s=draw(remaining_by_status[status]),
        revision=draw(st.integers(min_value=0, max_value=10**6)),
        changed_at=T0 + draw(offsets),
        last_command=draw(st.none() | st.sampled_from(Command)),
    )


@given(state=states(), config=configs, now=offsets)
def test_remaining_is_never_negative_nor_above_the_duration(
    state: TimerState, config: TimerConfig, now: float
) -> None:
    shown = view(state, config, now=T0 + now)
    assert 0.0 <= shown.remaining_s <= shown.duration_s == config.duration(shown.phase)
    assert 0.0 <= shown.progress <= 1.0
    assert 1 <= shown.round <= config.rounds_before_long
    assert (shown.ends_at is None) == (shown.status is not Status.RUNNING)


@given(state=states(), config=configs, now=offsets)
def test_advance_is_idempotent_and_lands_in_the_phase_containing_now(
    state: TimerState, config: TimerConfig, now: float
) -> None:
    once = advance(state, config, now=T0 + now)
    assert advance(once, config, now=T0 + now) == once
    assert (once.revision, once.changed_at, once.last_command) == (
        state.revision,
        state.changed_at,
        state.last_command,
    )
    if once.status is Status.RUNNING:
        assert once.phase_started_at is not None
        assert T0 + now < once.phase_started_at + config.duration(once.phase)


@given(state=states(), config=configs, now=offsets, later=gaps)
def test_remaining_never_increases_within_a_running_phase(
    state: TimerState, config: TimerConfig, now: float, later: float
) -> None:
    t1, t2 = T0 + now, T0 + now + later
    first, second = advance(state, config, now=t1), advance(state, config, now=t2)
    same_phase = (first.phase, first.round, first.phase_started_at) == (
        second.phase,
        second.round,
        second.phase_started_at,
    )
    if first.status is Status.RUNNING and second.status is Status.RUNNING and same_phase:
        assert view(second, config, now=t2).remaining_s <= view(first, config, now=t1).remaining_s


def step_by_step(state: TimerState, config: TimerConfig, *, now: float) -> TimerState:
    """The slow, obviously-right model of advance with auto-advance: one phase at a time."""
    assert state.phase_started_at is not None
    phase, round_, started = state.phase, state.round, state.phase_started_at
    while now >= started + config.duration(phase):
        started += config.duration(phase)
        phase, round_ = next_phase(phase, round_, config)
    return replace(state, phase=phase, round=round_, phase_started_at=started)


@given(
    config=exact_configs,
    phase=st.sampled_from(Phase),
    round_=rounds,
    elapsed=st.integers(min_value=0, max_value=50_000).map(float),
)
def test_advance_matches_stepping_phase_by_phase(
    config: TimerConfig, phase: Phase, round_: int, elapsed: float
) -> None:
    state = running(phase, round_)
    assert advance(state, config, now=T0 + elapsed) == step_by_step(state, config, now=T0 + elapsed)


@given(config=exact_configs, into=st.integers(min_value=0, max_value=10**6).map(float))
def test_the_phase_sequence_repeats_every_cycle(config: TimerConfig, into: float) -> None:
    state = running()
    here = advance(state, config, now=T0 + into)
    there = advance(state, config, now=T0 + into + config.cycle_s)
    assert (here.phase, here.round) == (there.phase, there.round)
    assert here.phase_started_at is not None
    assert there.phase_started_at == here.phase_started_at + config.cycle_s


@given(config=exact_configs, cycles=st.integers(min_value=1, max_value=3))
def test_segments_follow_the_settings(config: TimerConfig, cycles: int) -> None:
    end = T0 + cycles * config.cycle_s
    found = segments(running(), config, start=T0, end=end)
    assert [(s.phase, s.round) for s in found] == expected_cycle(config) * cycles
    assert all(s.completed for s in found)
    assert all(s.end - s.start == config.duration(s.phase) for s in found)
    focus_since_long = 0
    for segment in found:
        if segment.phase is Phase.FOCUS:
            focus_since_long += 1
        elif segment.phase is Phase.LONG_BREAK:
            assert focus_since_long == config.rounds_before_long
            focus_since_long = 0
    assert found[-1].end == end


@settings(max_examples=200)
@given(
    config_choices=st.lists(configs, min_size=1, max_size=3),
    steps=st.lists(
        st.tuples(st.sampled_from(Command), gaps, st.integers(min_value=0, max_value=2)),
        max_size=25,
    ),
)
def test_random_command_sequences_keep_a_valid_state(
    config_choices: list[TimerConfig], steps: list[tuple[Command, float, int]]
) -> None:
    state, now = initial_state(now=T0), T0
    for command, gap, which in steps:
        config = config_choices[which % len(config_choices)]  # settings edited mid-run
        now += gap
        allowed = allowed_commands(state, config, now=now)
        before = state.to_dict()
        if command not in allowed:
            with pytest.raises(IllegalTransitionError) as refused:
                apply(state, command, config, now=now)
            assert str(refused.value) in REFUSALS.values()
            assert state.to_dict() == before
            continue
        after = apply(state, command, config, now=now)
        assert after.revision == state.revision + 1
        assert (after.changed_at, after.last_command) == (now, command)
        assert TimerState.from_dict(after.to_dict()) == after
        shown = view(after, config, now=now)
        assert 0.0 <= shown.remaining_s <= shown.duration_s
        state = after


@given(state=states())
def test_from_dict_round_trips_crdt_style_numbers(state: TimerState) -> None:
    as_floats = {
        key: float(value) if isinstance(value, int) else value
        for key, value in state.to_dict().items()
    }
    assert TimerState.from_dict(as_floats) == state
