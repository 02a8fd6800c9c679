"""The app's look in one place: light and dark palettes, phase and status colours, card style.

Widgets use palette roles for everything except the few colours that carry meaning (the phase
of a timer, whether a relay is connected); those come from here, in a light and a dark variant
that both stay readable as text on the matching window colour.

:func:`apply_theme` sets the Fusion style with an explicit palette, because the native styles
ignore a requested colour scheme on some platforms and the offscreen platform has none at all. It
also tells Qt the scheme (``QStyleHints.setColorScheme``) so native title bars and dialogs agree,
and, when the user follows the system, re-applies itself whenever the desktop scheme changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from focusmate.settings import Theme
from focusmate.timer import Phase

__all__ = [
    "apply_theme",
    "error_color",
    "is_dark",
    "palette_is_dark",
    "phase_color",
    "status_color",
    "stylesheet",
]

_THEME_PROPERTY = "focusmate_theme"  # the chosen Theme's value, kept on the application
_FOLLOWING_PROPERTY = "focusmate_follows_system"  # colorSchemeChanged is connected once

# (light, dark): the light variants are dark enough for text on a light window (contrast >= 4.5),
# the dark variants light enough for text on a dark one.
_PHASE_HEX: Final[Mapping[Phase, tuple[str, str]]] = {
    Phase.FOCUS: ("#C0392B", "#FF8A73"),
    Phase.SHORT_BREAK: ("#247A4D", "#6FD39A"),
    Phase.LONG_BREAK: ("#2F55B5", "#93AEFF"),
}
_STATUS_HEX: Final[Mapping[bool, tuple[str, str]]] = {
    True: ("#247A4D", "#6FD39A"),  # connected
    False: ("#A86B00", "#F2B84B"),  # connecting
}

_ERROR_HEX: Final = ("#B3261E", "#FF8A80")  # inline validation messages (light, dark)

_STYLESHEET: Final = """
QFrame[card="true"] {
    background: palette(base);
    border: 1px solid palette(mid);
    border-radius: 10px;
}
QLabel[hint="true"] { color: palette(placeholder-text); }
QLabel[error="true"] { color: %(error)s; }
"""


def phase_color(phase: Phase, *, dark: bool) -> QColor:
    """The colour that stands for ``phase``, readable on a ``dark`` or light window."""
    light_hex, dark_hex = _PHASE_HEX[phase]
    return QColor(dark_hex if dark else light_hex)


def status_color(connected: bool, *, dark: bool) -> QColor:
    """A link's status dot: green when connected, amber while connecting."""
    light_hex, dark_hex = _STATUS_HEX[connected]
    return QColor(dark_hex if dark else light_hex)


def error_color(*, dark: bool) -> QColor:
    """The colour of an inline message that says what to fix."""
    return QColor(_ERROR_HEX[1] if dark else _ERROR_HEX[0])


def stylesheet(*, dark: bool) -> str:
    """What :func:`apply_theme` installs. Give a QFrame ``setProperty("card", True)`` for a
    rounded card, a QLabel ``hint`` for quiet explanatory text, ``error`` for an inline message
    saying what to fix."""
    return _STYLESHEET % {"error": error_color(dark=dark).name()}


def is_dark(app: QGuiApplication | None = None) -> bool:
    """Whether the application (default: the running one) currently draws light on dark."""
    app = app or _running_app()
    if app is None:
        return False
    return palette_is_dark(app.palette())


def palette_is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` draws light on dark (a widget's own palette, in a paint event)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Show ``app`` light, dark, or as the desktop prefers, now and (for SYSTEM) from now on."""
    app.setProperty(_THEME_PROPERTY, theme.value)
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    hints = app.styleHints()
    hints.setColorScheme(
        {
            Theme.LIGHT: Qt.ColorScheme.Light,
            Theme.DARK: Qt.ColorScheme.Dark,
            Theme.SYSTEM: Qt.ColorScheme.Unknown,
        }[theme]
    )
    if theme is Theme.SYSTEM and not app.property(_FOLLOWING_PROPERTY):
        app.setProperty(_FOLLOWING_PROPERTY, True)
        hints.colorSchemeChanged.connect(lambda _scheme: _follow_system(app))
    _set_look(app, theme)


def _follow_system(app: QApplication) -> None:
    if app.property(_THEME_PROPERTY) == Theme.SYSTEM.value:
        _set_look(app, Theme.SYSTEM)


def _set_look(app: QApplication, theme: Theme) -> None:
    dark = theme is Theme.DARK or (
        theme is Theme.SYSTEM and app.styleHints().colorScheme() == Qt.ColorScheme.Dark
    )
    app.setPalette(_dark_palette() if dark else _light_palette())
    app.setStyleSheet(stylesheet(dark=dark))


def _palette(colors: Mapping[QPalette.ColorRole, str], disabled: str) -> QPalette:
    palette = QPalette()
    for role, hex_color in colors.items():
        palette.setColor(role, QColor(hex_color))
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled))
    return palette


def _light_palette() -> QPalette:
    role = QPalette.ColorRole
    return _palette(
        {
            role.Window: "#F3F3F1",
            role.WindowText: "#1F2328",
            role.Base: "#FFFFFF",
            role.AlternateBase: "#F0F0EE",
            role.ToolTipBase: "#FFFFFF",
            role.ToolTipText: "#1F2328",
            role.PlaceholderText: "#6B7078",
            role.Text: "#1F2328",
            role.Button: "#ECECEA",
            role.ButtonText: "#1F2328",
            role.BrightText: "#B3261E",
            role.Light: "#FFFFFF",
            role.Midlight: "#E4E4E2",
            role.Mid: "#C9CACC",
            role.Dark: "#9A9B9E",
            role.Shadow: "#5A5B5E",
            role.Highlight: "#2F6FD0",
            role.HighlightedText: "#FFFFFF",
            role.Link: "#2557A8",
            role.LinkVisited: "#6A3FA0",
            role.Accent: "#2F6FD0",
        },
        disabled="#9A9B9E",
    )


def _dark_palette() -> QPalette:
    role = QPalette.ColorRole
    return _palette(
        {
            role.Window: "#1F2124",
            role.WindowText: "#E6E6E3",
            role.Base: "#17181B",
            role.AlternateBase: "#25272B",
            role.ToolTipBase: "#2B2D31",
            role.ToolTipText: "#E6E6E3",
            role.PlaceholderText: "#9096A0",
            role.Text: "#E6E6E3",
            role.Button: "#2B2D31",
            role.ButtonText: "#E6E6E3",
            role.BrightText: "#FF8A80",
            role.Light: "#3A3C41",
            role.Midlight: "#313337",
            role.Mid: "#44474D",
            role.Dark: "#111214",
            role.Shadow: "#000000",
            role.Highlight: "#4F8BEA",
            role.HighlightedText: "#FFFFFF",
            role.Link: "#8AB4F8",
            role.LinkVisited: "#C58AF9",
            role.Accent: "#4F8BEA",
        },
        disabled="#6E7178",
    )


def _running_app() -> QGuiApplication | None:
    app = QGuiApplication.instance()
    return app if isinstance(app, QGuiApplication) else None
