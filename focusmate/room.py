"""A room: its settings, members and shared timer, stored in one CRDT document.

Document layout (top-level shared types of the room's pycrdt document):

=========  ===========================================================================
meta       ``room_id``, ``owner`` (user id), ``created_at``, ``deleted_at``/``deleted_by``
settings   one key per setting, so concurrent edits of different settings both survive
members    user id -> ``{role, name, sign_pk, box_pk, joined_at, left_at}``
timer      ``state`` -> the whole timer anchor as one value, so concurrent commands never
           mix fields of two different states (last writer wins as a unit)
posts ...  the board; see :mod:`focusmate.board`
=========  ===========================================================================

Values written by other peers are read defensively: an out-of-range setting falls back to its
default and a malformed timer state reads as a fresh timer, so a buggy or hostile peer cannot
crash anyone's app.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any, Protocol

from pycrdt import Doc, Map

from focusmate import timer
from focusmate.errors import FocusMateError, PermissionDeniedError, ValidationError
from focusmate.identity import PublicIdentity

NAME_MIN, NAME_MAX = 3, 50
LIMITS: dict[str, tuple[int, int]] = {
    "focus_min": (1, 60),
    "short_break_min": (1, 30),
    "long_break_min": (1, 60),
    "rounds_before_long": (1, 12),
}
DOC_KIND = "room"


class Role(StrEnum):
    OWNER = "owner"
    MEMBER = "member"


def validate_room_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValidationError(f"A room name must be text, not {type(name).__name__}.")
    name = " ".join(name.split())
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise ValidationError(
            f"A room name must be {NAME_MIN}–{NAME_MAX} characters long (got {len(name)})."
        )
    return name


@dataclass(frozen=True)
class RoomSettings:
    name: str
    focus_min: int = 25
    short_break_min: int = 5
    long_break_min: int = 15
    rounds_before_long: int = 4
    auto_advance: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", validate_room_name(self.name))
        for key, (low, high) in LIMITS.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{key} must be a whole number, not {value!r}.")
            if not low <= value <= high:
                raise ValidationError(f"{key} must be between {low} and {high} (got {value}).")
        if not isinstance(self.auto_advance, bool):
            raise ValidationError("auto_advance must be true or false.")

    def timer_config(self) -> timer.TimerConfig:
        return timer.TimerConfig(
            focus_s=self.focus_min * 60.0,
            short_break_s=self.short_break_min * 60.0,
            long_break_s=self.long_break_min * 60.0,
            rounds_before_long=self.rounds_before_long,
            auto_advance=self.auto_advance,
        )

    def with_changes(self, **changes: Any) -> RoomSettings:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValidationError(f"Unknown room setting(s): {', '.join(sorted(unknown))}.")
        return replace(self, **changes)

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> RoomSettings:
        """Lenient reading of what peers wrote: each bad field falls back to its default."""
        name = raw.get("name")
        try:
            # Only text is a name: str() of a missing or numeric value would show "None" or "3.0".
            base = cls(name=name if isinstance(name, str) else "")
        except ValidationError:
            base = cls(name="Unnamed room")
        for key in (*LIMITS, "auto_advance"):
            value = raw.get(key)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            try:
                base = replace(base, **{key: value})  # type: ignore[arg-type]
            except (ValidationError, TypeError):
                continue
        return base


@dataclass(frozen=True)
class Member:
    user_id: str
    role: Role
    name: str
    joined_at: float
    left_at: float | None
    sign_pk: str
    box_pk: str

    @property
    def active(self) -> bool:
        return self.left_at is None


class RoomDocument(Protocol):
    """What a room needs of its document: a :class:`~focusmate.document.CrdtDocument` in the app,
    a scratch document on a relay that hosts the room's timer."""

    @property
    def doc_id(self) -> str: ...

    @property
    def doc(self) -> Doc[Any]: ...

    def map(self, name: str) -> Map[Any]: ...

    def edit(self, *, now: float) -> AbstractContextManager[Doc[Any]]: ...


class Room:
    """Typed operations over one room document. ``me`` is the local user (on a relay: the member
    whose command is being applied)."""

    def __init__(self, document: RoomDocument, *, me: PublicIdentity) -> None:
        self.document = document
        self.me = me

    @property
    def room_id(self) -> str:
        return self.document.doc_id

    def _map(self, name: str) -> Map[Any]:
        return self.document.map(name)

    # -- creation and membership ----------------------------------------------------------------

    def initialise(self, settings: RoomSettings, *, my_name: str, now: float) -> None:
        """Write a new room's first state, with the local user as its owner."""
        with self.document.edit(now=now):
            meta = self._map("meta")
            meta["room_id"] = self.room_id
            meta["owner"] = self.me.user_id
            meta["created_at"] = now
            self._write_settings(asdict(settings))
            self._map("timer")["state"] = timer.initial_state(now=now).to_dict()
            self._write_member(Role.OWNER, my_name, now=now)

    def join(self, *, my_name: str, now: float) -> None:
        role = Role.OWNER if self.owner_id == self.me.user_id else Role.MEMBER
        with self.document.edit(now=now):
            self._write_member(role, my_name, now=now)

    def leave(self, *, now: float) -> None:
        member = self.members().get(self.me.user_id)
        if member is None or not member.active:
            return
        with self.document.edit(now=now):
            self._map("members")[self.me.user_id] = {
                **_member_dict(member),
                "left_at": now,
            }

    def delete(self, *, now: float) -> None:
        self._require_owner("delete the room")
        with self.document.edit(now=now):
            meta = self._map("meta")
            meta["deleted_at"] = now
            meta["deleted_by"] = self.me.user_id

    def _write_member(self, role: Role, name: str, *, now: float) -> None:
        self._map("members")[self.me.user_id] = {
            "role": role.value,
            "name": name,
            "joined_at": now,
            "left_at": None,
            "sign_pk": self.me.to_dict()["sign_public"],
            "box_pk": self.me.to_dict()["box_public"],
        }

    # -- reading --------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        """False until the first update with the room's state has arrived (a fresh join)."""
        return "owner" in self._map("meta")

    @property
    def owner_id(self) -> str | None:
        owner = self._map("meta").get("owner")
        return owner if isinstance(owner, str) else None

    @property
    def deleted(self) -> bool:
        return self._map("meta").get("deleted_at") is not None

    @property
    def created_at(self) -> float | None:
        value = self._map("meta").get("created_at")
        return float(value) if isinstance(value, int | float) else None

    @property
    def settings(self) -> RoomSettings:
        return RoomSettings.read(self._map("settings").to_py() or {})

    @property
    def name(self) -> str:
        return self.settings.name

    def members(self) -> dict[str, Member]:
        result: dict[str, Member] = {}
        for user_id, raw in (self._map("members").to_py() or {}).items():
            member = _read_member(str(user_id), raw, owner=self.owner_id)
            if member is not None:
                result[member.user_id] = member
        return result

    def member_name(self, user_id: str) -> str | None:
        member = self.members().get(user_id)
        return member.name if member else None

    # -- settings -------------------------------------------------------------------------------

    def update_settings(self, *, now: float, **changes: Any) -> RoomSettings:
        self._require_owner("change the room's settings")
        if self.deleted:
            raise FocusMateError("This room was deleted by its owner.")
        new = self.settings.with_changes(**changes)
        with self.document.edit(now=now):
            self._write_settings({k: v for k, v in asdict(new).items() if k in changes})
        return new

    def _write_settings(self, values: Mapping[str, Any]) -> None:
        settings = self._map("settings")
        for key, value in values.items():
            settings[key] = value

    def _require_owner(self, action: str) -> None:
        if self.owner_id != self.me.user_id:
            raise PermissionDeniedError(f"Only the room's owner can {action}.")

    # -- timer ----------------------------------------------------------------------------------

    @property
    def timer_state(self) -> timer.TimerState:
        raw = self._map("timer").get("state")
        if isinstance(raw, Mapping):
            try:
                return timer.TimerState.from_dict(raw)
            except ValidationError:
                pass
        return timer.initial_state()

    def timer_view(self, *, now: float) -> timer.TimerView:
        return timer.view(self.timer_state, self.settings.timer_config(), now=now)

    def timer_command(self, command: timer.Command, *, now: float) -> timer.TimerState:
        """Apply a command locally (the LAN/offline path; a relay hosts it when reachable)."""
        self.require_active_member()
        new = timer.apply(self.timer_state, command, self.settings.timer_config(), now=now)
        self.set_timer_state(new, now=now)
        return new

    def set_timer_state(self, state: timer.TimerState, *, now: float) -> None:
        with self.document.edit(now=now):
            self._map("timer")["state"] = state.to_dict()

    def require_active_member(self) -> None:
        if not self.exists:
            raise FocusMateError(
                "This room has not arrived yet: its timer and board sync in once a member or a "
                "relay is reachable."
            )
        if self.deleted:
            raise FocusMateError("This room was deleted by its owner.")
        member = self.members().get(self.me.user_id)
        if member is None or not member.active:
            raise PermissionDeniedError("You are not a member of this room.")


def _member_dict(member: Member) -> dict[str, Any]:
    return {
        "role": member.role.value,
        "name": member.name,
        "joined_at": member.joined_at,
        "left_at": member.left_at,
        "sign_pk": member.sign_pk,
        "box_pk": member.box_pk,
    }


def _read_member(user_id: str, raw: object, *, owner: str | None) -> Member | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        left_at = raw.get("left_at")
        return Member(
            user_id=user_id,
            # The owner is whoever meta names; a member cannot promote itself by writing a role.
            role=Role.OWNER if user_id == owner else Role.MEMBER,
            name=str(raw.get("name") or "?")[:100],
            joined_at=float(raw["joined_at"]),
            left_at=float(left_at) if left_at is not None else None,
            sign_pk=str(raw.get("sign_pk") or ""),
            box_pk=str(raw.get("box_pk") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None
