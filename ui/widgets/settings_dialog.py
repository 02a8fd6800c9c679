"""The settings dialog: timer defaults, notifications, network, profile and appearance.

OK and Apply save the Timer, Notifications, Profile and Appearance tabs together, and only when
every field is valid: a refused field shows why beneath it, its tab comes forward, and nothing is
saved, so Cancel always means "as before". The Network tab acts at once (a relay added is
connecting while the dialog is still open, which is how its status dot can turn green), and says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from focusmate.profile import NAME_MAX
from focusmate.settings import Theme
from ui.theme import is_dark, status_color
from ui.viewmodels.settings import CONNECTED, SettingsViewModel
from ui.widgets.avatar import AVATAR_SWATCHES, AvatarPreview

THEME_CHOICES: Final = (
    (Theme.LIGHT, "Light"),
    (Theme.DARK, "Dark"),
    (Theme.SYSTEM, "Follow the system"),
)


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("hint", True)
    return label


def _error() -> QLabel:
    """A hidden line for what went wrong, in the theme's error colour."""
    label = QLabel()
    label.setWordWrap(True)
    label.setProperty("error", True)
    label.hide()
    return label


def _dot(color: QColor, *, ratio: float, size: int = 12) -> QIcon:
    """A filled circle, drawn at the screen's pixel ratio so it stays crisp at 200%."""
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


class SettingsDialog(QDialog):
    """Settings in five tabs over a :class:`SettingsViewModel`."""

    def __init__(self, vm: SettingsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self._tasks: set[asyncio.Future[Any]] = set()
        self.field_messages: dict[str, QLabel] = {}  # what is wrong with a field, in tab order
        self._inputs: dict[str, QWidget] = {}
        self._avatar_color = ""
        self.setWindowTitle("Settings")
        self.setMinimumSize(460, 420)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._timer_tab(), "Timer")
        self.tabs.addTab(self._notifications_tab(), "Notifications")
        self.tabs.addTab(self._network_tab(), "Network")
        self.tabs.addTab(self._profile_tab(), "Profile")
        self.tabs.addTab(self._appearance_tab(), "Appearance")
        self.banner = _error()
        buttons = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(buttons.Ok | buttons.Cancel | buttons.Apply)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(buttons.Apply).clicked.connect(self.apply)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.banner)
        layout.addWidget(self.buttons)

        self._error_sink = self.banner  # where the view-model's messages show
        vm.error.connect(self._show_message)
        vm.relaysChanged.connect(self._show_relays)
        self._load()

    # -- building -------------------------------------------------------------------------------

    def _field(self, key: str, widget: QWidget) -> QWidget:
        """``widget`` with a hidden message line beneath it for what is wrong with ``key``."""
        error = _error()
        self.field_messages[key] = error
        self._inputs[key] = widget
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(widget)
        column.addWidget(error)
        return box

    def _minutes(self, name: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(0, 999)  # the settings say what is allowed, in words, when it is not
        spin.setSuffix(" min")
        spin.setAccessibleName(name)
        return spin

    def _timer_tab(self) -> QWidget:
        self.focus_spin = self._minutes("Focus length in minutes")
        self.short_spin = self._minutes("Short break length in minutes")
        self.long_spin = self._minutes("Long break length in minutes")
        self.rounds_spin = self._minutes("Focus rounds before a long break")
        self.rounds_spin.setSuffix("")
        self.auto_start_check = self._check("Start the next phase by itself")
        tab = QWidget()
        form = QFormLayout(tab)
        form.addRow(_hint("Defaults for the rooms you create; each room keeps its own timer."))
        form.addRow("Focus", self._field("focus_min", self.focus_spin))
        form.addRow("Short break", self._field("short_break_min", self.short_spin))
        form.addRow("Long break", self._field("long_break_min", self.long_spin))
        form.addRow(
            "Rounds before a long break", self._field("rounds_before_long", self.rounds_spin)
        )
        form.addRow(self.auto_start_check)
        return tab

    def _check(self, text: str) -> QCheckBox:
        box = QCheckBox(text)
        box.setAccessibleName(text)
        return box

    def _notifications_tab(self) -> QWidget:
        self.sound_check = self._check("Play sounds")
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setRange(0, 100)
        self.volume_slider.setAccessibleName("Sound volume")
        self.volume_value = QLabel()
        self.volume_slider.valueChanged.connect(lambda v: self.volume_value.setText(f"{v}%"))
        self.sound_check.toggled.connect(self.volume_slider.setEnabled)
        self.system_check = self._check("Show system notifications")
        self.in_app_check = self._check("Show banners inside the app")
        self.dnd_check = self._check("Do not disturb during focus")
        volume = QHBoxLayout()
        volume.addWidget(self.volume_slider, 1)
        volume.addWidget(self.volume_value)
        tab = QWidget()
        form = QFormLayout(tab)
        form.addRow(self.sound_check)
        form.addRow("Volume", volume)
        form.addRow(self.system_check)
        form.addRow(self.in_app_check)
        form.addRow(self.dnd_check)
        form.addRow(_hint("During focus, messages and posts wait until your break."))
        return tab

    def _network_tab(self) -> QWidget:
        self.relay_list = QListWidget()
        self.relay_list.setAccessibleName("Relays")
        self.relay_input = QLineEdit()
        self.relay_input.setPlaceholderText("wss://relay.example.org")
        self.relay_input.setAccessibleName("New relay address")
        self.relay_input.installEventFilter(self)
        self.add_relay_button = QPushButton("Add")
        self.add_relay_button.setAccessibleName("Add relay")
        self.add_relay_button.setAutoDefault(False)
        self.add_relay_button.clicked.connect(self._add_relay)
        self.remove_relay_button = QPushButton("Remove")
        self.remove_relay_button.setAccessibleName("Remove the selected relay")
        self.remove_relay_button.setAutoDefault(False)
        self.remove_relay_button.setEnabled(False)
        self.remove_relay_button.clicked.connect(self._remove_relay)
        self.relay_list.itemSelectionChanged.connect(
            lambda: self.remove_relay_button.setEnabled(bool(self.relay_list.selectedItems()))
        )
        self.relay_error = _error()
        self.lan_check = self._check("Find people on this network (LAN discovery)")
        self.lan_check.clicked.connect(lambda on: self._run(self.vm.set_lan(on)))
        add_row = QHBoxLayout()
        add_row.addWidget(self.relay_input, 1)
        add_row.addWidget(self.add_relay_button)
        add_row.addWidget(self.remove_relay_button)
        tab = QWidget()
        column = QVBoxLayout(tab)
        column.addWidget(
            _hint("Relays carry your rooms to people elsewhere. Changes here apply right away.")
        )
        column.addWidget(self.relay_list, 1)
        column.addLayout(add_row)
        column.addWidget(self.relay_error)
        column.addSpacing(8)
        column.addWidget(self.lan_check)
        column.addWidget(_hint("Rooms sync directly with people on the same network."))
        return tab

    def _profile_tab(self) -> QWidget:
        self.avatar_preview = AvatarPreview()
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(NAME_MAX)
        self.name_edit.setAccessibleName("Display name")
        self.bio_edit = QPlainTextEdit()
        self.bio_edit.setAccessibleName("Bio")
        self.bio_edit.setTabChangesFocus(True)
        self.bio_edit.setMaximumHeight(self.fontMetrics().lineSpacing() * 5)
        self.emoji_edit = QLineEdit()
        self.emoji_edit.setAccessibleName("Avatar emoji")
        self.emoji_edit.setMaximumWidth(self.fontMetrics().horizontalAdvance("M") * 8)
        self.emoji_edit.textChanged.connect(self._preview)
        self.swatches = QButtonGroup(self)
        colour_box = QWidget()
        colours = QHBoxLayout(colour_box)
        colours.setContentsMargins(0, 0, 0, 0)
        for name, hex_color in AVATAR_SWATCHES:
            swatch = QToolButton()
            swatch.setCheckable(True)
            swatch.setIcon(_dot(QColor(hex_color), ratio=self.devicePixelRatioF(), size=20))
            swatch.setIconSize(QSize(20, 20))
            swatch.setAccessibleName(f"{name} avatar colour")
            swatch.setToolTip(name)
            swatch.setProperty("color", hex_color)
            self.swatches.addButton(swatch)
            colours.addWidget(swatch)
        self.swatches.buttonClicked.connect(self._pick_swatch)
        self.custom_color_button = QPushButton("Other…")
        self.custom_color_button.setAccessibleName("Choose another avatar colour")
        self.custom_color_button.setAutoDefault(False)
        self.custom_color_button.clicked.connect(self._pick_custom_color)
        colours.addWidget(self.custom_color_button)
        colours.addStretch(1)
        tab = QWidget()
        row = QHBoxLayout(tab)
        row.addWidget(self.avatar_preview, 0, Qt.AlignmentFlag.AlignTop)
        form = QFormLayout()
        form.addRow("Display name", self._field("display_name", self.name_edit))
        form.addRow("Bio", self._field("bio", self.bio_edit))
        form.addRow("Avatar", self._field("avatar_emoji", self.emoji_edit))
        form.addRow("Colour", self._field("avatar_color", colour_box))
        form.addRow(_hint("People in your rooms see your name, bio and avatar."))
        column = QVBoxLayout()
        column.addLayout(form)
        column.addStretch(1)
        row.addLayout(column, 1)
        return tab

    def _appearance_tab(self) -> QWidget:
        self.theme_group = QButtonGroup(self)
        tab = QWidget()
        column = QVBoxLayout(tab)
        for theme, text in THEME_CHOICES:
            radio = QRadioButton(text)
            radio.setAccessibleName(f"{text} theme")
            radio.setProperty("theme", theme.value)
            self.theme_group.addButton(radio)
            column.addWidget(radio)
        column.addStretch(1)
        return tab

    # -- showing --------------------------------------------------------------------------------

    def _load(self) -> None:
        """Fill every field from what is saved."""
        s = self.vm.settings
        for spin, value in zip(
            (self.focus_spin, self.short_spin, self.long_spin, self.rounds_spin),
            (s.focus_min, s.short_break_min, s.long_break_min, s.rounds_before_long),
            strict=True,
        ):
            spin.setValue(value)
        self.auto_start_check.setChecked(s.auto_start)
        self.sound_check.setChecked(s.sound_enabled)
        self.volume_slider.setEnabled(s.sound_enabled)
        self.volume_slider.setValue(s.sound_volume)
        self.volume_value.setText(f"{s.sound_volume}%")
        self.system_check.setChecked(s.notify_system)
        self.in_app_check.setChecked(s.notify_in_app)
        self.dnd_check.setChecked(s.do_not_disturb)
        for button in self.theme_group.buttons():
            button.setChecked(button.property("theme") == s.theme.value)
        card = self.vm.profile
        self.name_edit.setText(card.display_name)
        self.bio_edit.setPlainText(card.bio)
        self.emoji_edit.setText(card.avatar_emoji)
        self._set_avatar_color(card.avatar_color)
        self._show_relays()  # and the LAN switch

    def _show_relays(self) -> None:
        selected = {item.data(Qt.ItemDataRole.UserRole) for item in self.relay_list.selectedItems()}
        self.relay_list.clear()
        dark = is_dark()
        for url, status in self.vm.relay_status():
            item = QListWidgetItem(f"{url}  ·  {status}")
            item.setIcon(
                _dot(status_color(status == CONNECTED, dark=dark), ratio=self.devicePixelRatioF())
            )
            item.setData(Qt.ItemDataRole.UserRole, url)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{url}, {status}")
            self.relay_list.addItem(item)
            item.setSelected(url in selected)
        self.lan_check.setChecked(self.vm.settings.lan_enabled)

    def _preview(self) -> None:
        self.avatar_preview.show_avatar(self.emoji_edit.text(), self._avatar_color)

    def _set_avatar_color(self, hex_color: str) -> None:
        self._avatar_color = hex_color.upper()
        self.swatches.setExclusive(False)  # so that a colour off the palette checks none
        for swatch in self.swatches.buttons():
            swatch.setChecked(str(swatch.property("color")).upper() == self._avatar_color)
        self.swatches.setExclusive(True)
        self._preview()

    def _pick_swatch(self, swatch: QAbstractButton) -> None:
        self._set_avatar_color(str(swatch.property("color")))

    def _pick_custom_color(self) -> None:
        color = QColorDialog.getColor(QColor(self._avatar_color), self, "Avatar colour")
        if color.isValid():
            self._set_avatar_color(color.name())

    def _show_message(self, message: str) -> None:
        self._error_sink.setText(message)
        self._error_sink.show()

    def _show_problems(self, problems: dict[str, str]) -> None:
        for key, label in self.field_messages.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)

    # -- acting ---------------------------------------------------------------------------------

    def _settings_changes(self) -> dict[str, object]:
        checked = self.theme_group.checkedButton()
        theme = Theme(str(checked.property("theme"))) if checked else self.vm.settings.theme
        return {
            "focus_min": self.focus_spin.value(),
            "short_break_min": self.short_spin.value(),
            "long_break_min": self.long_spin.value(),
            "rounds_before_long": self.rounds_spin.value(),
            "auto_start": self.auto_start_check.isChecked(),
            "sound_enabled": self.sound_check.isChecked(),
            "sound_volume": self.volume_slider.value(),
            "notify_system": self.system_check.isChecked(),
            "notify_in_app": self.in_app_check.isChecked(),
            "do_not_disturb": self.dnd_check.isChecked(),
            "theme": theme,
        }

    def _profile_changes(self) -> dict[str, str]:
        return {
            "display_name": self.name_edit.text(),
            "bio": self.bio_edit.toPlainText(),
            "avatar_emoji": self.emoji_edit.text(),
            "avatar_color": self._avatar_color,
        }

    def apply(self) -> bool:
        """Save every tab but Network if all of it is valid; otherwise show what to fix."""
        settings, profile = self._settings_changes(), self._profile_changes()
        problems = self.vm.check(**settings) | self.vm.check_profile(**profile)
        self._show_problems(problems)
        self.banner.hide()
        unplaced = [message for key, message in problems.items() if key not in self.field_messages]
        if unplaced:
            self._show_message(" ".join(unplaced))
        first = next((key for key in self.field_messages if key in problems), None)
        if first is not None:
            self.tabs.setCurrentIndex(self.tabs.indexOf(self._tab_of(self._inputs[first])))
            self._inputs[first].setFocus()
        if problems:
            return False
        if not (self.vm.save(**settings) and self.vm.save_profile(**profile)):
            return False
        self._load()
        return True

    def _tab_of(self, widget: QWidget) -> QWidget:
        while self.tabs.indexOf(widget) < 0 and (parent := widget.parentWidget()) is not None:
            widget = parent
        return widget

    def accept(self) -> None:
        if self.apply():
            super().accept()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter in the relay field adds the relay; it must not also press OK."""
        if (
            watched is self.relay_input
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self._add_relay()
            return True
        return super().eventFilter(watched, event)

    def _add_relay(self) -> None:
        self._run(self._adding(self.relay_input.text()))

    async def _adding(self, url: str) -> None:
        self.relay_error.hide()
        self._error_sink = self.relay_error
        try:
            if await self.vm.add_relay(url):
                self.relay_input.clear()
        finally:
            self._error_sink = self.banner

    def _remove_relay(self) -> None:
        for item in self.relay_list.selectedItems():
            self._run(self.vm.remove_relay(str(item.data(Qt.ItemDataRole.UserRole))))

    def _run(self, work: Coroutine[Any, Any, object]) -> None:
        """Schedule ``work`` on the loop, keeping it referenced until it finishes."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
