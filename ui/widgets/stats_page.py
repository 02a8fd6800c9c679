"""The stats page: where people see their progress — totals, a bar chart, streaks, achievements.

It draws a :class:`ui.viewmodels.stats.StatsSnapshot` and nothing else; every figure is computed in
the view-model. Colours come from the palette and from :mod:`ui.theme` (cards, hints), so the page
follows the app's theme and stays legible at any scale; the chart themes itself
(:mod:`ui.widgets.day_chart`). Locked achievements are drawn in the placeholder colour with a
progress bar; unlocked ones carry a star in the highlight colour and the date they were earned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths, Qt
from PySide6.QtGui import QFont, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QButtonGroup,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.stats import AchievementItem, StatsSnapshot, StatsViewModel
from ui.widgets.day_chart import DayChart, format_minutes, plural, short_date

PAGE_STYLE = """
QProgressBar#badgeProgress { background: palette(alternate-base); border: none;
    border-radius: 3px; }
QProgressBar#badgeProgress::chunk { background: palette(highlight); border-radius: 3px; }
QPushButton#rangeButton { background: palette(button); color: palette(button-text);
    border: 1px solid palette(mid); border-radius: 6px; padding: 3px 12px; }
QPushButton#rangeButton:checked { background: palette(highlight);
    color: palette(highlighted-text); border-color: palette(highlight); }
QPushButton#rangeButton:focus { border: 2px solid palette(text); }
"""


def _scaled(widget: QWidget, factor: float, *, bold: bool = False) -> None:
    font = QFont(widget.font())
    font.setPointSizeF(font.pointSizeF() * factor)
    font.setBold(bold)
    widget.setFont(font)


def _hint(label: QLabel) -> QLabel:
    label.setProperty("hint", True)  # quiet text, as ui.theme styles it
    return label


class _Card(QFrame):
    """A rounded panel, as ui.theme styles cards."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("card", True)
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(16, 12, 16, 12)


class FigureCard(_Card):
    """One big number with a caption above and a detail line below."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = _hint(QLabel(caption))
        self.figure = QLabel()
        _scaled(self.figure, 2.2, bold=True)
        self.detail = _hint(QLabel())
        self.detail.setWordWrap(True)
        for label in (self.caption, self.figure, self.detail):
            self.body.addWidget(label)
        self.body.addStretch(1)

    def show_figure(self, figure: str, detail: str) -> None:
        self.figure.setText(figure)
        self.detail.setText(detail)
        self.setAccessibleName(f"{self.caption.text()}: {figure}, {detail}")


class AchievementTile(_Card):
    """One badge: a star and the date once earned, otherwise greyed with its progress."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.badge = QLabel()
        _scaled(self.badge, 1.6)
        self.title = QLabel()
        _scaled(self.title, 1.0, bold=True)
        self.title.setWordWrap(True)
        head = QHBoxLayout()
        head.addWidget(self.badge)
        head.addWidget(self.title, 1)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setObjectName("badgeProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(self.fontMetrics().height() // 2)
        self.status = _hint(QLabel())
        self.body.addLayout(head)
        self.body.addWidget(self.description)
        self.body.addStretch(1)
        self.body.addWidget(self.progress)
        self.body.addWidget(self.status)

    def show_item(self, item: AchievementItem) -> None:
        self.badge.setText("★" if item.unlocked else "☆")
        self.badge.setForegroundRole(
            QPalette.ColorRole.Highlight if item.unlocked else QPalette.ColorRole.PlaceholderText
        )
        text_role = (
            QPalette.ColorRole.WindowText if item.unlocked else QPalette.ColorRole.PlaceholderText
        )
        self.title.setForegroundRole(text_role)
        self.description.setForegroundRole(text_role)
        self.title.setText(item.title)
        self.description.setText(item.description)
        self.progress.setVisible(not item.unlocked)
        self.progress.setValue(round(item.progress * 1000))
        self.progress.setAccessibleName(f"Progress towards {item.title}")
        if (day := item.unlocked_on) is not None:
            status = f"Unlocked {short_date(day)} {day.year}"
        else:
            status = item.progress_text
        self.status.setText(status)
        state = "unlocked" if item.unlocked else "locked"
        self.setAccessibleName(f"{item.title}, {state}")
        self.setAccessibleDescription(f"{item.description} {status}.")
        self.setToolTip(f"{item.description}\n{status}")


class AchievementGrid(QWidget):
    """Tiles in one to four columns. The page chooses how many from *its* width: a grid sized
    by its own width would never shrink below the columns it already has."""

    MAX_COLUMNS = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[str, AchievementTile] = {}
        self._order: list[str] = []
        self._columns = 1
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(10)

    def show_items(self, items: tuple[AchievementItem, ...]) -> None:
        ids = [item.id for item in items]
        if ids != self._order:  # the catalogue is fixed, so this happens once
            for tile in self.tiles.values():
                tile.deleteLater()
            self.tiles = {item_id: AchievementTile(self) for item_id in ids}
            self._order = ids
            self._place()
        for item in items:
            self.tiles[item.id].show_item(item)

    def tile_width(self) -> int:
        """The width one column needs: a comfortable reading width, or more if a tile asks."""
        comfortable = self.fontMetrics().horizontalAdvance("M") * 16
        widest = max((tile.minimumSizeHint().width() for tile in self.tiles.values()), default=0)
        return max(comfortable, widest) + self._grid.spacing()

    def set_columns(self, columns: int) -> None:
        columns = max(1, min(self.MAX_COLUMNS, columns))
        if columns != self._columns:
            self._columns = columns
            self._place()

    def _place(self) -> None:
        for i, item_id in enumerate(self._order):
            self._grid.addWidget(self.tiles[item_id], i // self._columns, i % self._columns)
        for column in range(self.MAX_COLUMNS):
            self._grid.setColumnStretch(column, 1 if column < self._columns else 0)


class StatsPage(QWidget):
    """Totals, the daily chart with its 7/30-day toggle, streaks, achievements and exports."""

    def __init__(self, vm: StatsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self._tasks: set[asyncio.Future[Any]] = set()
        self.setStyleSheet(PAGE_STYLE)
        content = QWidget()
        self._column = column = QVBoxLayout(content)
        column.setSpacing(14)
        column.addLayout(self._build_header())
        self.message = _hint(QLabel())
        self.message.setWordWrap(True)
        self.message.hide()
        column.addWidget(self.message)

        self.today = FigureCard("Today")
        self.week = FigureCard("This week")
        self.month = FigureCard("This month")
        self._rows = [self._row(self.today, self.week, self.month)]
        column.addLayout(self._rows[0][0])
        column.addWidget(self._build_chart_card())
        self.current_streak = FigureCard("Current streak")
        self.best_streak = FigureCard("Best streak")
        self._rows.append(self._row(self.current_streak, self.best_streak))
        column.addLayout(self._rows[1][0])

        heading = QHBoxLayout()
        title = QLabel("Achievements")
        _scaled(title, 1.25, bold=True)
        self.unlocked_count = _hint(QLabel())
        heading.addWidget(title)
        heading.addStretch(1)
        heading.addWidget(self.unlocked_count)
        column.addLayout(heading)
        self.achievements = AchievementGrid()
        column.addWidget(self.achievements)
        column.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        QWidget.setTabOrder(self.export_button, self.range_7)
        QWidget.setTabOrder(self.range_7, self.range_30)

        vm.changed.connect(self._render)
        vm.error.connect(lambda text: self._show_message(text, error=True))
        vm.exported.connect(lambda path: self._show_message(f"Saved to {path}."))
        self._render()

    # -- building -------------------------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        title = QLabel("Your focus")
        _scaled(title, 1.6, bold=True)
        self.export_button = QPushButton("Export…")
        self.export_button.setAccessibleName("Export your data")
        self.export_button.setToolTip("Save your focus sessions as CSV, or all your data as JSON")
        menu = QMenu(self.export_button)
        menu.addAction("Focus sessions (CSV)…", self._export_csv)
        menu.addAction("All data (JSON)…", self._export_json)
        self.export_button.setMenu(menu)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.export_button)
        return header

    def _build_chart_card(self) -> _Card:
        card = _Card()
        top = QHBoxLayout()
        heading = QLabel("Minutes of focus per day")
        _scaled(heading, 1.1, bold=True)
        top.addWidget(heading)
        top.addStretch(1)
        self.range_7 = QPushButton("7 days")
        self.range_30 = QPushButton("30 days")
        self.range_group = QButtonGroup(self)
        for days, button in ((7, self.range_7), (30, self.range_30)):
            button.setObjectName("rangeButton")
            button.setCheckable(True)
            button.setAccessibleName(f"Show the last {days} days")
            button.setToolTip(f"Show the last {days} days")
            self.range_group.addButton(button, days)
            top.addWidget(button)
        self.range_group.idClicked.connect(self.vm.set_range)
        card.body.addLayout(top)
        self.chart = DayChart()
        card.body.addWidget(self.chart, 1)
        self.chart_hint = _hint(QLabel("No focus recorded in these days yet."))
        self.chart_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        card.body.addWidget(self.chart_hint)
        return card

    @staticmethod
    def _row(*cards: QWidget) -> tuple[QBoxLayout, tuple[QWidget, ...]]:
        row = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        row.setSpacing(12)
        for card in cards:
            row.addWidget(card, 1)
        return row, cards

    def _fit_rows(self) -> None:
        """Cards side by side where they fit, stacked in a narrow window (or at a large scale);
        as many achievement columns as fit."""
        margins = self._column.contentsMargins()
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        available = self.width() - margins.left() - margins.right() - scrollbar
        for row, cards in self._rows:
            widest = max(card.minimumSizeHint().width() for card in cards)
            fits = widest * len(cards) + row.spacing() * (len(cards) - 1) <= available
            row.setDirection(
                QBoxLayout.Direction.LeftToRight if fits else QBoxLayout.Direction.TopToBottom
            )
        self.achievements.set_columns(available // self.achievements.tile_width())

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._fit_rows()
        super().resizeEvent(event)

    # -- drawing --------------------------------------------------------------------------------

    def _render(self) -> None:
        snap: StatsSnapshot = self.vm.snapshot
        for card, period in (
            (self.today, snap.today),
            (self.week, snap.week),
            (self.month, snap.month),
        ):
            detail = plural(period.sessions, "session")
            if period.interrupted:
                detail += f" · {period.interrupted:,} cut short"
            card.show_figure(format_minutes(period.minutes), detail)

        (self.range_7 if snap.range_days == 7 else self.range_30).setChecked(True)
        self.chart.show_bars(snap.days, today=snap.today_date)
        self.chart_hint.setVisible(not any(bar.minutes for bar in snap.days))

        if snap.current_streak == 0:
            keep = "Finish a focus session to start one."
        elif snap.today.sessions == 0:
            keep = "Focus today to keep it going."
        else:
            keep = "You focused today."
        self.current_streak.show_figure(plural(snap.current_streak, "day"), keep)
        best = (
            "Your longest run of days." if snap.best_streak else "Your longest run will show here."
        )
        self.best_streak.show_figure(plural(snap.best_streak, "day"), best)

        self.unlocked_count.setText(f"{snap.unlocked_count} of {len(snap.achievements)} unlocked")
        self.achievements.show_items(snap.achievements)
        self._fit_rows()  # longer figures may no longer fit side by side

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.setProperty("hint", not error)
        self.message.style().unpolish(self.message)  # the properties pick the colour
        self.message.style().polish(self.message)
        self.message.show()

    # -- exports --------------------------------------------------------------------------------

    def _export_csv(self) -> None:
        path = self._ask_path("Export focus sessions", "csv", "CSV files (*.csv)")
        if path:
            self._spawn(self.vm.export_csv(path))

    def _export_json(self) -> None:
        path = self._ask_path("Export all data", "json", "JSON files (*.json)")
        if path:
            self._spawn(self.vm.export_json(path))

    def _ask_path(self, caption: str, suffix: str, file_filter: str) -> str:
        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        suggested = Path(folder) / f"focusmate-{self.vm.snapshot.today_date.isoformat()}.{suffix}"
        path, _ = QFileDialog.getSaveFileName(self, caption, str(suggested), file_filter)
        return path

    def _spawn(self, job: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
