"""Create a room, or join one by pasting its link or typing its short code."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.app import AppViewModel


class _RoomDialog(QDialog):
    """One text field, an inline error, OK/Cancel; OK runs ``_accept_text`` and stays open on
    an error so nothing typed is lost."""

    def __init__(
        self, vm: AppViewModel, *, title: str, prompt: str, hint: str, parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.vm = vm
        self.room_id: str | None = None
        self.setWindowTitle(title)
        label = QLabel(prompt)
        self.field = QLineEdit()
        self.field.setAccessibleName(prompt)
        self.field.setPlaceholderText(hint)
        label.setBuddy(self.field)
        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)  # may quote what was typed
        self.error.setProperty("error", True)
        self.error.setWordWrap(True)
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        self.layout_ = QVBoxLayout(self)
        for widget in (label, self.field, self.error):
            self.layout_.addWidget(widget)
        self.layout_.addWidget(self.buttons)
        self.setMinimumWidth(420)

    def _submit(self) -> None:
        errors: list[str] = []
        self.vm.error.connect(errors.append)
        try:
            self.room_id = self._accept_text(self.field.text())
        finally:
            self.vm.error.disconnect(errors.append)
        if self.room_id is None:
            self.error.setText(errors[-1] if errors else "That did not work.")
            self.error.show()
            return
        self.accept()

    def _accept_text(self, text: str) -> str | None:
        raise NotImplementedError


class CreateRoomDialog(_RoomDialog):
    def __init__(self, vm: AppViewModel, parent: QWidget | None = None) -> None:
        super().__init__(
            vm,
            title="Create a room",
            prompt="Room name",
            hint="Deep Work",
            parent=parent,
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        note = QLabel("It uses your default timer lengths; the owner can change them later.")
        note.setWordWrap(True)
        self.layout_.insertWidget(2, note)

    def _accept_text(self, text: str) -> str | None:
        return self.vm.create_room(text)


class JoinRoomDialog(_RoomDialog):
    def __init__(self, vm: AppViewModel, parent: QWidget | None = None) -> None:
        super().__init__(
            vm,
            title="Join a room",
            prompt="Invite link or code",
            hint="7KQ2M9X-4TRVB0C-H8PZWEN or a focusmate link",
            parent=parent,
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Join")
        peers = vm.lan_peers()
        text = (
            "On your network now: " + ", ".join(p.name for p in peers) + ". Ask one of them for "
            "the room's code; it syncs straight from their computer."
            if peers
            else "Ask a member for the room's invite code or link."
        )
        self.peers_note = QLabel(text)
        self.peers_note.setTextFormat(Qt.TextFormat.PlainText)  # peers choose their names
        self.peers_note.setWordWrap(True)
        self.layout_.insertWidget(2, self.peers_note)
        self.offer_buttons: list[QPushButton] = []
        offers = vm.lan_offers()
        if offers:
            self.layout_.insertWidget(3, QLabel("Offered on your network:"))
        for i, offer in enumerate(offers):
            button = QPushButton(f"Join {offer.room_name}  (offered by {offer.offered_by})")
            button.setAccessibleName(f"Join {offer.room_name}")
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, link=offer.link: self._join_offer(link))
            self.layout_.insertWidget(4 + i, button)
            self.offer_buttons.append(button)

    def _join_offer(self, link: str) -> None:
        self.field.setText(link)
        self._submit()

    def _accept_text(self, text: str) -> str | None:
        return self.vm.join_room(text)
