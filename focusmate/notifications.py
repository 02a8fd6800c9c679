"""Which channels a notice goes to, decided from settings and the app's state - no I/O here.

The app turns each event into a :class:`Notice`, asks :func:`decide` for a :class:`Decision`, and
its tray, banner and audio adapters carry it out. Notices held during focus wait in
:class:`HeldNotices` until the next break.

Rules of :func:`decide`, applied top to bottom:

===================  ==========================================================================
rule                 when it applies
===================  ==========================================================================
hold                 ``focusing`` and ``do_not_disturb`` and the notice is not urgent:
                     ``held=True`` and no channels; every later rule is skipped
SOUND                phase changes only, and ``sound_enabled`` and ``sound_volume > 0``
SYSTEM               ``notify_system`` and ``system_available`` and not ``window_active``,
                     and the notice is not a like
IN_APP               ``notify_in_app``; or as the fallback when SYSTEM was wanted
                     (``notify_system``, window not active, not a like) but
                     ``system_available`` is false (no tray, e.g. offscreen)
===================  ==========================================================================

Urgent notices are phase changes and achievements: they are what a focus session is about, so
do-not-disturb never holds them. Likes never make a sound or a system notification: they are
frequent and nobody needs to look up for one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from focusmate.settings import Settings

__all__ = [
    "COLLAPSE_ABOVE",
    "URGENT_KINDS",
    "Channel",
    "Decision",
    "EventKind",
    "HeldNotices",
    "Notice",
    "decide",
]


class EventKind(StrEnum):
    """What happened; the string values are stable names for logs and stored notices."""

    PHASE_CHANGED = "phase_changed"
    DM_RECEIVED = "dm_received"
    POST_RECEIVED = "post_received"
    COMMENT_RECEIVED = "comment_received"
    LIKE_RECEIVED = "like_received"
    ACHIEVEMENT_UNLOCKED = "achievement_unlocked"
    PEER_JOINED = "peer_joined"


class Channel(StrEnum):
    """Where a notice can surface on a desktop."""

    SYSTEM = "system"  # an OS notification through the tray
    IN_APP = "in_app"  # a banner inside the window
    SOUND = "sound"


URGENT_KINDS: Final = frozenset({EventKind.PHASE_CHANGED, EventKind.ACHIEVEMENT_UNLOCKED})

COLLAPSE_ABOVE: Final = 3
"""More held notices than this of one kind in one room are released as a single summary."""

# How a summary names a group: "{n} new posts" (+ " in <room>").
_SUMMARY_TITLES: Final[Mapping[EventKind, str]] = MappingProxyType(
    {
        EventKind.PHASE_CHANGED: "{n} phase changes",
        EventKind.DM_RECEIVED: "{n} new direct messages",
        EventKind.POST_RECEIVED: "{n} new posts",
        EventKind.COMMENT_RECEIVED: "{n} new comments",
        EventKind.LIKE_RECEIVED: "{n} new likes",
        EventKind.ACHIEVEMENT_UNLOCKED: "{n} achievements unlocked",
        EventKind.PEER_JOINED: "{n} people joined",
    }
)


@dataclass(frozen=True, kw_only=True)
class Notice:
    """One thing worth telling the user; ``at`` is when it happened (epoch seconds)."""

    kind: EventKind
    title: str
    body: str
    at: float
    room_id: str | None = None

    @property
    def urgent(self) -> bool:
        """Urgent notices get through do-not-disturb: they are the timer and the user's progress."""
        return self.kind in URGENT_KINDS


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The channels to use now; ``held`` means keep the notice until the next break instead."""

    channels: frozenset[Channel]
    held: bool = False


_HOLD: Final = Decision(channels=frozenset(), held=True)


def decide(
    notice: Notice,
    settings: Settings,
    *,
    focusing: bool,
    window_active: bool,
    system_available: bool,
) -> Decision:
    """Apply the rules in this module's header to one notice."""
    if focusing and settings.do_not_disturb and not notice.urgent:
        return _HOLD
    channels: set[Channel] = set()
    if (
        notice.kind is EventKind.PHASE_CHANGED
        and settings.sound_enabled
        and settings.sound_volume > 0
    ):
        channels.add(Channel.SOUND)
    wants_system = (
        settings.notify_system and not window_active and notice.kind is not EventKind.LIKE_RECEIVED
    )
    if wants_system and system_available:
        channels.add(Channel.SYSTEM)
    if settings.notify_in_app or (wants_system and not system_available):
        channels.add(Channel.IN_APP)
    return Decision(channels=frozenset(channels), held=False)


class HeldNotices:
    """Notices kept back during focus, released at the break without flooding the user.

    Pure: it stores what it is given and never reads a clock.
    """

    def __init__(self) -> None:
        self._notices: list[Notice] = []

    def __len__(self) -> int:
        return len(self._notices)

    def hold(self, notice: Notice) -> None:
        """Keep ``notice`` until :meth:`release`."""
        self._notices.append(notice)

    def release(self, *, room_names: Mapping[str, str] | None = None) -> list[Notice]:
        """Empty the container and return its notices in arrival order.

        When more than :data:`COLLAPSE_ABOVE` notices share a kind and room, they become one
        summary ("5 new posts in Deep Work") that takes the place of the newest of them, so the
        list stays in time order. ``room_names`` maps room ids to display names; a room without
        one is shown by its id.
        """
        notices, self._notices = self._notices, []
        # Index positions, not identity: the same Notice object may be held twice.
        groups: dict[tuple[EventKind, str | None], list[int]] = {}
        for index, notice in enumerate(notices):
            groups.setdefault((notice.kind, notice.room_id), []).append(index)
        names = room_names or {}
        released: list[Notice] = []
        for index, notice in enumerate(notices):
            group = groups[notice.kind, notice.room_id]
            if len(group) <= COLLAPSE_ABOVE:
                released.append(notice)
            elif index == group[-1]:
                released.append(_summary([notices[i] for i in group], names))
        return released


def _summary(group: list[Notice], room_names: Mapping[str, str]) -> Notice:
    latest = group[-1]
    title = _SUMMARY_TITLES[latest.kind].format(n=len(group))
    if latest.room_id is not None:
        title += f" in {room_names.get(latest.room_id, latest.room_id)}"
    return replace(latest, title=title, body=f"Latest: {latest.title}")
