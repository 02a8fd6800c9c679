"""A profile opened for use: the composition of store, identity, settings and documents.

The CLI, the daemon and the desktop app each open one ``Workspace`` over a profile directory and
pass it down; nothing here is a module-level singleton. Two processes may open the same profile at
once: the store serialises their writes and each sees the other's after ``refresh()``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from contextlib import suppress
from pathlib import Path

import platformdirs

from focusmate import keyfile
from focusmate.board import Board
from focusmate.clock import Clock
from focusmate.document import CrdtDocument
from focusmate.errors import NotFoundError, StoreError, ValidationError
from focusmate.focus_log import DOC_KIND as STATS_KIND
from focusmate.focus_log import StatsDocument, Watch, reconcile, stats_doc_id
from focusmate.identity import PublicIdentity, parse_user_id
from focusmate.inbox import Inbox
from focusmate.invite import Invite, new_room_secret, parse_invite, room_id_for
from focusmate.profile import DOC_KIND as PROFILE_KIND
from focusmate.profile import ProfileCard, ProfileDocument, VerifiedProfile, profile_doc_id
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.room import Room, RoomSettings
from focusmate.settings import Settings
from focusmate.stats import validate_task
from focusmate.store import Store
from focusmate.timebase import read_offset
from focusmate.timer import TimerState
from focusmate.verdicts import Verdicts, verdict_key

DB_NAME = "focusmate.db"
KEY_NAME = "identity.key"
PROFILE_ENV = "FOCUSMATE_PROFILE"
ONBOARDED_KEY = "app:onboarded"


def default_profile_dir() -> Path:
    """Where a user's data lives unless ``--profile`` or ``$FOCUSMATE_PROFILE`` says otherwise."""
    env = os.environ.get(PROFILE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("FocusMate", appauthor=False))


def _default_display_name() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = ""
    return login.capitalize() if login.strip() else "FocusMate user"


class Workspace:
    """Everything one profile holds, opened for the local user."""

    def __init__(self, profile_dir: Path, *, clock: Clock, passphrase: str | None = None) -> None:
        self.profile_dir = profile_dir
        self.clock = clock
        if profile_dir.exists() and not profile_dir.is_dir():
            raise ValidationError(f"The profile path {profile_dir} is a file, not a directory.")
        try:
            profile_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:  # a read-only filesystem, a parent that is a file, no permission
            raise StoreError(f"Cannot use {profile_dir}: {err.strerror or err}.") from err
        self.store = Store(profile_dir / DB_NAME)
        try:
            self.identity, created = keyfile.load_or_create(
                profile_dir / KEY_NAME, passphrase=passphrase
            )
            self._docs: dict[str, CrdtDocument] = {}
            self._boards: dict[str, Board] = {}  # one per room document
            # Signature verdicts, shared by every board read and kept in the profile.
            self._verdicts = Verdicts(verdict_key(self.identity.private_bytes()[0]), self.store)
            if created or self.my_profile() is None:
                self.profile_document().publish(
                    self.identity,
                    ProfileCard(
                        self.identity.user_id, _default_display_name(), updated_at=self.now()
                    ),
                )
        except BaseException:
            self.store.close()
            raise

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> float:
        return self.clock.now()

    def room_now(self, room_id: str) -> float:
        """Now on the room's shared timebase, as a running engine on this profile measured it
        (:mod:`focusmate.timebase`); our own clock when none runs."""
        now = self.now()
        return now + read_offset(self.profile_dir, room_id, now=now)

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    # -- documents ------------------------------------------------------------------------------

    def document(self, doc_id: str, *, kind: str) -> CrdtDocument:
        doc = self._docs.get(doc_id)
        if doc is None:
            doc = CrdtDocument(self.store, doc_id, kind=kind, now=self.now())
            self._docs[doc_id] = doc
        return doc

    def refresh(self) -> list[str]:
        """Pick up other processes' commits; returns the ids of documents that changed."""
        return [doc_id for doc_id, doc in self._docs.items() if doc.refresh()]

    # -- settings and profile -------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        raw = self.store.get_setting("settings")
        return Settings.from_dict(raw) if isinstance(raw, dict) else Settings()

    def save_settings(self, settings: Settings) -> None:
        self.store.put_setting("settings", settings.to_dict())

    def profile_document(self, user_id: str | None = None) -> ProfileDocument:
        doc_id = profile_doc_id(user_id or self.user_id)
        return ProfileDocument(self.document(doc_id, kind=PROFILE_KIND))

    def my_profile(self) -> VerifiedProfile | None:
        return self.profile_document().read()

    @property
    def onboarded(self) -> bool:
        """Has the user been through the app's first run (picked a name)?"""
        return bool(self.store.get_setting(ONBOARDED_KEY))

    def mark_onboarded(self) -> None:
        self.store.put_setting(ONBOARDED_KEY, True)

    @property
    def display_name(self) -> str:
        profile = self.my_profile()
        return profile.card.display_name if profile else _default_display_name()

    # -- direct messages ------------------------------------------------------------------------

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.store, self.identity, self.clock)

    def contacts(self) -> dict[str, PublicIdentity]:
        """Everyone we share a room with, by user id (their keys come from the room's members,
        which the members wrote themselves)."""
        found: dict[str, PublicIdentity] = {}
        for room in self.rooms():
            for member in room.members().values():
                if member.user_id == self.user_id or member.user_id in found:
                    continue
                try:
                    found[member.user_id] = PublicIdentity.from_dict(
                        {
                            "user_id": member.user_id,
                            "sign_public": member.sign_pk,
                            "box_public": member.box_pk,
                        }
                    )
                except ValidationError:
                    continue  # a member entry whose keys do not match its id: not a contact
        return found

    def member_names(self) -> dict[str, str]:
        """What each person calls themselves in our rooms, by user id; a current membership's
        name wins over a left one's, so everyone is named the same everywhere."""
        names: dict[str, str] = {}
        active: set[str] = set()
        for room in self.rooms():
            for member in room.members().values():
                if member.name and (member.active or member.user_id not in active):
                    names[member.user_id] = member.name
                    if member.active:
                        active.add(member.user_id)
        return names

    def contact(self, ref: str) -> PublicIdentity:
        """A contact by user id or by the name they go by in a shared room."""
        contacts = self.contacts()
        ref = ref.strip()
        with suppress(ValidationError):
            user_id = parse_user_id(ref)
            if user_id in contacts:
                return contacts[user_id]
        names = {
            member.user_id: member.name
            for room in self.rooms()
            for member in room.members().values()
            if member.user_id in contacts
        }
        matches = {uid for uid, name in names.items() if name.casefold() == ref.casefold()}
        if len(matches) == 1:
            return contacts[matches.pop()]
        if matches:
            raise ValidationError(f"Several people are called {ref!r}; use the user id.")
        raise NotFoundError(f"No one called {ref!r} shares a room with you.")

    # -- rooms ----------------------------------------------------------------------------------

    def _room(self, room_id: str) -> Room:
        return Room(self.document(room_id, kind=ROOM_KIND), me=self.identity.public)

    def rooms(self) -> list[Room]:
        """Rooms the user is in, oldest joined first (deleted ones included, flagged)."""
        return [self._room(room_id) for room_id in self.store.active_room_ids()]

    def find_room(self, ref: str) -> Room:
        """A room by id, unique id prefix (>= 4 characters), name or name prefix (any case)."""
        ref = ref.strip()
        rooms = self.rooms()
        matches = [r for r in rooms if r.room_id == ref.lower()]
        if not matches and len(ref) >= 4:
            matches = [r for r in rooms if r.room_id.startswith(ref.lower())]
        if not matches:
            matches = [r for r in rooms if r.name.casefold() == ref.casefold()]
        if not matches:
            matches = [r for r in rooms if r.name.casefold().startswith(ref.casefold())]
        if not matches:
            raise NotFoundError(f"You are in no room called {ref!r}. See: focusmate room list")
        if len(matches) > 1:
            ids = ", ".join(r.room_id[:8] for r in matches)
            raise ValidationError(f"{ref!r} matches several rooms ({ids}); use the room id.")
        return matches[0]

    def create_room(self, name: str, **settings: object) -> tuple[Room, Invite]:
        defaults = self.settings
        values: dict[str, object] = {
            "focus_min": defaults.focus_min,
            "short_break_min": defaults.short_break_min,
            "long_break_min": defaults.long_break_min,
            "rounds_before_long": defaults.rounds_before_long,
            "auto_advance": defaults.auto_start,
            **settings,
        }
        room_settings = RoomSettings(name=name, **values)  # type: ignore[arg-type]
        secret = new_room_secret()
        room_id = room_id_for(secret)
        now = self.now()
        self.store.add_room(room_id, secret=secret, now=now)
        room = self._room(room_id)
        room.initialise(room_settings, my_name=self.display_name, now=now)
        return room, self.invite_for(room)

    def join_room(self, invite_text: str) -> Room:
        """Join by link or code. Offline, the room fills in once a peer or relay syncs it."""
        invite = parse_invite(invite_text)
        now = self.now()
        self.store.add_room(invite.room_id, secret=invite.secret, now=now)
        room = self._room(invite.room_id)
        room.join(my_name=self.display_name, now=now)
        return room

    def invite_for(self, room: Room, *, relays: tuple[str, ...] | None = None) -> Invite:
        """The room's invite, naming ``relays`` (default: the relays in the settings)."""
        secret = self.store.room_secret(room.room_id)
        if secret is None:
            raise NotFoundError("This profile does not hold the room's secret.")
        hints = self.settings.relay_urls if relays is None else relays
        return Invite(secret=secret, name_hint=room.name, relays=hints)

    def leave_room(self, room: Room) -> None:
        now = self.now()
        self.record_focus(room)
        room.leave(now=now)
        self.store.mark_room_left(room.room_id, now=now)

    def delete_room(self, room: Room) -> None:
        now = self.now()
        room.delete(now=now)
        self.store.mark_room_left(room.room_id, now=now)

    def offered_on_lan(self, room: Room) -> bool:
        """Does this device offer the room to everyone on its LAN (hand out its invite)?"""
        return bool(self.store.get_setting(f"lan_offer:{room.room_id}"))

    def offer_on_lan(self, room: Room, offered: bool) -> None:
        self.store.put_setting(f"lan_offer:{room.room_id}", offered)

    def lan_offers(self) -> list[Invite]:
        """The invites of the rooms this device offers on its LAN."""
        return [
            self.invite_for(room)
            for room in self.rooms()
            if room.exists and not room.deleted and self.offered_on_lan(room)
        ]

    def board(self, room: Room) -> Board:
        """The room's board; one per room document, so what it built is reused across reads."""
        board = self._boards.get(room.room_id)
        if board is None or board.room.document is not room.document:
            board = Board(room, self.identity, verdicts=self._verdicts)
            self._boards[room.room_id] = board
        return board

    # -- focus sessions -------------------------------------------------------------------------

    def stats(self) -> StatsDocument:
        return StatsDocument(self.document(stats_doc_id(self.user_id), kind=STATS_KIND))

    def current_task(self, room: Room) -> str:
        value = self.store.get_setting(f"task:{room.room_id}")
        return value if isinstance(value, str) else ""

    def set_current_task(self, room: Room, task: str) -> None:
        self.store.put_setting(f"task:{room.room_id}", validate_task(task))

    def record_focus(self, room: Room) -> int:
        """Record the focus sessions this room's timer produced since we last looked."""
        current = room.timer_state
        now = self.room_now(room.room_id)
        saved = self.store.get_focus_watch(room.room_id)
        watch = Watch(state=current, checked_at=now)
        if saved is not None:
            with contextlib.suppress(ValueError):  # a damaged watch restarts from now
                watch = Watch(TimerState.from_dict(json.loads(saved[0])), checked_at=saved[1])
        sessions, watch = reconcile(
            room_id=room.room_id,
            watch=watch,
            current=current,
            config=room.settings.timer_config(),
            task=self.current_task(room),
            now=now,
        )
        member = room.members().get(self.user_id)
        if room.deleted or member is None or not member.active:
            sessions = []  # the timer ran, but not for us
        new = self.stats().record(sessions, now=now) if sessions else []
        self.store.put_focus_watch(
            room.room_id, state=json.dumps(watch.state.to_dict()), checked_at=watch.checked_at
        )
        return len(new)

    def record_all_focus(self) -> int:
        return sum(self.record_focus(room) for room in self.rooms() if not room.deleted)
