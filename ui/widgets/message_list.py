"""The open conversation's messages and the box to write the next one.

Message text is always shown as plain text (it comes from other people). Bubbles paint with
palette roles, so they follow light and dark themes.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QPaintEvent, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.messages import MessageItem

BUBBLE_SHARE = 0.75  # of the message area's width
MAX_COMPOSER_LINES = 5


def plain_label(text: str = "") -> QLabel:
    """A label that never interprets its text as rich text, since most of it is someone's."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def small(label: QLabel) -> QLabel:
    """Smaller, muted text for secondary lines such as times and delivery states."""
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.85)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def fill_rounded(widget: QWidget, role: QPalette.ColorRole, radius: float) -> None:
    """Fill the widget's rectangle, rounded, in a palette colour so it follows the theme."""
    painter = QPainter(widget)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(widget.palette().color(role))
    painter.drawRoundedRect(QRectF(widget.rect()), radius, radius)
    painter.end()


class Bubble(QLabel):
    """One message's text on a rounded background: highlighted for ours, base for theirs."""

    def __init__(self, message: MessageItem) -> None:
        super().__init__()
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(message.text)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setForegroundRole(
            QPalette.ColorRole.HighlightedText if message.mine else QPalette.ColorRole.Text
        )
        self._fill = QPalette.ColorRole.Highlight if message.mine else QPalette.ColorRole.Base
        pad = self.fontMetrics().height() // 2
        self.setContentsMargins(pad, pad // 2 + 1, pad, pad // 2 + 1)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)

    def natural_width(self) -> int:
        """The width the text takes unwrapped: short messages get snug bubbles, long ones
        wrap at the list's limit (QLabel alone wraps them far too early)."""
        metrics = self.fontMetrics()
        text = max(metrics.horizontalAdvance(line) for line in self.text().split("\n"))
        margins = self.contentsMargins()
        return text + margins.left() + margins.right() + 2

    def paintEvent(self, event: QPaintEvent) -> None:
        fill_rounded(self, self._fill, self.fontMetrics().height() * 0.6)
        super().paintEvent(event)


class MessageRow(QWidget):
    """A bubble and the line under it (time, and delivery state for ours), on its side."""

    def __init__(self, message: MessageItem) -> None:
        super().__init__()
        self.message_id = message.id
        self.bubble = Bubble(message)
        self.meta = small(plain_label())
        side = Qt.AlignmentFlag.AlignRight if message.mine else Qt.AlignmentFlag.AlignLeft
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(self.bubble, 0, side)
        column.addWidget(self.meta, 0, side)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        if message.mine:
            row.addStretch(1)
        row.addLayout(column)
        if not message.mine:
            row.addStretch(1)
        self.update_from(message)

    def update_from(self, message: MessageItem) -> None:
        """Refresh what can change after sending (the delivery state) without a new row."""
        meta = message.time
        if message.mine and message.show_state:
            meta = f"{message.time} · {message.state_label}"
        self.meta.setText(meta)
        who = "You" if message.mine else "They"
        state = f" · {message.state_label}" if message.state_label else ""
        self.bubble.setToolTip(f"{who}, {message.time}{state}")
        self.bubble.setAccessibleName(f"{who}: {message.text}")


class MessageList(QScrollArea):
    """The open conversation's messages, newest at the bottom; it follows new messages while
    the user is at the bottom and stays put while they read further up."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Messages")
        self.rows: list[MessageRow] = []
        self.hint = small(plain_label())
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._peer: str | None = None
        self._stick = True
        content = QWidget()
        content.setBackgroundRole(QPalette.ColorRole.Window)
        self._layout = QVBoxLayout(content)
        self._layout.addStretch(1)
        self._layout.addWidget(self.hint)
        self.setWidget(content)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._grew)

    def show_messages(self, peer: str, name: str, messages: tuple[MessageItem, ...]) -> None:
        """Update rows in place and append new ones, so the scroll position survives; start
        over only when the conversation or its history changed."""
        ids = [m.id for m in messages]
        if peer != self._peer or [r.message_id for r in self.rows] != ids[: len(self.rows)]:
            self._peer = peer
            self._stick = True
            for row in self.rows:
                self._layout.removeWidget(row)
                row.hide()
                row.deleteLater()
            self.rows = []
        for message, row in zip(messages, self.rows, strict=False):
            row.update_from(message)
        for message in messages[len(self.rows) :]:
            row = MessageRow(message)
            self._fit(row)
            if message.mine:
                self._stick = True  # what the user just sent is always shown
            self._layout.addWidget(row)
            self.rows.append(row)
        self.hint.setText(f"No messages yet. Say hello to {name}.")
        self.hint.setVisible(not messages)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for row in self.rows:
            self._fit(row)

    def _fit(self, row: MessageRow) -> None:
        widest = max(1, int(self.viewport().width() * BUBBLE_SHARE))
        row.bubble.setMaximumWidth(widest)
        row.bubble.setMinimumWidth(min(widest, row.bubble.natural_width()))

    def _scrolled(self, value: int) -> None:
        self._stick = value >= self.verticalScrollBar().maximum() - self.fontMetrics().height()

    def _grew(self, _minimum: int, maximum: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(maximum)


class Composer(QPlainTextEdit):
    """Enter sends; Shift+Enter starts a new line."""

    submitted = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setTabChangesFocus(True)
        self.setAccessibleName("Message")
        self.setPlaceholderText("Write a message")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.textChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        """Two lines tall when empty, growing with the text up to five (then it scrolls)."""
        lines = min(MAX_COMPOSER_LINES, max(2, round(self.document().size().height())))
        margins = 2 * (self.frameWidth() + round(self.document().documentMargin()))
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + margins)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()  # wrapped lines change with the width

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() not in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            super().keyPressEvent(event)
        elif event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.insertPlainText("\n")
        else:
            self.submitted.emit()
