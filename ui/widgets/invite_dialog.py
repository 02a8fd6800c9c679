"""Hand out a room: its link and short code, each one click from the clipboard."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.room import InviteText


class InviteDialog(QDialog):
    """Read-only link and code with Copy buttons; a line under them says what was copied."""

    def __init__(
        self,
        invite: InviteText,
        room_name: str,
        parent: QWidget | None = None,
        *,
        offered: bool = False,
        on_offer: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Invite to {room_name}")
        self.link = self._field(invite.link, "Invite link")
        self.code = self._field(invite.code, "Invite code")
        self.code.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_link = self._copy_button("Copy link", self.link, "Link copied to the clipboard.")
        self.copy_code = self._copy_button("Copy code", self.code, "Code copied to the clipboard.")

        grid = QGridLayout()
        for row, (text, field, button) in enumerate(
            (("&Link", self.link, self.copy_link), ("&Code", self.code, self.copy_code))
        ):
            label = QLabel(text)
            label.setBuddy(field)
            grid.addWidget(label, row, 0)
            grid.addWidget(field, row, 1)
            grid.addWidget(button, row, 2)
        grid.setColumnStretch(1, 1)

        note = QLabel(
            "Anyone with this link or code can join the room, so share it only with them."
        )
        note.setWordWrap(True)
        note.setProperty("hint", True)
        self.offer = QCheckBox("Also offer this room to everyone on my network")
        self.offer.setAccessibleName("Offer on my network")
        self.offer.setToolTip(
            "People running FocusMate on this network see the room in Join room and can join it "
            "without the code."
        )
        self.offer.setChecked(offered)
        self.offer.setVisible(on_offer is not None)
        if on_offer is not None:
            self.offer.toggled.connect(on_offer)
        self.status = QLabel()
        self.status.setAccessibleName("Copy status")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(note)
        layout.addWidget(self.offer)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)

    def _field(self, text: str, name: str) -> QLineEdit:
        field = QLineEdit(text)
        field.setReadOnly(True)
        field.setAccessibleName(name)
        field.setCursorPosition(0)
        return field

    def _copy_button(self, text: str, field: QLineEdit, done: str) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(text)
        button.setToolTip(f"{text} to the clipboard")
        button.setAutoDefault(False)

        def copy() -> None:
            QGuiApplication.clipboard().setText(field.text())
            self.status.setText(done)

        button.clicked.connect(copy)
        return button
