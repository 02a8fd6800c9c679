"""The stats page's model: totals, daily bars, streaks and achievements as one snapshot.

Every figure comes from :mod:`focusmate.stats` and :mod:`focusmate.achievements`, computed the way
``focusmate stats`` computes them (same time zone choice, same "today"), so the app and the CLI
never disagree. The snapshot is rebuilt when the stats document changes and when the local date
rolls over, never on a timer tick otherwise. Exports gather their data on the loop (the profile
database is not thread-safe) and write the file on a worker thread, atomically.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PySide6.QtCore import QObject, QTimer, Signal

from focusmate import achievements, stats
from focusmate.achievements import Metric
from focusmate.clock import local_zone
from focusmate.errors import FocusMateError
from focusmate.export import export_data
from focusmate.focus_log import stats_doc_id
from ui.session import Session

RANGES = (7, 30)
"""The chart's choices: the last week or the last month, in days."""

_UNITS = {
    Metric.SESSIONS: "sessions",
    Metric.STREAK_DAYS: "days in a row",
    Metric.FOCUS_HOURS: "hours",
    Metric.SESSIONS_IN_A_DAY: "sessions in one day",
    Metric.EARLY_SESSIONS: "early sessions",
    Metric.NIGHT_SESSIONS: "late sessions",
    Metric.ROOMS: "rooms",
}


@dataclass(frozen=True)
class PeriodTotal:
    minutes: float
    """Focused minutes, interrupted rounds included (that time was really spent)."""
    sessions: int
    """Completed sessions."""
    interrupted: int


@dataclass(frozen=True)
class DayBar:
    day: date
    minutes: float
    sessions: int


@dataclass(frozen=True)
class AchievementItem:
    id: str
    title: str
    description: str
    unlocked: bool
    progress: float
    """0–1 towards the threshold; 1 once unlocked."""
    progress_text: str
    """"3 of 10 sessions" (or "Not yet earned" for one-off badges) while locked; empty once
    unlocked."""
    unlocked_on: date | None
    """The local date of the session that earned it."""


@dataclass(frozen=True)
class StatsSnapshot:
    today: PeriodTotal
    week: PeriodTotal
    """The ISO week (Monday to Sunday) containing today."""
    month: PeriodTotal
    all_time: PeriodTotal
    last_7: tuple[DayBar, ...]
    last_30: tuple[DayBar, ...]
    range_days: int
    """Which of the two the chart shows: 7 or 30."""
    current_streak: int
    best_streak: int
    achievements: tuple[AchievementItem, ...]
    today_date: date
    time_zone: str

    @property
    def days(self) -> tuple[DayBar, ...]:
        """The bars of the chosen range, oldest first, ending today."""
        return self.last_7 if self.range_days == 7 else self.last_30

    @property
    def unlocked_count(self) -> int:
        return sum(item.unlocked for item in self.achievements)


class StatsViewModel(QObject):
    """Focus statistics of the session's profile, and its exports."""

    changed = Signal()
    error = Signal(str)
    exported = Signal(str)  # the path written

    def __init__(
        self, session: Session, tz: ZoneInfo | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.tz = tz or local_zone()
        self._doc_id = stats_doc_id(session.workspace.user_id)
        self._range = 7
        self._due = QTimer(self, singleShot=True, interval=0)  # one rebuild per burst of edits
        self._due.timeout.connect(self.refresh)
        session.documentChanged.connect(self._on_document_changed)
        session.ticked.connect(self._on_tick)
        # The session forwards room documents only, so listen to the stats document itself too:
        # it notifies on our own recordings and on other processes' commits alike. The listener
        # holds the view-model weakly; the workspace outlives it.
        schedule = weakref.WeakMethod(self._schedule)

        def on_stats_change(_update: bytes, _origin: str) -> None:
            method = schedule()
            if method is not None:
                method()

        unsubscribe = session.workspace.stats().document.on_change(on_stats_change)
        self.destroyed.connect(lambda *_: unsubscribe())
        # Built when first read (a year of sessions takes a while, and the window opens on a
        # room, not on the stats), then kept current.
        self._snapshot: StatsSnapshot | None = None

    @property
    def snapshot(self) -> StatsSnapshot:
        if self._snapshot is None:
            self._snapshot = self._build()
        return self._snapshot

    @property
    def range_days(self) -> int:
        return self._range

    def set_range(self, days: int) -> None:
        """Show the last 7 or the last 30 days in the chart."""
        if days not in RANGES:
            raise ValueError(f"range must be one of {RANGES}, got {days}")
        if days != self._range:
            self._range = days
            self.refresh()

    def refresh(self) -> None:
        self._due.stop()
        if self._snapshot is not None:  # else nobody has looked yet: built when first read
            self._snapshot = self._build()
        self.changed.emit()

    # -- exports --------------------------------------------------------------------------------

    async def export_json(self, path: str | os.PathLike[str]) -> bool:
        """Everything ``focusmate export`` writes (rooms, profile, stats, settings; no private
        key), ready for ``focusmate import``. True when the file was written."""
        try:
            data = export_data(self.session.workspace)
        except FocusMateError as err:
            self.error.emit(str(err))
            return False
        return await self._write(Path(path), lambda: json.dumps(data, ensure_ascii=False, indent=1))

    async def export_csv(self, path: str | os.PathLike[str]) -> bool:
        """One row per recorded session, for spreadsheets. True when the file was written."""
        sessions = self.session.workspace.stats().sessions()
        return await self._write(Path(path), lambda: stats.to_csv(sessions))

    async def _write(self, path: Path, render: Callable[[], str]) -> bool:
        try:
            await asyncio.to_thread(_write_atomically, path, render)
        except OSError as err:
            reason = err.strerror or str(err)
            self.error.emit(f"Could not save {path.name}: {reason}.")
            return False
        self.exported.emit(str(path))
        return True

    # -- internals ------------------------------------------------------------------------------

    def _today(self) -> date:
        return datetime.fromtimestamp(self.session.workspace.now(), self.tz).date()

    def _schedule(self) -> None:
        if not self._due.isActive():
            self._due.start()

    def _on_document_changed(self, doc_id: str) -> None:
        if doc_id == self._doc_id:
            self._schedule()

    def _on_tick(self) -> None:
        shown = self._snapshot
        if shown is not None and self._today() != shown.today_date:  # midnight: start from zero
            self._schedule()

    def _build(self) -> StatsSnapshot:
        sessions = self.session.workspace.stats().sessions()
        tz, today = self.tz, self._today()
        summary = stats.summarize(sessions, today=today, tz=tz)
        streaks = stats.streaks(sessions, today=today, tz=tz)
        grid = achievements.progress(sessions, tz=tz)
        return StatsSnapshot(
            today=_period(summary.today),
            week=_period(summary.week),
            month=_period(summary.month),
            all_time=_period(summary.all_time),
            last_7=_bars(stats.daily_totals(sessions, end=today, days=7, tz=tz)),
            last_30=_bars(stats.daily_totals(sessions, end=today, days=30, tz=tz)),
            range_days=self._range,
            current_streak=streaks.current,
            best_streak=streaks.best,
            achievements=tuple(_item(a, value, u, tz) for a, value, u in grid),
            today_date=today,
            time_zone=str(tz),
        )


def _period(totals: stats.Totals) -> PeriodTotal:
    return PeriodTotal(
        minutes=totals.focus_s / 60, sessions=totals.sessions, interrupted=totals.interrupted
    )


def _bars(days: list[stats.DayTotal]) -> tuple[DayBar, ...]:
    return tuple(DayBar(day=d.day, minutes=d.focus_s / 60, sessions=d.sessions) for d in days)


def _item(
    achievement: achievements.Achievement,
    value: float,
    unlocked: achievements.Unlocked | None,
    tz: ZoneInfo,
) -> AchievementItem:
    if unlocked is not None:
        return AchievementItem(
            id=achievement.id,
            title=achievement.title,
            description=achievement.description,
            unlocked=True,
            progress=1.0,
            progress_text="",
            unlocked_on=datetime.fromtimestamp(unlocked.unlocked_at, tz).date(),
        )
    # Round down so a locked badge never reads as if its threshold were met.
    shown = math.floor(value * 10) / 10 if achievement.metric is Metric.FOCUS_HOURS else value
    unit = _UNITS[achievement.metric]
    return AchievementItem(
        id=achievement.id,
        title=achievement.title,
        description=achievement.description,
        unlocked=False,
        progress=min(value / achievement.threshold, 1.0),
        progress_text=(
            "Not yet earned"
            if achievement.threshold == 1
            else f"{_number(shown)} of {_number(achievement.threshold)} {unit}"
        ),
        unlocked_on=None,
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _write_atomically(path: Path, render: Callable[[], str]) -> None:
    """Render and write next to ``path``, then rename: a failed export never leaves half a file
    in place of a good one. The file is the user's alone (0600): a full export holds room
    secrets."""
    text = render()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
