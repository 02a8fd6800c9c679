"""The user's local settings: one frozen, validated value that never leaves this machine.

Settings are per device (a laptop may want sound, a desktop may not), so they are never synced.
Every way in - the constructor, :meth:`Settings.replace`, :meth:`Settings.from_dict` (the settings
file) and :func:`parse_setting` (``focusmate settings set KEY VALUE``) - ends in the same checks, so
an invalid combination cannot exist. Errors are :class:`~focusmate.errors.ValidationError` naming
the field and what it allows, ready to show to the user.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from focusmate.errors import ValidationError

__all__ = ["MAX_RELAY_URLS", "SETTING_KEYS", "Settings", "Theme", "parse_setting"]


class Theme(StrEnum):
    """The app's colour scheme; ``SYSTEM`` follows the desktop's light/dark preference."""

    LIGHT = "light"
    DARK = "dark"
    SYSTEM = "system"


MAX_RELAY_URLS: Final = 8
"""More relays than this adds traffic and reconnect churn without adding reach."""

# Inclusive ranges of the integer settings. The timer lengths are defaults for new rooms; the room
# rules (focus 1-60, short break 1-30) come from the product brief.
_INT_RANGES: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {
        "focus_min": (1, 60),
        "short_break_min": (1, 30),
        "long_break_min": (1, 60),
        "rounds_before_long": (1, 12),
        "sound_volume": (0, 100),
    }
)
_BOOL_KEYS: Final = frozenset(
    {
        "auto_start",
        "sound_enabled",
        "notify_system",
        "notify_in_app",
        "do_not_disturb",
        "lan_enabled",
    }
)
_BOOL_WORDS: Final[Mapping[str, bool]] = MappingProxyType(
    {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
)
_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_WS_DEFAULT_PORTS: Final[Mapping[str, int]] = MappingProxyType({"ws": 80, "wss": 443})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """This device's preferences; construct, replace or load it and it is valid or it raises."""

    # Defaults for rooms this user creates; a room's own settings win once it exists.
    focus_min: int = 25
    short_break_min: int = 5
    long_break_min: int = 15
    rounds_before_long: int = 4
    auto_start: bool = True  # the next phase starts by itself
    sound_enabled: bool = True
    sound_volume: int = 70
    notify_system: bool = True
    notify_in_app: bool = True
    do_not_disturb: bool = False  # hold non-urgent notices during focus until the next break
    relay_urls: tuple[str, ...] = ()
    lan_enabled: bool = True
    theme: Theme = Theme.SYSTEM

    def __post_init__(self) -> None:
        for name in SETTING_KEYS:
            _check(name, getattr(self, name))

    def to_dict(self) -> dict[str, object]:
        """Plain JSON types (theme as its string, relay URLs as a list) for the settings file."""
        out: dict[str, object] = {name: getattr(self, name) for name in SETTING_KEYS}
        out["theme"] = self.theme.value
        out["relay_urls"] = list(self.relay_urls)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Settings:
        """Load what :meth:`to_dict` wrote; missing keys take defaults, unknown keys are ignored.

        Unknown keys are skipped so a settings file written by a newer version still loads. JSON
        may turn ``25`` into ``25.0``, so integral floats are accepted for integer settings.
        """
        if not isinstance(d, Mapping):
            raise ValidationError(f"settings must be a mapping of keys to values, got {d!r}")
        # Any: the values are untrusted until __post_init__ has checked each one.
        values: dict[str, Any] = {
            name: _coerce(name, d[name]) for name in SETTING_KEYS if name in d
        }
        return cls(**values)

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied and validated; unknown keys raise."""
        unknown = sorted(set(changes) - set(SETTING_KEYS))
        if unknown:
            raise ValidationError(_unknown_keys_message(unknown[0]))
        checked_in_post_init: dict[str, Any] = changes
        return dataclasses.replace(self, **checked_in_post_init)


SETTING_KEYS: Final[tuple[str, ...]] = tuple(f.name for f in dataclasses.fields(Settings))
"""Every setting's name, in declaration order (the order ``settings list`` shows)."""


def parse_setting(key: str, text: str) -> tuple[str, object]:
    """Turn command-line text into ``(key, value)`` ready for :meth:`Settings.replace`.

    Keys are case-insensitive and accept ``-`` for ``_`` (``focus-min``). Booleans take
    true/false, on/off, yes/no; themes take their names; ``relay_urls`` is comma-separated and an
    empty value clears it. The value is validated here, so the CLI reports errors before saving.
    """
    name = key.strip().lower().replace("-", "_")
    if name not in SETTING_KEYS:
        raise ValidationError(_unknown_keys_message(key))
    raw = text.strip()
    if name in _INT_RANGES:
        if not _INT_TEXT.fullmatch(raw):
            raise ValidationError(_int_message(name, raw))
        return name, _check_int(name, int(raw))
    if name in _BOOL_KEYS:
        word = raw.lower()
        if word not in _BOOL_WORDS:
            raise ValidationError(f"{name} must be one of {', '.join(_BOOL_WORDS)}, got {raw!r}")
        return name, _BOOL_WORDS[word]
    if name == "theme":
        return name, _check_theme(raw.lower())
    parts = tuple(part.strip() for part in raw.split(","))
    return name, _check_relay_urls(tuple(part for part in parts if part))


def _unknown_keys_message(key: str) -> str:
    return f"unknown setting {key!r}; valid keys: {', '.join(SETTING_KEYS)}"


def _int_message(name: str, value: object) -> str:
    low, high = _INT_RANGES[name]
    return f"{name} must be a whole number from {low} to {high}, got {value!r}"


def _coerce(name: str, value: object) -> object:
    """Map JSON's shapes onto the field's type; :func:`_check` still has the last word."""
    if name in _INT_RANGES and isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    if name == "theme" and isinstance(value, str):
        return _check_theme(value)
    if name == "relay_urls" and isinstance(value, list):
        return tuple(value)
    return value


def _check(name: str, value: object) -> None:
    if name in _INT_RANGES:
        _check_int(name, value)
    elif name in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false, got {value!r}")
    elif name == "theme":
        if not isinstance(value, Theme):
            raise ValidationError(f"theme must be a Theme ({_theme_names()}), got {value!r}")
    else:
        _check_relay_urls(value)


def _check_int(name: str, value: object) -> int:
    # bool is an int subclass; True as a volume is a bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(_int_message(name, value))
    low, high = _INT_RANGES[name]
    if not low <= value <= high:
        raise ValidationError(_int_message(name, value))
    return value


def _theme_names() -> str:
    return ", ".join(theme.value for theme in Theme)


def _check_theme(text: str) -> Theme:
    try:
        return Theme(text)
    except ValueError:
        raise ValidationError(f"theme must be one of {_theme_names()}, got {text!r}") from None


def _check_relay_urls(value: object) -> tuple[str, ...]:
    if not isinstance(value, tuple):
        raise ValidationError(f"relay_urls must be a tuple of ws:// or wss:// URLs, got {value!r}")
    if len(value) > MAX_RELAY_URLS:
        raise ValidationError(f"relay_urls holds at most {MAX_RELAY_URLS} URLs, got {len(value)}")
    seen: dict[tuple[object, ...], str] = {}
    for url in value:
        identity = _relay_identity(url)
        if identity in seen:
            raise ValidationError(f"relay_urls lists the same relay twice: {seen[identity]!r}")
        seen[identity] = url
    return value


def _relay_identity(url: object) -> tuple[object, ...]:
    """Check one relay URL; return what makes two spellings the same relay.

    ``wss://Relay.example`` and ``wss://relay.example:443/`` reach the same server, so they count
    as duplicates.
    """
    if not isinstance(url, str):
        raise ValidationError(f"relay_urls must hold strings, got {url!r}")
    if " " in url or not url.isprintable():
        raise ValidationError(f"relay_urls: {url!r} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(f"relay_urls: {url!r} is not a valid URL") from None
    if parts.scheme not in _WS_DEFAULT_PORTS:
        raise ValidationError(f"relay_urls: {url!r} must start with ws:// or wss://")
    if not parts.hostname:
        raise ValidationError(f"relay_urls: {url!r} has no host")
    if "#" in url:
        raise ValidationError(f"relay_urls: {url!r} must not have a #fragment")
    port = port if port is not None else _WS_DEFAULT_PORTS[parts.scheme]
    return (parts.scheme, parts.hostname, port, parts.path.rstrip("/"), parts.query)
