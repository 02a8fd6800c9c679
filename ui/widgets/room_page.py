"""The room screen: the shared countdown and its controls, who is here, and the board beside them.

Only the timer buttons that apply now are shown. Their keyboard shortcuts (Space, Ctrl+Right,
Ctrl+R) belong to the main window's menus, which call the view-model's ``toggle``, ``skip`` and
``reset``; the page only names them in its tooltips, so a shortcut never fires twice.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QKeySequence, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from focusmate.stats import TASK_MAX
from focusmate.timer import Command, Phase
from ui.theme import palette_is_dark, phase_color
from ui.viewmodels.room import Participant, RoomViewModel
from ui.widgets.countdown import CountdownWidget

if TYPE_CHECKING:  # the dialogs are imported when first opened, not with the window
    from ui.widgets.invite_dialog import InviteDialog
    from ui.widgets.room_settings_dialog import RoomSettingsDialog

# (command, label, what it does, shortcut) for each timer button, in the order they are laid out.
_CONTROLS = (
    (Command.START, "Start", "Start the timer for everyone", "Space"),
    (Command.PAUSE, "Pause", "Pause the timer for everyone", "Space"),
    (Command.RESUME, "Resume", "Resume the timer for everyone", "Space"),
    (Command.SKIP, "Skip", "Skip to the next phase", "Ctrl+Right"),
    (Command.RESET, "Reset", "Reset to the first focus round", "Ctrl+R"),
)
_DOT_PHASE = {"focusing": Phase.FOCUS, "break": Phase.SHORT_BREAK}
DOT_SIZE = 12


class RoomPage(QWidget):
    """Everything about one room; ``board`` (the room's board widget) goes on the right."""

    def __init__(
        self, vm: RoomViewModel, board: QWidget | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.vm = vm
        self.invite_dialog: InviteDialog | None = None
        self.settings_dialog: RoomSettingsDialog | None = None
        self.leave_box: QMessageBox | None = None
        self._tasks: set[asyncio.Future[None]] = set()

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_header())
        timer_panel = self._build_timer_panel()
        if board is None:  # a calm column in the middle rather than a stretched one
            timer_panel.setMaximumWidth(720)
            row = QHBoxLayout()
            row.addWidget(timer_panel, 1)
            layout.addLayout(row, 1)
        else:
            splitter = QSplitter(Qt.Orientation.Horizontal)
            splitter.setChildrenCollapsible(False)
            splitter.addWidget(timer_panel)
            splitter.addWidget(board)
            splitter.setStretchFactor(0, 2)
            splitter.setStretchFactor(1, 3)
            splitter.setSizes([2000, 3000])  # proportions: two fifths for the timer column
            layout.addWidget(splitter, 1)

        order: list[QWidget] = [self.countdown, *self.buttons.values(), self.task, self.people]
        order += [self.invite_button, self.settings_button, self.leave_button]
        if board is not None:
            order.append(board)
        for first, second in itertools.pairwise(order):
            QWidget.setTabOrder(first, second)

        vm.timerChanged.connect(self._show_timer)
        vm.changed.connect(self._show_room)
        vm.error.connect(self._show_error)
        self._show_room()
        self._show_timer()

    def _build_header(self) -> QHBoxLayout:
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # the owner names the room
        title_font = QFont(self.title.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.4)
        title_font.setWeight(QFont.Weight.DemiBold)
        self.title.setFont(title_font)
        self.note = QLabel()
        self.note.setProperty("hint", True)
        self.invite_button = self._button("Invite…", "Share this room's link or code")
        self.settings_button = self._button("Room settings…", "Change the room's name and timer")
        self.leave_button = self._button("Leave", "Leave this room")
        self.invite_button.clicked.connect(self.open_invite)
        self.settings_button.clicked.connect(self.open_settings)
        self.leave_button.clicked.connect(self.confirm_leave)
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.note, 1)
        for button in (self.invite_button, self.settings_button, self.leave_button):
            header.addWidget(button)
        return header

    def _build_timer_panel(self) -> QWidget:
        """The countdown, its buttons, your task and the people here, in one column."""
        self.countdown = CountdownWidget()
        self.buttons: dict[Command, QPushButton] = {}
        controls = QHBoxLayout()
        controls.addStretch(1)
        for command, label, what, keys in _CONTROLS:
            shortcut = QKeySequence(keys).toString(QKeySequence.SequenceFormat.NativeText)
            button = self._button(label, f"{what} ({shortcut})")
            button.clicked.connect(lambda _=False, c=command: self._run(self.vm.command(c)))
            self.buttons[command] = button
            controls.addWidget(button)
        controls.addStretch(1)
        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setProperty("error", True)
        self.error.setWordWrap(True)
        self.error.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.error.hide()

        self.task = QLineEdit()
        self.task.setMaxLength(TASK_MAX)
        self.task.setPlaceholderText("What are you working on? Press Enter to share it.")
        self.task.setAccessibleName("Your task")
        self.task.setToolTip("Shown next to your name in this room")
        self.task.returnPressed.connect(self._set_task)
        task_label = QLabel("Your &task")
        task_label.setBuddy(self.task)
        self.people = QListWidget()
        self.people.setAccessibleName("People in this room")
        self.people.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.people.setIconSize(QSize(DOT_SIZE, DOT_SIZE))
        self.people.setSpacing(2)

        panel = QWidget()
        panel.setMinimumWidth(300)
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.countdown, 3)
        column.addLayout(controls)
        column.addWidget(self.error)
        column.addSpacing(8)
        column.addWidget(task_label)
        column.addWidget(self.task)
        column.addWidget(QLabel("In this room"))
        column.addWidget(self.people, 2)
        return panel

    def _button(self, text: str, tooltip: str) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(text.rstrip("…"))
        button.setToolTip(tooltip)
        return button

    # -- showing --------------------------------------------------------------------------------

    def _show_timer(self) -> None:
        snapshot = self.vm.timer
        self.countdown.set_snapshot(snapshot)
        focused = next((b for b in self.buttons.values() if b.hasFocus()), None)
        for command, button in self.buttons.items():
            button.setVisible(command in snapshot.commands)
        if focused is not None and not focused.isVisible() and snapshot.primary is not None:
            self.buttons[snapshot.primary].setFocus()  # keep Tab users on the controls

    def _show_room(self) -> None:
        room = self.vm.room
        self.title.setText(room.name)
        if room.deleted:
            self.note.setText("This room was deleted by its owner.")
        elif not room.arrived:
            self.note.setText("Waiting for the room to sync from another member or a relay…")
        else:
            self.note.setText("")
        self.settings_button.setVisible(room.is_owner and not room.deleted)
        if not self.task.isModified():
            self.task.setText(room.my_task)
        self.people.clear()
        for person in room.participants:
            item = QListWidgetItem(self._dot(person.status), _person_text(person))
            item.setData(Qt.ItemDataRole.AccessibleTextRole, _person_speech(person))
            item.setToolTip(person.status_label)
            self.people.addItem(item)

    def _dot(self, status: str) -> QIcon:
        """A round dot in the phase colour for focusing or on a break, grey otherwise; hollow
        when offline. The status is also written out, so the colour is never the only cue."""
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(round(DOT_SIZE * ratio), round(DOT_SIZE * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        palette = self.palette()
        phase = _DOT_PHASE.get(status)
        dark = palette_is_dark(palette)
        if phase is not None:
            colour = phase_color(phase, dark=dark)
        else:
            colour = QColor(palette.color(QPalette.ColorRole.Dark))
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush if status == "offline" else colour)
        painter.drawEllipse(2, 2, DOT_SIZE - 4, DOT_SIZE - 4)
        painter.end()
        return QIcon(pixmap)

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    # -- acting ---------------------------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        self.error.hide()
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_task(self) -> None:
        self.error.hide()
        self.vm.set_task(self.task.text())
        self.task.setModified(False)

    # Each dialog deletes itself once closed, and the page refers to it only while it is open,
    # so opening one again and again leaves nothing behind (nor connected to the view-model).

    def open_invite(self) -> None:
        if self.invite_dialog is not None:
            self.invite_dialog.raise_()
            return
        invite = self.vm.invite()
        if invite is None:
            return
        from ui.widgets.invite_dialog import InviteDialog  # noqa: PLC0415 - see the imports

        dialog = InviteDialog(
            invite,
            self.vm.room.name,
            self,
            offered=self.vm.offered_on_lan,
            on_offer=self.vm.set_offered_on_lan,
        )
        self.invite_dialog = dialog
        dialog.finished.connect(self._invite_closed)
        _open(dialog)

    def _invite_closed(self) -> None:
        self.invite_dialog = None

    def open_settings(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.raise_()
            return
        from ui.widgets.room_settings_dialog import RoomSettingsDialog  # noqa: PLC0415

        dialog = RoomSettingsDialog(self.vm, self)
        self.settings_dialog = dialog
        dialog.finished.connect(self._settings_closed)
        _open(dialog)

    def _settings_closed(self) -> None:
        self.settings_dialog = None

    def confirm_leave(self) -> None:
        """Ask first; the owner may also delete the room for everyone."""
        if self.leave_box is not None:
            self.leave_box.raise_()
            return
        name = self.vm.room.name
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Leave room")
        box.setTextFormat(Qt.TextFormat.PlainText)  # the room's name is the owner's text
        box.setText(f"Leave “{name}”?")
        info = "You can come back later with its invite link or code."
        leave = box.addButton("Leave", QMessageBox.ButtonRole.AcceptRole)
        delete = None
        if self.vm.is_owner and not self.vm.room.deleted:
            info += " As its owner you can also delete it for everyone; that cannot be undone."
            delete = box.addButton("Delete for everyone", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setInformativeText(info)

        def chosen() -> None:
            clicked = box.clickedButton()
            self.leave_box = None
            if clicked is leave:
                self.vm.leave()
            elif delete is not None and clicked is delete:
                self.vm.delete()

        box.finished.connect(chosen)
        self.leave_box = box
        _open(box)


def _open(dialog: QDialog) -> None:
    """Open ``dialog`` window-modal, to be deleted (with its connections) once it closes."""
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()


def _person_text(person: Participant) -> str:
    name = person.name + (" (you)" if person.is_you else "")
    if person.is_owner:
        name += " · owner"
    doing = person.status_label + (f" — {person.task}" if person.task else "")
    return f"{name}\n{doing}"


def _person_speech(person: Participant) -> str:
    parts = [person.name]
    if person.is_you:
        parts.append("you")
    if person.is_owner:
        parts.append("owner")
    parts.append(person.status_label)
    if person.task:
        parts.append(f"working on {person.task}")
    return ", ".join(parts)
