"""The owner's room settings: name, phase lengths, rounds, auto-advance.

The number fields accept more than the rules allow on purpose: a value out of range is refused
with a sentence saying what is allowed, instead of silently snapping to the nearest limit, and
the dialog stays open with everything typed still there.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from focusmate.room import LIMITS, NAME_MAX
from ui.viewmodels.room import RoomViewModel


class RoomSettingsDialog(QDialog):
    """Edits ``vm.settings``; OK saves through ``vm.update_settings`` or shows why not."""

    def __init__(self, vm: RoomViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Room settings")
        current = vm.settings
        self.name = QLineEdit(current.name)
        self.name.setMaxLength(NAME_MAX + 20)  # room to type, then be told the limit
        self.name.setAccessibleName("Room name")
        self.focus = self._minutes("focus_min", current.focus_min, "Focus length")
        self.short_break = self._minutes(
            "short_break_min", current.short_break_min, "Short break length"
        )
        self.long_break = self._minutes(
            "long_break_min", current.long_break_min, "Long break length"
        )
        self.rounds = self._number("rounds_before_long", current.rounds_before_long, "Rounds")
        self.auto_advance = QCheckBox("Start the next phase automatically")
        self.auto_advance.setChecked(current.auto_advance)
        self.auto_advance.setAccessibleName("Start the next phase automatically")

        form = QFormLayout()
        form.addRow("&Name", self.name)
        form.addRow("&Focus", self.focus)
        form.addRow("&Short break", self.short_break)
        form.addRow("&Long break", self.long_break)
        form.addRow("&Rounds before a long break", self.rounds)
        form.addRow("", self.auto_advance)

        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)  # may quote what was typed
        self.error.setProperty("error", True)
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Problem with the settings")
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(380)

    def _number(self, key: str, value: int, name: str) -> QSpinBox:
        low, high = LIMITS[key]
        box = QSpinBox()
        box.setRange(0, 999)
        box.setValue(value)
        box.setAccessibleName(name)
        box.setToolTip(f"{low}–{high}")
        return box

    def _minutes(self, key: str, value: int, name: str) -> QSpinBox:
        box = self._number(key, value, name)
        box.setSuffix(" min")
        box.setToolTip(f"{box.toolTip()} minutes")
        return box

    def _submit(self) -> None:
        problem = self.vm.update_settings(
            name=self.name.text(),
            focus_min=self.focus.value(),
            short_break_min=self.short_break.value(),
            long_break_min=self.long_break.value(),
            rounds_before_long=self.rounds.value(),
            auto_advance=self.auto_advance.isChecked(),
        )
        if problem is not None:
            self.error.setText(problem)
            self.error.show()
            return
        self.accept()
