"""The big round countdown: a ring that drains in the phase's colour, mm:ss, phase, round dots.

Everything is drawn relative to the widget's shorter side, so it stays crisp and balanced from a
small window to a full screen at any scaling. The colour says which phase it is; a timer that is
not counting (ready or paused) is drawn in a quieter version of it, and the words under the time
say the same thing for anyone who cannot tell the colours apart.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QStyle, QStyleOptionFocusRect, QWidget

from focusmate.timer import Status
from ui.theme import palette_is_dark, phase_color
from ui.viewmodels.room import TimerSnapshot

_FULL_CIRCLE = 360 * 16  # QPainter angles are in 1/16 degree
_TWELVE_O_CLOCK = 90 * 16


def _muted(color: QColor) -> QColor:
    """The same hue, quieter: for a timer that waits."""
    hue = max(color.hsvHueF(), 0.0)  # -1 for a grey
    return QColor.fromHsvF(hue, color.hsvSaturationF() * 0.4, color.valueF())


class CountdownWidget(QWidget):
    """Shows a :class:`TimerSnapshot`; call :meth:`set_snapshot` whenever it changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._snapshot: TimerSnapshot | None = None
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setAccessibleName("Timer")
        # Tab stops here so screen readers reach the accessible description; nothing to click.
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)

    def set_snapshot(self, snapshot: TimerSnapshot) -> None:
        previous, self._snapshot = self._snapshot, snapshot
        if previous is None or previous.description != snapshot.description:
            self.setAccessibleDescription(snapshot.description)  # once a second, not per tick
        self.update()

    def centre_text(self) -> str:
        """The time drawn in the middle of the ring."""
        return self._snapshot.remaining_text if self._snapshot else ""

    # -- geometry -------------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, 160)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    # -- drawing --------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        side = float(min(self.width(), self.height()))
        ring_width = max(side * 0.05, 4.0)
        inset = ring_width / 2 + side * 0.03
        square = QRectF(
            (self.width() - side) / 2 + inset,
            (self.height() - side) / 2 + inset,
            side - 2 * inset,
            side - 2 * inset,
        )
        palette = self.palette()
        dark = palette_is_dark(palette)
        colour = phase_color(snapshot.phase, dark=dark)
        if snapshot.status is not Status.RUNNING:
            colour = _muted(colour)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._draw_ring(painter, square, ring_width, colour, snapshot.progress)
        self._draw_text(painter, square, side, snapshot)
        self._draw_rounds(painter, square, side, colour, snapshot)
        if self.hasFocus():
            self._draw_focus(painter, square.adjusted(-inset, -inset, inset, inset))
        painter.end()

    def _draw_ring(
        self, painter: QPainter, square: QRectF, width: float, colour: QColor, progress: float
    ) -> None:
        track = QColor(self.palette().color(QPalette.ColorRole.Mid))
        track.setAlphaF(0.45)
        pen = QPen(track, width)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(square)
        left = round((1.0 - min(max(progress, 0.0), 1.0)) * _FULL_CIRCLE)
        if left > 0:
            pen.setColor(colour)
            painter.setPen(pen)
            # What is left runs from the elapsed point back round to twelve o'clock.
            painter.drawArc(square, _TWELVE_O_CLOCK, left)

    def _draw_focus(self, painter: QPainter, bounds: QRectF) -> None:
        """The style's focus frame just outside the ring, so keyboard users see where they are."""
        option = QStyleOptionFocusRect()
        option.initFrom(self)
        option.rect = bounds.toAlignedRect().intersected(self.rect())
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, option, painter, self)

    def _draw_text(
        self, painter: QPainter, square: QRectF, side: float, snapshot: TimerSnapshot
    ) -> None:
        palette = self.palette()
        centre = square.center()
        time_font = QFont(self.font())
        time_font.setPixelSize(max(round(side * 0.2), 12))
        time_font.setWeight(QFont.Weight.DemiBold)
        time_font.setStyleHint(QFont.StyleHint.SansSerif)
        painter.setFont(time_font)
        painter.setPen(palette.color(QPalette.ColorRole.WindowText))
        time_box = QRectF(square.left(), centre.y() - side * 0.16, square.width(), side * 0.24)
        painter.drawText(time_box, Qt.AlignmentFlag.AlignCenter, snapshot.remaining_text)
        label_font = QFont(self.font())
        label_font.setPixelSize(max(round(side * 0.055), 10))
        painter.setFont(label_font)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        label = snapshot.phase_label
        if snapshot.status_label:
            label = f"{label} · {snapshot.status_label}"
        label_box = QRectF(square.left(), centre.y() + side * 0.08, square.width(), side * 0.08)
        painter.drawText(label_box, Qt.AlignmentFlag.AlignCenter, label)

    def _draw_rounds(
        self,
        painter: QPainter,
        square: QRectF,
        side: float,
        colour: QColor,
        snapshot: TimerSnapshot,
    ) -> None:
        count = snapshot.rounds_before_long
        radius = min(side * 0.016, square.width() * 0.5 / (count * 3))
        step = radius * 3
        y = square.center().y() + side * 0.22
        x = square.center().x() - step * (count - 1) / 2
        pen = QPen(colour, max(radius * 0.35, 1.0))
        painter.setPen(pen)
        for index in range(1, count + 1):
            painter.setBrush(colour if index <= snapshot.round else Qt.BrushStyle.NoBrush)
            painter.drawEllipse(QPointF(x, y), radius, radius)
            x += step
