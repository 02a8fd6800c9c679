"""The stats page's bar chart: focused minutes per day, with a tooltip for each bar.

It lives apart from the page because it is the one widget built on QtCharts, with its own theming
(the chart's theme light or dark after the window colour, the bars in the focus phase's colour).
The page shares the wording of times and dates defined here, so both say them the same way.
"""

from __future__ import annotations

from datetime import date

from PySide6.QtCharts import QBarSeries, QBarSet, QCategoryAxis, QChart, QChartView, QValueAxis
from PySide6.QtCore import QEvent, QMargins, QSize, Qt
from PySide6.QtGui import QCursor, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from focusmate.timer import Phase
from ui.theme import palette_is_dark, phase_color
from ui.viewmodels.stats import DayBar

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_minutes(minutes: float) -> str:
    """``25 min``, ``1 h 5 min``, ``3 h``: focus time as people say it."""
    whole = round(minutes)
    if whole < 60:
        return f"{whole} min"
    hours, rest = divmod(whole, 60)
    return f"{hours:,} h {rest} min" if rest else f"{hours:,} h"


def plural(n: int, word: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def short_date(day: date) -> str:
    """``4 Dec``, the same whatever the system's locale."""
    return f"{day.day} {MONTHS[day.month - 1]}"


class DayChart(QChartView):
    """Focused minutes per day as bars; hovering a bar tells its day and figures."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bars: tuple[DayBar, ...] = ()
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setBackgroundBrush(Qt.BrushStyle.NoBrush)  # the card shows through
        self.viewport().setAutoFillBackground(False)
        self.setAccessibleName("Focus per day")
        chart = QChart()
        chart.legend().setVisible(False)
        chart.setMargins(QMargins(0, 0, 0, 0))
        chart.setBackgroundRoundness(0)
        self.setChart(chart)
        self.axis_x = QCategoryAxis()
        self.axis_x.setLabelsPosition(QCategoryAxis.AxisLabelsPosition.AxisLabelsPositionOnValue)
        self.axis_y = QValueAxis()
        self.axis_y.setLabelFormat("%.0f")
        chart.addAxis(self.axis_x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.axis_y, Qt.AlignmentFlag.AlignLeft)
        self.bar_set = QBarSet("Focus minutes")
        self._apply_theme()

    def show_bars(self, bars: tuple[DayBar, ...], *, today: date) -> None:
        self._bars = bars
        chart = self.chart()
        chart.removeAllSeries()  # deletes the old series and its bar set
        self.bar_set = QBarSet("Focus minutes")
        self.bar_set.append([bar.minutes for bar in bars])
        series = QBarSeries()
        series.setBarWidth(0.7)
        series.append(self.bar_set)
        series.hovered.connect(self._on_hovered)
        chart.addSeries(series)
        series.attachAxis(self.axis_x)
        series.attachAxis(self.axis_y)
        self._label_days(bars, today)
        peak = max((bar.minutes for bar in bars), default=0.0)
        self.axis_y.setRange(0, max(peak, 30.0))
        self.axis_y.applyNiceNumbers()
        self._colour_bars()
        total = sum(bar.minutes for bar in bars)
        self.setAccessibleDescription(
            f"{format_minutes(total)} of focus in the last {len(bars)} days"
        )

    def _label_days(self, bars: tuple[DayBar, ...], today: date) -> None:
        # Labels sit on their bar's centre and may be wider than a bar: a month names every
        # seventh day back from today, a week every day.
        axis = self.axis_x
        for label in axis.categoriesLabels():
            axis.remove(label)
        axis.setStartValue(-0.5)
        axis.setRange(-0.5, len(bars) - 0.5)
        for i, bar in enumerate(bars):
            back = (today - bar.day).days
            if back == 0:
                axis.append("Today", i)
            elif len(bars) <= 7:
                axis.append(WEEKDAYS[bar.day.weekday()][:3], i)
            elif back % 7 == 0:
                axis.append(short_date(bar.day), i)

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self.fontMetrics().height() * 18)

    def _on_hovered(self, status: bool, index: int, _bar_set: QBarSet) -> None:
        if not status or not 0 <= index < len(self._bars):
            QToolTip.hideText()
            return
        bar = self._bars[index]
        day = f"{WEEKDAYS[bar.day.weekday()]} {short_date(bar.day)}"
        figures = f"{format_minutes(bar.minutes)}, {plural(bar.sessions, 'session')}"
        QToolTip.showText(QCursor.pos(), f"{day}: {figures}", self)

    def _dark(self) -> bool:
        # This widget's palette, not the app's: it is what a PaletteChange brings.
        return palette_is_dark(self.palette())

    def _apply_theme(self) -> None:
        chart = self.chart()
        chart.setTheme(
            QChart.ChartTheme.ChartThemeDark if self._dark() else QChart.ChartTheme.ChartThemeLight
        )
        chart.setBackgroundVisible(False)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        grid = self.palette().color(QPalette.ColorRole.Mid)
        for axis in (self.axis_x, self.axis_y):
            axis.setLabelsColor(text)
            axis.setLinePenColor(grid)
            axis.setGridLineColor(grid)
        self.axis_x.setGridLineVisible(False)
        self._colour_bars()

    def _colour_bars(self) -> None:
        colour = phase_color(Phase.FOCUS, dark=self._dark())
        self.bar_set.setColor(colour)
        self.bar_set.setBorderColor(colour)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_theme()
