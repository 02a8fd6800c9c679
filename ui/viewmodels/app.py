"""The window's own state: first run, the sidebar's rooms, LAN peers, and the window title.

The sidebar shows each room's live phase and remaining time, so :class:`RoomListModel` refreshes
its rows on every session tick and rebuilds them only when rooms come or go. A tick reads no
document and no table: the room list, names and timer states come from the session's room cache
(re-read only when they changed), and only running timers are worked out again. Creating and
joining rooms happen here because they change the sidebar first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from focusmate.errors import FocusMateError
from focusmate.timer import PHASE_NAMES, Phase, Status, TimerView, clock_text
from ui.session import Session


@dataclass(frozen=True)
class RoomRow:
    """One sidebar entry."""

    room_id: str
    name: str
    phase: Phase | None  # None while the room has not arrived from a peer yet
    status: Status | None
    remaining: str  # "mm:ss", or "" while waiting

    @property
    def summary(self) -> str:
        if self.phase is None or self.status is None:
            return "Waiting for a peer…"
        if self.status is Status.IDLE:
            return f"{PHASE_NAMES[self.phase]} · ready"
        paused = " · paused" if self.status is Status.PAUSED else ""
        return f"{PHASE_NAMES[self.phase]} · {self.remaining}{paused}"


def room_row(room_id: str, name: str, view: TimerView | None) -> RoomRow:
    """A room's row; ``view`` is None while the room has not arrived (it has no name yet)."""
    if view is None:
        return RoomRow(room_id, room_id[:8], None, None, "")
    return RoomRow(room_id, name, view.phase, view.status, clock_text(view.remaining_s))


class RoomListModel(QAbstractListModel):
    """The rooms in the sidebar, with their live timers."""

    RowRole = Qt.ItemDataRole.UserRole + 1  # the RoomRow itself
    RoomIdRole = Qt.ItemDataRole.UserRole + 2

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._rows: list[RoomRow] = []
        self.reload()
        session.roomsChanged.connect(self.reload)
        session.roomChanged.connect(lambda _room_id: self.refresh())
        session.ticked.connect(self.refresh)

    def _read(self) -> list[RoomRow]:
        cache = self.session.room_cache  # re-reads a room only when its document changed
        rows = []
        for room in cache.rooms():
            current = cache.timer(room)
            if current.deleted:
                continue
            view = None
            if current.exists:
                view = cache.timer_view(room, now=self.session.now_for(room.room_id))
            rows.append(room_row(room.room_id, current.name, view))
        return rows

    def reload(self) -> None:
        """Rooms came or went: rebuild the list."""
        self.beginResetModel()
        self._rows = self._read()
        self.endResetModel()

    def refresh(self) -> None:
        """Time passed or a room changed: update rows in place (selection and scroll stay)."""
        rows = self._read()
        if [r.room_id for r in rows] != [r.room_id for r in self._rows]:
            self.reload()
            return
        for i, (old, new) in enumerate(zip(self._rows, rows, strict=True)):
            if old != new:
                self._rows[i] = new
                index = self.index(i)
                self.dataChanged.emit(index, index)

    def rows(self) -> list[RoomRow]:
        return list(self._rows)

    def row_of(self, room_id: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.room_id == room_id), -1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{row.name}\n{row.summary}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{row.name}, {row.summary}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.summary
        if role == self.RowRole:
            return row
        if role == self.RoomIdRole:
            return row.room_id
        return None


@dataclass(frozen=True)
class LanPeer:
    user_id: str
    name: str  # a display name when we share a room, else the start of the user id
    offers: tuple[str, ...] = ()  # names of the rooms they offer to the LAN


@dataclass(frozen=True)
class LanOffer:
    """A room someone on the LAN offers: joining needs no code."""

    room_name: str
    peer_id: str
    offered_by: str  # the peer's name as we know it
    link: str


class AppViewModel(QObject):
    """First run, room creation and joining, LAN peers, and what the title bar says."""

    onboardedChanged = Signal(bool)
    roomOpened = Signal(str)  # a room was created or joined here: show it
    peersChanged = Signal()
    titleChanged = Signal(str)
    error = Signal(str)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.rooms = RoomListModel(session, self)
        self.current_room: str | None = None
        self._title = ""
        session.peersChanged.connect(self.peersChanged)
        session.ticked.connect(self._update_title)

    # -- first run ------------------------------------------------------------------------------

    @property
    def onboarded(self) -> bool:
        return self.session.workspace.onboarded

    @property
    def display_name(self) -> str:
        return self.session.workspace.display_name

    def finish_first_run(self, display_name: str) -> bool:
        """Keep the name the user picked (the identity already exists, made silently)."""
        ws = self.session.workspace
        try:
            ws.profile_document().update(ws.identity, now=ws.now(), display_name=display_name)
        except FocusMateError as err:
            self.error.emit(str(err))
            return False
        ws.mark_onboarded()
        self.onboardedChanged.emit(True)
        return True

    # -- rooms ----------------------------------------------------------------------------------

    def create_room(self, name: str) -> str | None:
        """A new room on the user's default timer settings; its id, or None after an error."""
        try:
            room, _ = self.session.workspace.create_room(name)
        except FocusMateError as err:
            self.error.emit(str(err))
            return None
        self._opened(room.room_id)
        return room.room_id

    def join_room(self, invite_text: str) -> str | None:
        """Join by pasted link or typed code; the room fills in when a member is reachable."""
        try:
            room = self.session.workspace.join_room(invite_text)
        except FocusMateError as err:
            self.error.emit(str(err))
            return None
        self._opened(room.room_id)
        return room.room_id

    def _opened(self, room_id: str) -> None:
        self.session.note_rooms_changed()
        self.select_room(room_id)
        self.roomOpened.emit(room_id)

    def select_room(self, room_id: str | None) -> None:
        self.current_room = room_id
        self._update_title()

    def about_text(self) -> str:
        ws = self.session.workspace
        return f"You are {ws.display_name} ({ws.user_id}).\nYour data: {ws.profile_dir}"

    # -- presence -------------------------------------------------------------------------------

    @property
    def away(self) -> bool:
        return self.session.presence_keeper.away

    def set_away(self, away: bool) -> None:
        """Show as away in every room (until turned off), instead of what the timer says."""
        self.session.presence_keeper.away = away
        self.session.tick()  # announced now, not at the next tick

    # -- LAN peers ------------------------------------------------------------------------------

    def lan_peers(self) -> list[LanPeer]:
        if not self.session.peers:
            return []  # nobody on the LAN (as at start): no names to look up
        names = self.session.workspace.member_names()
        offers: dict[str, list[str]] = {}
        for offer in self.lan_offers():
            offers.setdefault(offer.peer_id, []).append(offer.room_name)
        return sorted(
            (
                LanPeer(uid, names.get(uid, uid[:11]), tuple(offers.get(uid, ())))
                for uid in self.session.peers
            ),
            key=lambda p: p.name.casefold(),
        )

    def lan_offers(self) -> list[LanOffer]:
        """Rooms offered by people on the LAN that we are not in yet."""
        offered = list(self.session.engine.offers_from_lan())
        if not offered:
            return []
        names = self.session.workspace.member_names()
        return [
            LanOffer(
                room_name=invite.name_hint or invite.room_id[:8],
                peer_id=uid,
                offered_by=names.get(uid, uid[:11]),
                link=invite.link(),
            )
            for uid, invite in offered
        ]

    # -- title ----------------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return self._title

    def _update_title(self) -> None:
        """ "12:34 · Focus · Deep Work — FocusMate" for the open room (else the first running
        one), so the remaining time shows in the task bar."""
        rows = self.rooms.rows()
        row = next((r for r in rows if r.room_id == self.current_room), None)
        if row is None or row.status is not Status.RUNNING:
            row = next((r for r in rows if r.status is Status.RUNNING), row)
        title = "FocusMate"
        if row is not None and row.phase is not None and row.status is not Status.IDLE:
            title = f"{row.remaining} · {PHASE_NAMES[row.phase]} · {row.name} — FocusMate"
        if title != self._title:
            self._title = title
            self.titleChanged.emit(title)
