"""Focus statistics: recorded sessions in, totals, daily bars, streaks and a CSV export out.

Rules this module keeps:

- Every function is pure. The calendar needs a day and a time zone, so ``today``/``end`` and ``tz``
  are arguments; nothing reads the clock or the machine's zone.
- A session belongs to the *local date of its start* in ``tz``. A session from 23:50 to 00:15
  counts for the first day only, and DST days (23 or 25 hours long) need no special case because
  only local dates are compared, never hour offsets.
- Interrupted sessions add their focused seconds to ``focus_s`` (the time was really spent focusing)
  but never count as sessions and never keep a streak alive: only finishing a round does.
- Sessions are assumed unique by ``session_id`` (they are the keys of a CRDT map).
"""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from focusmate.errors import ValidationError

TASK_MAX = 200
"""Longest task text, in characters, after stripping."""

ID_MAX = 128
"""Longest session or room id: ids are generated, so anything longer is corrupt or hostile."""

MAX_DURATION_S = 4 * 60 * 60
"""Longest focused time one session may record; a 60-minute round plus generous headroom."""

MAX_STARTED_AT = 253_402_128_000.0
"""9999-12-30T00:00:00Z: later starts would overflow ``datetime`` once a zone offset is applied."""

CSV_HEADER = ("session_id", "room_id", "started_at_utc", "duration_min", "task", "completed")

_FIELDS = ("session_id", "room_id", "started_at", "duration_s", "task", "completed")


def validate_task(text: str) -> str:
    """Return the task stripped, or raise: it is shown on one line next to a person's name."""
    if not isinstance(text, str):
        raise ValidationError(f"task must be text, got {type(text).__name__}")
    task = text.strip()
    if len(task) > TASK_MAX:
        raise ValidationError(f"task must be at most {TASK_MAX} characters, got {len(task)}")
    if any(unicodedata.category(ch) == "Cc" for ch in task):
        raise ValidationError("task must be a single line without control characters")
    return task


def _validate_id(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text, got {type(value).__name__}")
    if not value or len(value) > ID_MAX:
        raise ValidationError(f"{name} must be 1–{ID_MAX} characters, got {len(value)}")
    return value


def _validate_number(name: str, value: object) -> float:
    # bool is an int subclass, but True seconds is a bug, not a duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"{name} must be a finite number, got {number}")
    return number


@dataclass(frozen=True)
class FocusSession:
    """One focus round as recorded when it ended: completed, or interrupted part-way.

    The constructor validates and normalises (numbers to float, task stripped), so every instance
    in the program is known good, whether it was built locally or read from a peer.
    """

    session_id: str
    room_id: str
    started_at: float
    """Seconds since the Unix epoch."""
    duration_s: float
    """Seconds actually focused (pauses excluded), in (0, 4 h]."""
    task: str
    completed: bool
    """False when the round was stopped before the timer ran out."""

    def __post_init__(self) -> None:
        _validate_id("session_id", self.session_id)
        _validate_id("room_id", self.room_id)
        started_at = _validate_number("started_at", self.started_at)
        if not 0 <= started_at <= MAX_STARTED_AT:
            raise ValidationError(
                f"started_at must be a Unix time between 0 and {MAX_STARTED_AT:.0f}, "
                f"got {started_at}"
            )
        duration_s = _validate_number("duration_s", self.duration_s)
        if not 0 < duration_s <= MAX_DURATION_S:
            raise ValidationError(
                f"duration_s must be more than 0 and at most {MAX_DURATION_S} seconds (4 h), "
                f"got {duration_s}"
            )
        if not isinstance(self.completed, bool):
            raise ValidationError(
                f"completed must be true or false, got {type(self.completed).__name__}"
            )
        object.__setattr__(self, "started_at", started_at)
        object.__setattr__(self, "duration_s", duration_s)
        object.__setattr__(self, "task", validate_task(self.task))

    @property
    def ended_at(self) -> float:
        """Start plus focused time: the end instant when the round ran without pauses."""
        return self.started_at + self.duration_s

    def to_dict(self) -> dict[str, object]:
        """Plain JSON/CRDT-friendly values, the inverse of :meth:`from_dict`."""
        return {
            "session_id": self.session_id,
            "room_id": self.room_id,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "task": self.task,
            "completed": self.completed,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FocusSession:
        """Build from untrusted data (a peer's CRDT map), raising ValidationError on any flaw.

        pycrdt returns every number as a float, so ints and integral floats are both accepted.
        Unknown keys are ignored so a newer peer can add fields without breaking older ones.
        """
        if not isinstance(d, Mapping):
            raise ValidationError(f"focus session must be a mapping, got {type(d).__name__}")
        missing = [field for field in _FIELDS if field not in d]
        if missing:
            raise ValidationError(f"focus session is missing {', '.join(missing)}")
        completed = d["completed"]
        if not isinstance(completed, bool):
            raise ValidationError(
                f"completed must be true or false, got {type(completed).__name__}"
            )
        task = d["task"]
        if not isinstance(task, str):
            raise ValidationError(f"task must be text, got {type(task).__name__}")
        return cls(
            session_id=_validate_id("session_id", d["session_id"]),
            room_id=_validate_id("room_id", d["room_id"]),
            started_at=_validate_number("started_at", d["started_at"]),
            duration_s=_validate_number("duration_s", d["duration_s"]),
            task=task,
            completed=completed,
        )


def local_date(session: FocusSession, *, tz: ZoneInfo) -> date:
    """The calendar day a session counts for: the local date of its start in ``tz``."""
    return datetime.fromtimestamp(session.started_at, tz).date()


@dataclass(frozen=True)
class Totals:
    focus_s: float
    """Focused seconds of all sessions, interrupted ones included."""
    sessions: int
    """Completed sessions."""
    interrupted: int


def total(sessions: Iterable[FocusSession]) -> Totals:
    """Sum focused time and count completed and interrupted rounds."""
    focus_s = 0.0
    completed = interrupted = 0
    for session in sessions:
        focus_s += session.duration_s
        if session.completed:
            completed += 1
        else:
            interrupted += 1
    return Totals(focus_s=focus_s, sessions=completed, interrupted=interrupted)


@dataclass(frozen=True)
class Summary:
    today: Totals
    week: Totals
    """The ISO week (Monday to Sunday) containing ``today``."""
    month: Totals
    """The calendar month containing ``today``."""
    all_time: Totals


def summarize(sessions: Iterable[FocusSession], *, today: date, tz: ZoneInfo) -> Summary:
    """Totals for the stats header: today, this week, this month and ever, by local start date."""
    dated = [(local_date(s, tz=tz), s) for s in sessions]
    monday = today - timedelta(days=today.weekday())
    sunday = monday + timedelta(days=6)
    return Summary(
        today=total(s for day, s in dated if day == today),
        week=total(s for day, s in dated if monday <= day <= sunday),
        month=total(s for day, s in dated if (day.year, day.month) == (today.year, today.month)),
        all_time=total(s for _, s in dated),
    )


@dataclass(frozen=True)
class DayTotal:
    day: date
    focus_s: float
    """Focused seconds, interrupted sessions included."""
    sessions: int
    """Completed sessions."""


def daily_totals(
    sessions: Iterable[FocusSession], *, end: date, days: int, tz: ZoneInfo
) -> list[DayTotal]:
    """Exactly ``days`` bars, oldest first and ending at ``end``; days without focus are zero."""
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    first = end - timedelta(days=days - 1) if days else end
    focus: dict[date, float] = {}
    completed: dict[date, int] = {}
    for session in sessions:
        day = local_date(session, tz=tz)
        if first <= day <= end:
            focus[day] = focus.get(day, 0.0) + session.duration_s
            completed[day] = completed.get(day, 0) + int(session.completed)
    return [
        DayTotal(day=day, focus_s=focus.get(day, 0.0), sessions=completed.get(day, 0))
        for day in (first + timedelta(days=i) for i in range(days))
    ]


@dataclass(frozen=True)
class Streaks:
    current: int
    """Consecutive days ending today, or yesterday while today has no completed session yet."""
    best: int
    """Longest run of consecutive days up to and including today."""


def streak_days(sessions: Iterable[FocusSession], *, tz: ZoneInfo) -> set[date]:
    """The local dates that count for streaks: those with at least one completed session."""
    return {local_date(s, tz=tz) for s in sessions if s.completed}


def streaks(sessions: Iterable[FocusSession], *, today: date, tz: ZoneInfo) -> Streaks:
    """Current and best streak as of ``today``.

    Today not being done yet does not break the streak: the user still has the rest of the day.
    Days after ``today`` (a peer's clock running ahead) are ignored, so ``best >= current``.
    """
    days = {day for day in streak_days(sessions, tz=tz) if day <= today}
    best = run = 0
    previous: date | None = None
    for day in sorted(days):
        run = run + 1 if previous is not None and day - previous == timedelta(days=1) else 1
        best = max(best, run)
        previous = day
    current = 0
    day = today if today in days else today - timedelta(days=1)
    while day in days:
        current += 1
        day -= timedelta(days=1)
    return Streaks(current=current, best=best)


def to_csv(sessions: Iterable[FocusSession]) -> str:
    """RFC 4180 CSV of the sessions in start order, for spreadsheets and leaving with one's data.

    Start times are UTC to the second; durations are minutes with two decimals; ``completed`` is
    ``true``/``false``. Write the result to a file opened with ``newline=""``. Tasks are written as
    typed (no formula escaping) so the export round-trips; they are the user's own text.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for s in sorted(sessions, key=lambda s: (s.started_at, s.session_id)):
        started = datetime.fromtimestamp(s.started_at, UTC).isoformat(timespec="seconds")
        writer.writerow(
            (
                s.session_id,
                s.room_id,
                started,
                f"{s.duration_s / 60:.2f}",
                s.task,
                "true" if s.completed else "false",
            )
        )
    return out.getvalue()
