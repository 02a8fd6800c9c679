"""The in-app banner: notices shown inside the window where there is no system tray (or by
choice), one at a time, each for a few seconds or until dismissed."""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

SHOW_MS = 6000


class Banner(QFrame):
    def __init__(self, parent: QWidget | None = None, *, show_ms: int = SHOW_MS) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Notification")
        self.title = QLabel()
        self.title.setObjectName("bannerTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # notices quote peers' names and text
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.body = QLabel()
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setAccessibleName("Dismiss notification")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.next)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.body)
        row = QHBoxLayout(self)
        row.addLayout(text, 1)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._queue: deque[tuple[str, str]] = deque(maxlen=20)
        self._timer = QTimer(self, singleShot=True, interval=show_ms)
        self._timer.timeout.connect(self.next)
        self.hide()

    def show_notice(self, title: str, body: str) -> None:
        """Show now, or after the ones already waiting."""
        self._queue.append((title, body))
        if not self.isVisible() or not self._timer.isActive():
            self.next()

    def next(self) -> None:
        if not self._queue:
            self.hide()
            return
        title, body = self._queue.popleft()
        self.title.setText(title)
        self.body.setText(body)
        self.body.setVisible(bool(body))
        self.setAccessibleDescription(f"{title}. {body}")
        self.show()
        self._timer.start()
