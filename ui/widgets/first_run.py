"""First run: the one question we ask before the main window — what should people call you?
The identity (keys, user id) was already made silently; a name is all a person must choose."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from focusmate.profile import NAME_MAX
from ui.viewmodels.app import AppViewModel


class FirstRunPage(QWidget):
    finished = Signal()

    def __init__(self, vm: AppViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        heading = QLabel("Welcome to FocusMate")
        font = heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        heading.setFont(font)
        intro = QLabel(
            "Focus together: share a timer with your team, on your network or through a relay. "
            "No account, no server — your data stays on this computer."
        )
        intro.setWordWrap(True)
        prompt = QLabel("What should people call you?")
        self.name = QLineEdit(vm.display_name)
        self.name.setAccessibleName("Your display name")
        self.name.setMaxLength(NAME_MAX)
        self.name.selectAll()
        prompt.setBuddy(self.name)
        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)  # may quote what was typed
        self.error.setProperty("error", True)
        self.error.setWordWrap(True)
        self.error.hide()
        self.start = QPushButton("Get started")
        self.start.setDefault(True)
        self.start.setAccessibleName("Get started")
        self.start.clicked.connect(self._finish)
        self.name.returnPressed.connect(self._finish)
        vm.error.connect(self._show_error)
        column = QVBoxLayout()
        column.setSpacing(12)
        for widget in (heading, intro, prompt, self.name, self.error, self.start):
            column.addWidget(widget)
        # About 60 characters wide (it scales with the font), centred by stretches: an
        # alignment flag would size the wrapped introduction by its one-line hint and clip it.
        width = self.fontMetrics().averageCharWidth() * 60
        intro.setMinimumHeight(intro.heightForWidth(width))
        holder = QWidget()
        holder.setLayout(column)
        holder.setFixedWidth(width)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(holder)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

    def _finish(self) -> None:
        self.error.hide()
        if self.vm.finish_first_run(self.name.text()):
            self.finished.emit()

    def _show_error(self, text: str) -> None:
        if self.isVisible():
            self.error.setText(text)
            self.error.show()
