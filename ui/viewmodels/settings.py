"""The settings screen's state: this device's settings, the user's profile card, live relays.

Every change goes through the core's validation (:meth:`Settings.replace`, :class:`ProfileCard`),
so the screen cannot save what the CLI would refuse. Messages name the field in words a user
knows ("Focus length", not ``focus_min``). Relay and LAN changes are applied to the running
engine at once; they are ``async`` because leaving a relay or the LAN waits for its links to
close.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from PySide6.QtCore import QObject, Signal

from focusmate.errors import FocusMateError, ValidationError
from focusmate.profile import ProfileCard, profile_doc_id
from focusmate.settings import MAX_RELAY_URLS, Settings
from ui.session import Session

CONNECTED: Final = "Connected"
CONNECTING: Final = "Connecting…"

FIELD_LABELS: Final[Mapping[str, str]] = {
    "focus_min": "Focus length",
    "short_break_min": "Short break length",
    "long_break_min": "Long break length",
    "rounds_before_long": "Focus rounds before a long break",
    "sound_volume": "Volume",
    "relay_urls": "Relay address",
    "display_name": "Display name",
    "bio": "Bio",
    "avatar_emoji": "Avatar",
    "avatar_color": "Avatar colour",
}
"""What the screen calls each field, for messages."""

_LIVE_KEYS: Final = frozenset({"relay_urls", "lan_enabled"})
_PROFILE_KEYS: Final = ("display_name", "bio", "avatar_emoji", "avatar_color")


class RelayStatus(NamedTuple):
    """One configured relay and how its link is doing: ``CONNECTED`` or ``CONNECTING``."""

    url: str
    status: str


def humane(key: str, message: str) -> str:
    """A core message with the setting's key replaced by the name the screen shows."""
    if key == "relay_urls" and "same relay twice" in message:
        return "That relay is already in the list."
    label = FIELD_LABELS.get(key)
    if label is None or not message.startswith(key):
        return message
    return label + message[len(key) :].removeprefix(":")


def _edited(card: ProfileCard, changes: Mapping[str, str]) -> ProfileCard:
    """``card`` with text fields changed, validated and normalised as the core would."""
    checked_by_the_card: dict[str, Any] = dict(changes)
    return dataclasses.replace(card, **checked_by_the_card)


class SettingsViewModel(QObject):
    """Reads and saves the settings and the profile card; applies network changes live."""

    changed = Signal()  # the settings or the profile card were saved
    relaysChanged = Signal()  # the relay list or a relay's link status changed
    themeChanged = Signal(object)  # a Theme: the app applies it with ui.theme.apply_theme
    error = Signal(str)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        session.linksChanged.connect(self.relaysChanged)

    # -- reading --------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.session.workspace.settings

    @property
    def profile(self) -> ProfileCard:
        ws = self.session.workspace
        mine = ws.my_profile()
        return mine.card if mine else ProfileCard(ws.user_id, ws.display_name)

    def relay_status(self) -> list[RelayStatus]:
        """The configured relays in order, each with its link's state."""
        state = self.session.link_state
        return [
            RelayStatus(url, CONNECTED if state.get(url) else CONNECTING)
            for url in self.settings.relay_urls
        ]

    # -- settings -------------------------------------------------------------------------------

    def check(self, **changes: object) -> dict[str, str]:
        """Which of ``changes`` the settings would refuse, and why (nothing is saved)."""
        current = self.settings
        problems: dict[str, str] = {}
        for key, value in changes.items():
            try:
                current.replace(**{key: value})
            except ValidationError as err:
                problems[key] = humane(key, str(err))
        return problems

    def save(self, **changes: object) -> bool:
        """Save ``changes`` if every one is valid; otherwise emit ``error`` and save nothing.

        Relays and the LAN take effect on the running engine, so they go through
        :meth:`add_relay`, :meth:`remove_relay` and :meth:`set_lan` instead.
        """
        live = sorted(_LIVE_KEYS & set(changes))
        if live:
            raise ValueError(f"{live[0]} is applied live: use add_relay/remove_relay/set_lan")
        problems = self.check(**changes)
        if problems:  # each setting is checked on its own, so this finds every problem
            self.error.emit(next(iter(problems.values())))
            return False
        current = self.settings
        updated = current.replace(**changes)
        if updated == current:
            return True
        return self._store(current, updated)

    def _store(self, current: Settings, updated: Settings) -> bool:
        try:
            self.session.workspace.save_settings(updated)
        except FocusMateError as err:
            self.error.emit(str(err))
            return False
        self.changed.emit()
        if updated.theme is not current.theme:
            self.themeChanged.emit(updated.theme)
        return True

    # -- network --------------------------------------------------------------------------------

    async def add_relay(self, url: str) -> bool:
        """Sync through one more relay, saved and connected now; False (and ``error``) if the
        address is not one."""
        url = url.strip()
        current = self.settings
        if not url:
            self.error.emit("Enter a relay address, starting with ws:// or wss://.")
            return False
        if url in current.relay_urls:
            self.error.emit("That relay is already in the list.")
            return False
        if len(current.relay_urls) >= MAX_RELAY_URLS:
            self.error.emit(f"You can use at most {MAX_RELAY_URLS} relays; remove one first.")
            return False
        return await self._set_relays(current, (*current.relay_urls, url))

    async def remove_relay(self, url: str) -> bool:
        """Stop syncing through ``url``: saved, and its link closed."""
        current = self.settings
        if url not in current.relay_urls:
            return True
        return await self._set_relays(current, tuple(u for u in current.relay_urls if u != url))

    async def _set_relays(self, current: Settings, urls: tuple[str, ...]) -> bool:
        try:
            updated = current.replace(relay_urls=urls)
        except ValidationError as err:
            self.error.emit(humane("relay_urls", str(err)))
            return False
        if not self._store(current, updated):
            return False
        await self.session.set_relays(updated.relay_urls)
        self.relaysChanged.emit()
        return True

    async def set_lan(self, enabled: bool) -> bool:
        """Find and sync with people on this network, or stop: saved, and applied now."""
        current = self.settings
        if current.lan_enabled != enabled and not self._store(
            current, current.replace(lan_enabled=enabled)
        ):
            return False
        await self.session.set_lan(enabled)
        return True

    # -- profile --------------------------------------------------------------------------------

    def check_profile(self, **changes: str) -> dict[str, str]:
        """Which profile fields would be refused, and why (nothing is saved)."""
        card = self.profile
        problems: dict[str, str] = {}
        for key, value in changes.items():
            if key not in _PROFILE_KEYS:
                raise ValueError(f"not a profile field: {key}")
            try:
                _edited(card, {key: value})
            except ValidationError as err:
                problems[key] = str(err)
        return problems

    def save_profile(self, **changes: str) -> bool:
        """Publish a new signed card with ``changes``; peers pick it up with the next sync."""
        card = self.profile
        problems = self.check_profile(**changes)
        if problems:
            self.error.emit(next(iter(problems.values())))
            return False
        if _edited(card, changes) == card:  # the same card once normalised
            return True
        ws = self.session.workspace
        try:
            ws.profile_document().update(ws.identity, now=ws.now(), **changes)
        except FocusMateError as err:
            self.error.emit(str(err))
            return False
        self.session.note_local_change(profile_doc_id(ws.user_id))
        self.changed.emit()
        return True
