"""Achievements: a fixed catalogue unlocked by replaying the recorded sessions, nothing else.

Rules this module keeps:

- Unlocks are *derived*, never stored: every device replays the same sessions and gets the same
  badges with the same dates, so there is nothing to sync or to conflict.
- Only completed sessions count, so stopping a round early never earns anything.
- Sessions replay in ``(ended_at, session_id)`` order. Every metric only grows as sessions are
  added, so an achievement unlocks at the end of the first session after which its metric meets
  the threshold, and any ordering of the same input gives the same result.
- Day-based metrics use the local date (and hour) of a session's start in ``tz``, like
  :mod:`focusmate.stats`.
- Achievement ids are stable: the app may remember which unlocks it has already announced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from focusmate.stats import FocusSession

EARLY_BIRD_HOURS = range(4, 7)
"""Local start hours (04:00–06:59) that make a session an early bird's."""

NIGHT_OWL_HOURS = (*range(22, 24), *range(4))
"""Local start hours (22:00–03:59) that make a session a night owl's."""


class Metric(StrEnum):
    """What an achievement measures, always over completed sessions."""

    SESSIONS = "sessions"
    STREAK_DAYS = "streak_days"
    """Best run of consecutive local days with a completed session."""
    FOCUS_HOURS = "focus_hours"
    SESSIONS_IN_A_DAY = "sessions_in_a_day"
    """Most completed sessions started on one local day."""
    EARLY_SESSIONS = "early_sessions"
    NIGHT_SESSIONS = "night_sessions"
    ROOMS = "rooms"
    """Distinct rooms focused in."""


@dataclass(frozen=True)
class Achievement:
    id: str
    title: str
    description: str
    metric: Metric
    threshold: float
    """Unlocked once the metric is at least this."""


CATALOGUE: tuple[Achievement, ...] = (
    Achievement("first-session", "First focus", "Complete your first focus session.",
                Metric.SESSIONS, 1),
    Achievement("sessions-10", "Getting into it", "Complete 10 focus sessions.",
                Metric.SESSIONS, 10),
    Achievement("sessions-100", "Centurion", "Complete 100 focus sessions.",
                Metric.SESSIONS, 100),
    Achievement("sessions-1000", "Focus master", "Complete 1,000 focus sessions.",
                Metric.SESSIONS, 1000),
    Achievement("streak-7", "One week strong", "Focus on 7 days in a row.",
                Metric.STREAK_DAYS, 7),
    Achievement("streak-30", "Habit formed", "Focus on 30 days in a row.",
                Metric.STREAK_DAYS, 30),
    Achievement("focus-hours-25", "25 hours deep", "Reach 25 hours of completed focus.",
                Metric.FOCUS_HOURS, 25),
    Achievement("focus-hours-100", "100 hours deep", "Reach 100 hours of completed focus.",
                Metric.FOCUS_HOURS, 100),
    Achievement("full-cycle", "Full cycle", "Complete 4 focus sessions in one day.",
                Metric.SESSIONS_IN_A_DAY, 4),
    Achievement("marathon", "Marathon", "Complete 8 focus sessions in one day.",
                Metric.SESSIONS_IN_A_DAY, 8),
    Achievement("early-bird", "Early bird", "Start a completed session between 4:00 and 7:00.",
                Metric.EARLY_SESSIONS, 1),
    Achievement("night-owl", "Night owl", "Start a completed session between 22:00 and 4:00.",
                Metric.NIGHT_SESSIONS, 1),
    Achievement("room-hopper", "Room hopper", "Focus in 3 different rooms.",
                Metric.ROOMS, 3),
)  # fmt: skip


@dataclass(frozen=True)
class Unlocked:
    achievement: Achievement
    unlocked_at: float
    """Unix time at which the session that first met the threshold ended."""


@dataclass
class _Replay:
    """Running metrics while completed sessions are fed in order."""

    tz: ZoneInfo
    sessions: int = 0
    focus_s: float = 0.0
    best_streak: int = 0
    best_day: int = 0
    early: int = 0
    night: int = 0
    per_day: dict[date, int] = field(default_factory=dict)
    rooms: set[str] = field(default_factory=set)
    # Length of each run of consecutive days, by ordinal, kept current at both ends of the run;
    # interior entries go stale but are never read again.
    _run_at_edge: dict[int, int] = field(default_factory=dict)

    def add(self, session: FocusSession) -> None:
        start = datetime.fromtimestamp(session.started_at, self.tz)
        day = start.date()
        self.sessions += 1
        self.focus_s += session.duration_s
        self.rooms.add(session.room_id)
        self.early += int(start.hour in EARLY_BIRD_HOURS)
        self.night += int(start.hour in NIGHT_OWL_HOURS)
        if day not in self.per_day:
            self._add_day(day.toordinal())
        self.per_day[day] = self.per_day.get(day, 0) + 1
        self.best_day = max(self.best_day, self.per_day[day])

    def _add_day(self, ordinal: int) -> None:
        # Merge with the runs ending just before and starting just after: O(1) per new day.
        left = self._run_at_edge.get(ordinal - 1, 0)
        right = self._run_at_edge.get(ordinal + 1, 0)
        run = left + 1 + right
        self._run_at_edge[ordinal - left] = run
        self._run_at_edge[ordinal + right] = run
        self.best_streak = max(self.best_streak, run)

    def value(self, metric: Metric) -> float:
        match metric:
            case Metric.SESSIONS:
                return self.sessions
            case Metric.STREAK_DAYS:
                return self.best_streak
            case Metric.FOCUS_HOURS:
                return self.focus_s / 3600
            case Metric.SESSIONS_IN_A_DAY:
                return self.best_day
            case Metric.EARLY_SESSIONS:
                return self.early
            case Metric.NIGHT_SESSIONS:
                return self.night
            case Metric.ROOMS:
                return len(self.rooms)

    def meets(self, achievement: Achievement) -> bool:
        if achievement.metric is Metric.FOCUS_HOURS:
            # Compare in seconds, the unit the sum is kept in: dividing could round a sum just
            # below the threshold up to it.
            return self.focus_s >= achievement.threshold * 3600
        return self.value(achievement.metric) >= achievement.threshold


def _replay(sessions: Iterable[FocusSession], *, tz: ZoneInfo) -> tuple[_Replay, list[Unlocked]]:
    replay = _Replay(tz=tz)
    found: list[Unlocked] = []
    locked = list(CATALOGUE)
    # (ended_at, session_id) is the documented order; the other fields only break ties between
    # malformed duplicates of an id, so even those cannot make the float sums order-dependent.
    completed = sorted(
        (s for s in sessions if s.completed),
        key=lambda s: (s.ended_at, s.session_id, s.room_id, s.started_at, s.duration_s, s.task),
    )
    for session in completed:
        replay.add(session)
        for achievement in [a for a in locked if replay.meets(a)]:
            found.append(Unlocked(achievement=achievement, unlocked_at=session.ended_at))
            locked.remove(achievement)
    return replay, found


def unlocked(sessions: Iterable[FocusSession], *, tz: ZoneInfo) -> list[Unlocked]:
    """Every achievement earned, in unlock order (catalogue order within one session)."""
    return _replay(sessions, tz=tz)[1]


def progress(
    sessions: Iterable[FocusSession], *, tz: ZoneInfo
) -> list[tuple[Achievement, float, Unlocked | None]]:
    """For the achievements grid: each achievement in catalogue order, its metric's current value,
    and its unlock if earned."""
    replay, found = _replay(sessions, tz=tz)
    by_id = {u.achievement.id: u for u in found}
    return [(a, replay.value(a.metric), by_id.get(a.id)) for a in CATALOGUE]
