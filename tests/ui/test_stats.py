"""The stats page: a finished focus session shows up in the totals, the chart and the badges."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import shiboken6
from PySide6.QtCharts import QBarSeries, QChart
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from focusmate.achievements import CATALOGUE
from focusmate.clock import FakeClock
from focusmate.export import read_export
from focusmate.settings import Theme
from focusmate.stats import FocusSession
from focusmate.timer import Command, Phase
from focusmate.workspace import Workspace
from tests.ui.uikit import run, session, until, workspace
from ui.theme import apply_theme, phase_color
from ui.viewmodels.stats import StatsViewModel
from ui.widgets.stats_page import StatsPage

UTC = ZoneInfo("UTC")
MORNING = 1_767_258_000.0  # Thursday 2026-01-01 09:00 UTC


def bars(page: StatsPage) -> list[float]:
    (series,) = page.chart.chart().series()
    assert isinstance(series, QBarSeries)
    (bar_set,) = series.barSets()
    return [bar_set.at(i) for i in range(bar_set.count())]


def record(ws: Workspace, *starts: float) -> None:
    ws.stats().record(
        [
            FocusSession(
                session_id=f"s{i}",
                room_id="room",
                started_at=start,
                duration_s=25 * 60,
                task="write",
                completed=True,
            )
            for i, start in enumerate(starts)
        ],
        now=ws.now(),
    )


def test_a_finished_focus_session_shows_in_the_totals_chart_streak_and_badges(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock(MORNING)
    ws = workspace(tmp_path / "me", clock=clock)
    room, _ = ws.create_room("Deep work")
    s = session(ws)
    page = StatsPage(StatsViewModel(s, tz=UTC))
    qtbot.addWidget(page)
    page.resize(900, 1000)
    first = page.achievements.tiles["first-session"]
    assert first.status.text() == "Not yet earned"

    async def scenario() -> None:
        await s.start()
        try:
            await s.timer_command(room.room_id, Command.START)
            clock.advance(25 * 60 + 1)
            s.tick()  # the focus phase is over: the session records it in the stats
            await until(lambda: page.today.figure.text() == "25 min", "today's total")
        finally:
            await s.stop()

    run(qloop, scenario())
    assert page.today.detail.text() == "1 session"
    assert page.week.figure.text() == "25 min"
    assert page.month.figure.text() == "25 min"
    assert bars(page)[-1] == 25
    assert sum(bars(page)) == 25
    assert page.current_streak.figure.text() == "1 day"
    assert page.best_streak.figure.text() == "1 day"
    assert first.title.text() == "First focus"
    assert first.badge.text() == "★"
    assert first.status.text() == "Unlocked 1 Jan 2026"
    assert first.progress.isHidden()
    assert page.unlocked_count.text() == f"1 of {len(CATALOGUE)} unlocked"


def test_an_empty_profile_shows_zeros_and_every_achievement_locked(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", clock=FakeClock(MORNING))
    page = StatsPage(StatsViewModel(session(ws), tz=UTC))
    qtbot.addWidget(page)

    for card in (page.today, page.week, page.month):
        assert card.figure.text() == "0 min"
        assert card.detail.text() == "0 sessions"
    assert page.current_streak.figure.text() == "0 days"
    assert bars(page) == [0.0] * 7
    assert not page.chart_hint.isHidden()
    assert page.unlocked_count.text() == f"0 of {len(CATALOGUE)} unlocked"
    assert len(page.achievements.tiles) == len(CATALOGUE)
    for tile in page.achievements.tiles.values():
        assert tile.badge.text() == "☆"
        assert not tile.progress.isHidden()
        assert not tile.status.text().startswith("Unlocked")


def test_the_toggle_switches_between_seven_and_thirty_bars(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", clock=FakeClock(MORNING))
    record(ws, MORNING - 20 * 86400)  # twenty days ago: only the 30-day chart reaches it
    page = StatsPage(StatsViewModel(session(ws), tz=UTC))
    qtbot.addWidget(page)
    assert len(bars(page)) == 7
    assert sum(bars(page)) == 0

    qtbot.mouseClick(page.range_30, Qt.MouseButton.LeftButton)
    assert len(bars(page)) == 30
    assert bars(page)[-21] == 25
    assert page.range_30.isChecked()
    assert page.chart.axis_x.categoriesLabels() == ["4 Dec", "11 Dec", "18 Dec", "25 Dec", "Today"]

    qtbot.mouseClick(page.range_7, Qt.MouseButton.LeftButton)
    assert len(bars(page)) == 7
    assert page.chart.axis_x.categoriesLabels() == [
        "Fri",
        "Sat",
        "Sun",
        "Mon",
        "Tue",
        "Wed",
        "Today",
    ]


def test_sessions_recorded_elsewhere_and_midnight_update_the_page(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock(MORNING)
    ws = workspace(tmp_path / "me", clock=clock)
    s = session(ws)
    page = StatsPage(StatsViewModel(s, tz=UTC))
    qtbot.addWidget(page)

    async def scenario() -> None:
        record(ws, MORNING - 3600, MORNING - 1800)
        await until(lambda: page.today.figure.text() == "50 min", "the recorded sessions")
        assert page.today.detail.text() == "2 sessions"
        clock.advance(16 * 3600)  # past midnight: a new day starts from zero
        s.tick()
        await until(lambda: page.today.figure.text() == "0 min", "the new day")
        assert page.week.figure.text() == "50 min"
        assert bars(page)[-2:] == [50, 0]
        assert page.current_streak.detail.text() == "Focus today to keep it going."

    run(qloop, scenario())


def test_exports_write_a_csv_row_per_session_and_an_importable_json(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    ws = workspace(tmp_path / "me", clock=FakeClock(MORNING))
    ws.create_room("Deep work")
    record(ws, MORNING - 7200, MORNING - 3600, MORNING - 86400)
    vm = StatsViewModel(session(ws), tz=UTC)
    saved: list[str] = []
    vm.exported.connect(saved.append)
    csv_path, json_path = tmp_path / "sessions.csv", tmp_path / "all.json"

    assert run(qloop, vm.export_csv(csv_path))
    assert run(qloop, vm.export_json(json_path))

    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["session_id"] for row in rows) == ["s0", "s1", "s2"]
    assert {row["duration_min"] for row in rows} == {"25.00"}
    data = read_export(json_path)
    assert data["user_id"] == ws.user_id
    assert len(data["stats"]["sessions"]) == 3
    assert [room["name"] for room in data["rooms"]] == ["Deep work"]
    assert "identity" not in data  # the private key never leaves through this button
    assert saved == [str(csv_path), str(json_path)]
    assert json.loads(json_path.read_text("utf-8"))["format"] == "focusmate-export"


def test_an_export_that_cannot_be_written_says_why_on_the_page(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", clock=FakeClock(MORNING))
    vm = StatsViewModel(session(ws), tz=UTC)
    page = StatsPage(vm)
    qtbot.addWidget(page)
    errors: list[str] = []
    vm.error.connect(errors.append)

    assert not run(qloop, vm.export_csv(tmp_path / "missing" / "sessions.csv"))
    assert errors == ["Could not save sessions.csv: No such file or directory."]
    assert page.message.text() == errors[0]
    assert not page.message.isHidden()
    assert not (tmp_path / "missing").exists()


def test_recording_goes_on_after_the_page_is_gone(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    ws = workspace(tmp_path / "me", clock=FakeClock(MORNING))
    owner = QObject()
    vm = StatsViewModel(session(ws), tz=UTC, parent=owner)
    shiboken6.delete(owner)  # the window closed; a page may still hold its view-model
    assert not shiboken6.isValid(vm)

    record(ws, MORNING - 3600)  # the stats document no longer calls into a deleted object

    assert len(ws.stats().sessions()) == 1


def test_the_chart_follows_the_apps_light_and_dark_theme(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot, restored_look: QApplication
) -> None:
    apply_theme(restored_look, Theme.LIGHT)
    ws = workspace(tmp_path / "me", clock=FakeClock(MORNING))
    page = StatsPage(StatsViewModel(session(ws), tz=UTC))
    qtbot.addWidget(page)
    assert page.chart.chart().theme() is QChart.ChartTheme.ChartThemeLight
    assert page.chart.bar_set.color() == phase_color(Phase.FOCUS, dark=False)

    apply_theme(restored_look, Theme.DARK)

    assert page.chart.chart().theme() is QChart.ChartTheme.ChartThemeDark
    assert page.chart.bar_set.color() == phase_color(Phase.FOCUS, dark=True)
    text = restored_look.palette().color(QPalette.ColorRole.WindowText)
    assert page.chart.axis_y.labelsColor() == text
