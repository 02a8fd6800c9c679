"""Avatars: an emoji on a circle of colour, drawn the same wherever someone's avatar shows.

It lives apart from the settings dialog, where people choose theirs, so that any view can show an
avatar with the same widget; the palette offered when choosing is part of what an avatar is.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget

# The named colours offered for an avatar; any other valid colour may still be chosen.
AVATAR_SWATCHES: Final = (
    ("Tomato", "#E4572E"),
    ("Amber", "#F3A712"),
    ("Leaf", "#4CAF50"),
    ("Teal", "#17A2A2"),
    ("Ocean", "#2F6FD0"),
    ("Plum", "#8E5BB5"),
)


class AvatarPreview(QWidget):
    """The avatar as others will see it: the emoji on a circle of the chosen colour."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.emoji = ""
        self.color = QColor()
        self.setMinimumSize(64, 64)
        self.setAccessibleName("Avatar preview")

    def show_avatar(self, emoji: str, color: str) -> None:
        self.emoji = emoji.strip()
        self.color = QColor(color) if QColor.isValidColorName(color) else QColor()
        self.setAccessibleDescription(f"{self.emoji} on {color}")
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(72, 72)

    def paintEvent(self, event: QPaintEvent) -> None:
        side = min(self.width(), self.height())
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.translate((self.width() - side) / 2, (self.height() - side) / 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.color if self.color.isValid() else self.palette().mid().color())
        painter.drawEllipse(0, 0, side, side)
        font = QFont(self.font())
        font.setPixelSize(max(8, side // 2))
        painter.setFont(font)
        painter.setPen(Qt.GlobalColor.white)  # emoji draw in their own colours; this is a fallback
        painter.drawText(0, 0, side, side, Qt.AlignmentFlag.AlignCenter, self.emoji)
        painter.end()
