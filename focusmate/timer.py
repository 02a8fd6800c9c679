"""The shared room timer: a pure state machine over ``(state, command, now)``.

The room document stores a :class:`TimerState`; every peer derives everything else from it with
the same functions, so countdowns agree everywhere and keep running offline. The rules:

1. **State, not ticks.** A running timer stores only the *virtual* instant its current phase
   started (shifted for pauses). Remaining time, phase ends and automatic phase changes are computed
   from ``now`` by :func:`advance` and :func:`view`; nothing is written while the timer counts.
2. **Time is an argument.** Nothing here reads a clock or sleeps. ``now`` is Unix seconds, stamped
   by the relay when one hosts the timer, so all instants share one timebase.
3. **Commands are a table.** :data:`TRANSITIONS` maps ``(status, command)`` to a target status and
   a :class:`Move` of the phase; :data:`REFUSALS` holds the user-facing message for every other
   pair. Together they cover each pair exactly once, and :func:`apply` interprets them with no
   special cases. Every accepted command bumps ``revision`` and stamps ``changed_at``.
4. **Normalise first.** :func:`apply` runs :func:`advance` before the table lookup, so a command
   acts on the phase that is current at ``now``, not on the one last written down.
5. **The cycle** is focus 1, short break 1, focus 2, ..., focus N, long break, then focus 1 again
   (N = ``rounds_before_long``). A break carries the round of the focus phase before it.
6. **Settings may change under a running timer.** Durations always come from the config passed in;
   remaining time is clamped to ``[0, duration]`` and is never negative; a round beyond N is read
   as round N.
7. **Long gaps cost O(1).** Whole cycles are skipped by arithmetic, so a timer left running for a
   year is as cheap to show as one started a second ago.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Final, NamedTuple, TypeVar

from focusmate.errors import IllegalTransitionError, ValidationError

__all__ = [
    "MAX_PHASE_S",
    "MAX_ROUNDS",
    "MAX_SEGMENTS",
    "MIN_PHASE_S",
    "REFUSALS",
    "TRANSITIONS",
    "Command",
    "Move",
    "Phase",
    "Segment",
    "Status",
    "TimerConfig",
    "TimerState",
    "TimerView",
    "Transition",
    "advance",
    "allowed_commands",
    "apply",
    "initial_state",
    "next_phase",
    "segments",
    "view",
]

# Bounds that keep the arithmetic exact enough and every loop short: a phase shorter than a second
# or a cycle of hundreds of rounds is a typo, not a setting.
MIN_PHASE_S = 1.0
MAX_PHASE_S = 24 * 60 * 60.0
MAX_ROUNDS = 100
# Cap on :func:`segments` output: a timer forgotten for weeks should not flood the stats.
MAX_SEGMENTS = 10_000


class Phase(StrEnum):
    FOCUS = "focus"
    SHORT_BREAK = "short_break"
    LONG_BREAK = "long_break"


class Status(StrEnum):
    IDLE = "idle"  # waiting at the start of `phase` with `remaining_s` left (not counting)
    RUNNING = "running"
    PAUSED = "paused"


class Command(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    SKIP = "skip"
    RESET = "reset"


class Move(Enum):
    """What a command does to the phase and to the time left in it."""

    STAY = "stay"  # same phase, same time left
    NEXT = "next"  # next phase of the cycle, full duration
    FIRST = "first"  # focus round 1, full duration


class Transition(NamedTuple):
    target: Status
    move: Move


TRANSITIONS: Mapping[tuple[Status, Command], Transition] = MappingProxyType(
    {
        (Status.IDLE, Command.START): Transition(Status.RUNNING, Move.STAY),
        (Status.RUNNING, Command.PAUSE): Transition(Status.PAUSED, Move.STAY),
        (Status.PAUSED, Command.RESUME): Transition(Status.RUNNING, Move.STAY),
        (Status.RUNNING, Command.SKIP): Transition(Status.RUNNING, Move.NEXT),
        (Status.PAUSED, Command.SKIP): Transition(Status.IDLE, Move.NEXT),
        (Status.IDLE, Command.SKIP): Transition(Status.IDLE, Move.NEXT),
        (Status.IDLE, Command.RESET): Transition(Status.IDLE, Move.FIRST),
        (Status.RUNNING, Command.RESET): Transition(Status.IDLE, Move.FIRST),
        (Status.PAUSED, Command.RESET): Transition(Status.IDLE, Move.FIRST),
    }
)

REFUSALS: Mapping[tuple[Status, Command], str] = MappingProxyType(
    {
        (Status.RUNNING, Command.START): "The timer is already running.",
        (Status.PAUSED, Command.START): "The timer is paused; resume it instead of starting it.",
        (Status.IDLE, Command.PAUSE): "The timer is not running, so it cannot be paused.",
        (Status.PAUSED, Command.PAUSE): "The timer is already paused.",
        (Status.IDLE, Command.RESUME): "The timer is not paused, so it cannot be resumed.",
        (Status.RUNNING, Command.RESUME): "The timer is already running.",
    }
)


# --- validation helpers -------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_instant(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number of seconds, got {value!r}.")
    return float(value)


def _check_seconds(value: object, name: str) -> float:
    seconds = _check_instant(value, name)
    if seconds < 0:
        raise ValidationError(f"{name} cannot be negative, got {value!r}.")
    return seconds


def _coerce_int(value: object, name: str) -> int:
    """Accept 3 and 3.0 (CRDT maps hand back every number as a float), refuse 3.5 and True."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValidationError(f"{name} must be a whole number, got {value!r}.")


_E = TypeVar("_E", bound=StrEnum)


def _coerce_enum(kind: type[_E], value: object, name: str) -> _E:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    choices = ", ".join(member.value for member in kind)
    raise ValidationError(f"{name} must be one of {choices}; got {value!r}.")


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimerConfig:
    """The room's timer settings; validated on construction so the arithmetic below can trust it."""

    focus_s: float
    short_break_s: float
    long_break_s: float
    rounds_before_long: int
    auto_advance: bool = True

    def __post_init__(self) -> None:
        for name in ("focus_s", "short_break_s", "long_break_s"):
            value = getattr(self, name)
            if not _is_number(value) or not MIN_PHASE_S <= value <= MAX_PHASE_S:
                raise ValidationError(
                    f"{name} must be between {MIN_PHASE_S:g} and {MAX_PHASE_S:g} seconds, "
                    f"got {value!r}."
                )
        rounds = self.rounds_before_long
        if not (isinstance(rounds, int) and not isinstance(rounds, bool)) or not (
            1 <= rounds <= MAX_ROUNDS
        ):
            raise ValidationError(
                f"rounds_before_long must be a whole number from 1 to {MAX_ROUNDS}, got {rounds!r}."
            )
        if not isinstance(self.auto_advance, bool):
            raise ValidationError(f"auto_advance must be true or false, got {self.auto_advance!r}.")

    @property
    def cycle_s(self) -> float:
        """Length of one full cycle: N focus phases, N-1 short breaks and one long break."""
        n = self.rounds_before_long
        return n * self.focus_s + (n - 1) * self.short_break_s + self.long_break_s

    def duration(self, phase: Phase) -> float:
        match phase:
            case Phase.FOCUS:
                return float(self.focus_s)
            case Phase.SHORT_BREAK:
                return float(self.short_break_s)
            case Phase.LONG_BREAK:
                return float(self.long_break_s)


# --- state --------------------------------------------------------------------------------------

_STATE_FIELDS = (
    "status",
    "phase",
    "round",
    "phase_started_at",
    "remaining_s",
    "revision",
    "changed_at",
    "last_command",
)


@dataclass(frozen=True)
class TimerState:
    """What the room document stores; the invariants are checked here so no bad state can exist."""

    status: Status
    phase: Phase
    round: int  # 1-based focus round within the cycle; a break carries its focus phase's round
    # RUNNING only: virtual start instant of the current phase, shifted for pauses, so that
    # remaining = duration - (now - phase_started_at).
    phase_started_at: float | None
    # IDLE/PAUSED only: seconds left in the current phase (None in IDLE means "full duration").
    remaining_s: float | None
    revision: int  # +1 on every command
    changed_at: float  # instant of the last command
    last_command: Command | None

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            raise ValidationError(f"Timer status must be a Status, got {self.status!r}.")
        if not isinstance(self.phase, Phase):
            raise ValidationError(f"Timer phase must be a Phase, got {self.phase!r}.")
        if not (isinstance(self.round, int) and not isinstance(self.round, bool)) or self.round < 1:
            raise ValidationError(f"Timer round must be a whole number ≥ 1, got {self.round!r}.")
        if not (isinstance(self.revision, int) and not isinstance(self.revision, bool)) or (
            self.revision < 0
        ):
            raise ValidationError(
                f"Timer revision must be a whole number ≥ 0, got {self.revision!r}."
            )
        _check_instant(self.changed_at, "changed_at")
        if self.last_command is not None and not isinstance(self.last_command, Command):
            raise ValidationError(f"last_command must be a Command, got {self.last_command!r}.")
        if self.status is Status.RUNNING:
            if self.phase_started_at is None or self.remaining_s is not None:
                raise ValidationError("A running timer needs phase_started_at and no remaining_s.")
            _check_instant(self.phase_started_at, "phase_started_at")
            return
        if self.phase_started_at is not None:
            raise ValidationError(f"A {self.status} timer cannot have phase_started_at.")
        if self.remaining_s is not None:
            _check_seconds(self.remaining_s, "remaining_s")
        elif self.status is Status.PAUSED:
            raise ValidationError("A paused timer needs remaining_s.")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON/CRDT-friendly values; :meth:`from_dict` reads them back."""
        return {
            "status": self.status.value,
            "phase": self.phase.value,
            "round": self.round,
            "phase_started_at": self.phase_started_at,
            "remaining_s": self.remaining_s,
            "revision": self.revision,
            "changed_at": self.changed_at,
            "last_command": None if self.last_command is None else self.last_command.value,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> TimerState:
        """Read a state from a peer's document: hostile until checked, so every field is checked.

        Unknown keys are ignored: a newer peer may add fields, and this peer must still follow
        the timer it shares with them.
        """
        if not isinstance(d, Mapping):
            raise ValidationError(f"Timer state must be a mapping, got {type(d).__name__}.")
        missing = [key for key in _STATE_FIELDS if key not in d]
        if missing:
            raise ValidationError(f"Timer state is missing {', '.join(missing)}.")
        started, remaining, command = d["phase_started_at"], d["remaining_s"], d["last_command"]
        return cls(
            status=_coerce_enum(Status, d["status"], "status"),
            phase=_coerce_enum(Phase, d["phase"], "phase"),
            round=_coerce_int(d["round"], "round"),
            phase_started_at=None
            if started is None
            else _check_instant(started, "phase_started_at"),
            remaining_s=None if remaining is None else _check_seconds(remaining, "remaining_s"),
            revision=_coerce_int(d["revision"], "revision"),
            changed_at=_check_instant(d["changed_at"], "changed_at"),
            last_command=None
            if command is None
            else _coerce_enum(Command, command, "last_command"),
        )


def initial_state(*, now: float = 0.0) -> TimerState:
    """A fresh room timer: idle at the start of focus round 1."""
    return TimerState(
        status=Status.IDLE,
        phase=Phase.FOCUS,
        round=1,
        phase_started_at=None,
        remaining_s=None,
        revision=0,
        changed_at=_check_instant(now, "now"),
        last_command=None,
    )


# --- the cycle ----------------------------------------------------------------------------------


def next_phase(phase: Phase, round: int, config: TimerConfig) -> tuple[Phase, int]:
    """The phase after ``(phase, round)``; a round beyond the config's N is read as N."""
    n = config.rounds_before_long
    match phase:
        case Phase.FOCUS:
            current = min(max(round, 1), n)
            return (Phase.SHORT_BREAK, current) if current < n else (Phase.LONG_BREAK, current)
        case Phase.SHORT_BREAK:
            return Phase.FOCUS, min(max(round, 1) + 1, n)
        case Phase.LONG_BREAK:
            return Phase.FOCUS, 1


def _cycle_offset(phase: Phase, round_: int, config: TimerConfig) -> float:
    """Where ``(phase, round_)`` starts in a cycle (for positions :func:`next_phase` returns)."""
    pair = config.focus_s + config.short_break_s
    match phase:
        case Phase.FOCUS:
            return (round_ - 1) * pair
        case Phase.SHORT_BREAK:
            return (round_ - 1) * pair + config.focus_s
        case Phase.LONG_BREAK:
            n = config.rounds_before_long
            return n * config.focus_s + (n - 1) * config.short_break_s


def _locate(x: float, config: TimerConfig) -> tuple[Phase, int, float]:
    """The phase, round and its start offset containing offset ``x`` of a cycle, in O(1)."""
    n = config.rounds_before_long
    long_at = _cycle_offset(Phase.LONG_BREAK, n, config)
    if x >= long_at:
        return Phase.LONG_BREAK, n, long_at
    index = min(max(int(x // (config.focus_s + config.short_break_s)), 0), n - 1)
    focus_at = _cycle_offset(Phase.FOCUS, index + 1, config)
    if index < n - 1 and x - focus_at >= config.focus_s:
        return Phase.SHORT_BREAK, index + 1, _cycle_offset(Phase.SHORT_BREAK, index + 1, config)
    return Phase.FOCUS, index + 1, focus_at


def advance(state: TimerState, config: TimerConfig, *, now: float) -> TimerState:
    """Bring a running state up to ``now``: move to the phase containing ``now``.

    Only RUNNING states change. With ``auto_advance`` the timer keeps running through as many
    phases as have ended; without it, it stops IDLE at the start of the next phase. ``revision``,
    ``changed_at`` and ``last_command`` are untouched: this is not a command, only a rewrite of
    the same timeline.
    """
    _check_instant(now, "now")
    if state.status is not Status.RUNNING:
        return state
    assert state.phase_started_at is not None  # guaranteed by TimerState's invariants
    started = state.phase_started_at + config.duration(state.phase)
    if now < started:
        return state
    phase, round_ = next_phase(state.phase, state.round, config)
    if not config.auto_advance:
        return replace(state, status=Status.IDLE, phase=phase, round=round_, phase_started_at=None)
    if now >= started + config.duration(phase):
        # Skip whole cycles by arithmetic, then find the phase within the last one.
        cycle_start = started - _cycle_offset(phase, round_, config)
        cycle_s = config.cycle_s
        cycle_start += math.floor((now - cycle_start) / cycle_s) * cycle_s
        if cycle_start > now:  # floor landed one cycle late through rounding
            cycle_start -= cycle_s
        phase, round_, offset = _locate(now - cycle_start, config)
        started = cycle_start + offset
    # Rounding may leave us a phase short; a few steps at most, bounded so it always ends.
    for _ in range(4):
        end = started + config.duration(phase)
        if now < end:
            break
        started = end
        phase, round_ = next_phase(phase, round_, config)
    return replace(state, phase=phase, round=round_, phase_started_at=started)


def _time_left(state: TimerState, config: TimerConfig, *, now: float) -> float:
    """Seconds left in an already-advanced state's phase, clamped to ``[0, duration]``."""
    duration = config.duration(state.phase)
    if state.status is Status.RUNNING:
        assert state.phase_started_at is not None
        left = state.phase_started_at + duration - now
    else:
        left = duration if state.remaining_s is None else state.remaining_s
    return min(max(left, 0.0), duration)


def allowed_commands(state: TimerState, config: TimerConfig, *, now: float) -> frozenset[Command]:
    """The commands :func:`apply` would accept at ``now``: what a UI should enable."""
    status = advance(state, config, now=now).status
    return frozenset(command for (source, command) in TRANSITIONS if source is status)


def apply(state: TimerState, command: Command, config: TimerConfig, *, now: float) -> TimerState:
    """Run ``command`` at ``now``: advance, then look the pair up in the table.

    Raises :class:`IllegalTransitionError` with a message for the user when the current status
    does not allow the command; the state passed in is never modified (it is immutable).
    """
    command = _coerce_enum(Command, command, "command")
    current = advance(state, config, now=now)
    key = (current.status, command)
    if key in REFUSALS:
        raise IllegalTransitionError(REFUSALS[key])
    target, move = TRANSITIONS[key]
    left: float | None  # None: the full duration of the (new) phase
    match move:
        case Move.STAY:
            phase, round_ = current.phase, current.round
            full = current.status is Status.IDLE and current.remaining_s is None
            left = None if full else _time_left(current, config, now=now)
        case Move.NEXT:
            phase, round_ = next_phase(current.phase, current.round, config)
            left = None
        case Move.FIRST:
            phase, round_ = Phase.FOCUS, 1
            left = None
    duration = config.duration(phase)
    started: float | None = None
    match target:
        case Status.RUNNING:
            started = now if left is None else now - (duration - left)
            left = None
        case Status.PAUSED:
            left = duration if left is None else left
        case Status.IDLE:
            pass
    return TimerState(
        status=target,
        phase=phase,
        round=round_,
        phase_started_at=started,
        remaining_s=left,
        revision=current.revision + 1,
        changed_at=now,
        last_command=command,
    )


# --- reading the timer --------------------------------------------------------------------------


@dataclass(frozen=True)
class TimerView:
    """Everything a screen needs to draw the timer at one instant."""

    status: Status
    phase: Phase
    round: int
    rounds_before_long: int
    remaining_s: float
    duration_s: float
    ends_at: float | None  # instant of the next automatic transition; None unless RUNNING
    progress: float  # share of the phase already done, in [0, 1]


def view(state: TimerState, config: TimerConfig, *, now: float) -> TimerView:
    """The timer as it reads at ``now`` under ``config`` (which may differ from when it started)."""
    current = advance(state, config, now=now)
    duration = config.duration(current.phase)
    left = _time_left(current, config, now=now)
    ends_at = None
    if current.status is Status.RUNNING:
        assert current.phase_started_at is not None
        ends_at = current.phase_started_at + duration
    return TimerView(
        status=current.status,
        phase=current.phase,
        round=min(current.round, config.rounds_before_long),
        rounds_before_long=config.rounds_before_long,
        remaining_s=left,
        duration_s=duration,
        ends_at=ends_at,
        progress=min(max(1.0 - left / duration, 0.0), 1.0),
    )


@dataclass(frozen=True)
class Segment:
    """A stretch of one phase that actually ran: what the stats record as a focus session."""

    phase: Phase
    round: int
    start: float
    end: float
    completed: bool  # the phase ran to its end (not cut off at the end of the window)


def segments(
    state: TimerState,
    config: TimerConfig,
    *,
    start: float,
    end: float,
    limit: int = MAX_SEGMENTS,
) -> list[Segment]:
    """The running stretches of ``state`` within ``[start, end]``, assuming no command between.

    Call it with the state that held from one command to the next to learn what ran. A phase that
    ended inside the window is ``completed``; the one still running at ``end`` is not. At most
    ``limit`` segments, the earliest, are returned, so a forgotten timer costs bounded work.
    """
    start = _check_instant(start, "start")
    end = _check_instant(end, "end")
    if end <= start or state.status is not Status.RUNNING:
        return []
    current = advance(state, config, now=start)
    found: list[Segment] = []
    for _ in range(limit):
        if current.status is not Status.RUNNING:
            break
        assert current.phase_started_at is not None
        phase_end = current.phase_started_at + config.duration(current.phase)
        stretch_start = max(start, current.phase_started_at)
        if phase_end > end:
            if end > stretch_start:
                found.append(Segment(current.phase, current.round, stretch_start, end, False))
            break
        if phase_end > stretch_start:
            found.append(Segment(current.phase, current.round, stretch_start, phase_end, True))
        current = advance(current, config, now=phase_end)
    return found


PHASE_NAMES: Final[Mapping[Phase, str]] = MappingProxyType(
    {Phase.FOCUS: "Focus", Phase.SHORT_BREAK: "Short break", Phase.LONG_BREAK: "Long break"}
)
"""What each phase is called on screen (the CLI lowercases them mid-sentence)."""


def clock_text(seconds: float) -> str:
    """Remaining time as every countdown shows it, ``mm:ss`` rounded up: a fresh 25-minute phase
    reads 25:00 and its last fraction of a second 00:01 (float noise below a millisecond is not
    a second)."""
    whole = max(math.ceil(round(seconds, 3)), 0)
    return f"{whole // 60:02d}:{whole % 60:02d}"
