"""The tray icon: remaining time at a glance and the timer's quick controls, where the desktop
has a tray. System notifications go through it; without one the window's banner stands in."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()


class Tray(QSystemTrayIcon):
    def __init__(
        self,
        icon: QIcon,
        window: QWidget,
        actions: Sequence[QAction],
        quit_action: QAction,
    ) -> None:
        super().__init__(icon, window)
        self.window = window
        menu = QMenu(window)
        show = menu.addAction("Show FocusMate")
        show.triggered.connect(self._show_window)
        menu.addSeparator()
        for action in actions:
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(quit_action)
        self.setContextMenu(menu)
        self.setToolTip("FocusMate")
        self.activated.connect(self._activated)

    def set_status(self, title: str) -> None:
        """The window title ("12:34 · Focus · Deep Work — FocusMate") as the tooltip."""
        self.setToolTip(title)

    def notify(self, title: str, body: str) -> None:
        self.showMessage(title, body, QSystemTrayIcon.MessageIcon.Information, 5000)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self._show_window()

    def _show_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()
