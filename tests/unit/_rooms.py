"""Test helpers: users with their own store, sharing one room by exchanging CRDT updates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from focusmate.board import Board
from focusmate.document import CrdtDocument
from focusmate.identity import Identity
from focusmate.room import Room, RoomSettings
from focusmate.store import Store

ROOM_ID = "0123456789abcdef0123456789abcdef"
T0 = 1_700_000_000.0


@dataclass
class User:
    identity: Identity
    store: Store
    doc: CrdtDocument
    room: Room
    board: Board

    @property
    def user_id(self) -> str:
        return self.identity.user_id


def make_user(
    directory: Path,
    name: str,
    *,
    identity: Identity | None = None,
    room_id: str = ROOM_ID,
    now: float = T0,
) -> User:
    """A user (or another device of ``identity``) with an empty copy of the room."""
    identity = identity or Identity.generate()
    store = Store(directory / f"{name}.db")
    doc = CrdtDocument(store, room_id, kind="room", now=now)
    room = Room(doc, me=identity.public)
    return User(identity, store, doc, room, Board(room, identity))


def sync(*users: User, now: float = T0) -> None:
    """Bring every user up to date with every other (full state, both ways)."""
    for _ in range(2):
        for source in users:
            update = source.doc.encode_update()
            for target in users:
                if target is not source:
                    target.doc.apply_remote(update, origin="peer", now=now)


def send(source: User, target: User, *, now: float = T0) -> None:
    """Deliver to ``target`` only what it is missing from ``source``."""
    delta = source.doc.encode_update(target.doc.state_vector())
    target.doc.apply_remote(delta, origin="peer", now=now)


def room_with(directory: Path, *names: str, settings: RoomSettings | None = None) -> list[User]:
    """The first name creates the room; the others receive it and join; all are in sync."""
    users = [make_user(directory, name) for name in names]
    owner = users[0]
    owner.room.initialise(settings or RoomSettings(name="Deep work"), my_name=names[0], now=T0)
    for user, name in zip(users[1:], names[1:], strict=True):
        send(owner, user)
        user.room.join(my_name=name, now=T0 + 1)
    sync(*users)
    return users
