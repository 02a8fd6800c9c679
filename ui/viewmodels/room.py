"""One room as its screen shows it: the shared timer now, who is here, settings, the invite.

The timer is re-read on every session tick, which costs two small map reads; everything else
(members, presence, settings) is re-read only when the session says the room's document or its
presence changed, or when our own announced status moved with the timer. Snapshots are compared
before a signal goes out, so an idle room costs its widgets nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from focusmate.errors import FocusMateError
from focusmate.room import LIMITS, RoomSettings
from focusmate.timer import (
    PHASE_NAMES,
    Command,
    Phase,
    Status,
    TimerView,
    allowed_commands,
    clock_text,
    view,
)
from sync.presence import MAX_TASK_CHARS, STATUSES, status_for
from ui.session import Session

STATUS_LABELS = {
    "focusing": "Focusing",
    "break": "On a break",
    "idle": "Idle",
    "away": "Away",
    "offline": "Offline",
}
# When one person is here from several devices, the busiest state speaks for them.
_STATUS_RANK = {"focusing": 0, "break": 1, "idle": 2, "away": 3, "offline": 4}
_SETTING_RULES = {
    "focus_min": "Focus must last {low}–{high} minutes.",
    "short_break_min": "A short break must last {low}–{high} minutes.",
    "long_break_min": "A long break must last {low}–{high} minutes.",
    "rounds_before_long": "Rounds before a long break must be {low}–{high}.",
}
_PRIMARY = (Command.START, Command.PAUSE, Command.RESUME)


@dataclass(frozen=True)
class TimerSnapshot:
    phase: Phase
    status: Status
    remaining_s: float
    progress: float  # share of the phase done, 0..1
    round: int
    rounds_before_long: int
    remaining_text: str  # "mm:ss"
    # What is worth offering now: the allowed commands, less Reset on an untouched timer, and
    # none while the room has not arrived or was deleted.
    commands: frozenset[Command]

    @property
    def phase_label(self) -> str:
        return PHASE_NAMES[self.phase]

    @property
    def status_label(self) -> str:
        """Empty while it runs; otherwise what the timer is waiting for."""
        return {Status.RUNNING: "", Status.PAUSED: "paused", Status.IDLE: "ready"}[self.status]

    @property
    def primary(self) -> Command | None:
        """What Space does now: start, pause or resume."""
        return next((c for c in _PRIMARY if c in self.commands), None)

    @property
    def description(self) -> str:
        """One sentence for screen readers."""
        state = {Status.RUNNING: "running", Status.PAUSED: "paused", Status.IDLE: "not started"}
        return (
            f"{self.phase_label}, round {self.round} of {self.rounds_before_long}, "
            f"{self.remaining_text} left, {state[self.status]}."
        )


@dataclass(frozen=True)
class Participant:
    user_id: str
    name: str
    is_you: bool
    is_owner: bool
    status: str  # focusing, break, idle, away or offline
    task: str  # "" when they named none

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class RoomSnapshot:
    name: str
    settings: RoomSettings
    is_owner: bool
    arrived: bool  # False until a fresh join has received the room's state
    deleted: bool
    my_task: str
    participants: tuple[Participant, ...]  # you first, then those here, then the rest


@dataclass(frozen=True)
class InviteText:
    link: str
    code: str


class RoomViewModel(QObject):
    """The room ``room_id`` of ``session``'s profile (NotFoundError if it holds no such room).
    ``left`` fires once the room is no longer ours: left or deleted here or elsewhere."""

    timerChanged = Signal()
    changed = Signal()
    error = Signal(str)
    left = Signal()

    def __init__(self, session: Session, room_id: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.room_id = room_id
        self._workspace = session.workspace
        self._room = self._workspace.find_room(room_id)
        self._gone = False
        self._active = True  # on screen: the countdown is redrawn every tick
        self._config = self._room.settings.timer_config()
        self._usable = self._room.exists and not self._room.deleted
        self._timer = self._read_timer()
        self._snapshot = self._read_room()
        session.ticked.connect(self._on_tick)
        session.roomChanged.connect(self._on_room_changed)
        session.presenceChanged.connect(self._on_room_changed)
        session.roomsChanged.connect(self._on_rooms_changed)

    # -- what the screen shows ------------------------------------------------------------------

    @property
    def timer(self) -> TimerSnapshot:
        return self._timer

    @property
    def room(self) -> RoomSnapshot:
        return self._snapshot

    @property
    def is_owner(self) -> bool:
        return self._snapshot.is_owner

    @property
    def settings(self) -> RoomSettings:
        return self._snapshot.settings

    def invite(self) -> InviteText | None:
        """The link and short code to hand out (None, with an ``error``, if the secret is gone)."""
        try:
            invite = self._workspace.invite_for(self._room)
        except FocusMateError as err:
            self.error.emit(str(err))
            return None
        return InviteText(link=invite.link(), code=invite.code)

    @property
    def offered_on_lan(self) -> bool:
        return self._workspace.offered_on_lan(self._room)

    def set_offered_on_lan(self, offered: bool) -> None:
        """Offer the room (hand out its invite) to everyone on the LAN, or stop."""
        self.session.set_lan_offer(self.room_id, offered)

    # -- the timer ------------------------------------------------------------------------------

    async def command(self, command: Command) -> None:
        """Start, pause, resume, skip or reset for everyone in the room."""
        try:
            await self.session.timer_command(self.room_id, command)
        except FocusMateError as err:
            self.error.emit(str(err))
            return
        self._update_timer()
        self._update_room()

    async def toggle(self) -> None:
        """Space: start, pause or resume, whichever applies."""
        primary = self._timer.primary
        if primary is not None:
            await self.command(primary)

    async def skip(self) -> None:
        await self.command(Command.SKIP)

    async def reset(self) -> None:
        await self.command(Command.RESET)

    # -- you in this room -----------------------------------------------------------------------

    def set_task(self, text: str) -> None:
        """What you are working on here, announced to the room at once."""
        try:
            self._workspace.set_current_task(self._room, text)
        except FocusMateError as err:
            self.error.emit(str(err))
            return
        self.session.tick()  # the presence keeper announces the new task on the tick
        self._update_room()

    def update_settings(self, **changes: Any) -> str | None:
        """Apply changed settings (owner only). Returns the message to show beside the form when
        they are refused, None once they are saved; only the fields that differ are written, so
        another owner device's edit of a different field survives."""
        current = self._room.settings
        changes = {k: v for k, v in changes.items() if getattr(current, k, object()) != v}
        if not changes:
            return None
        for key, rule in _SETTING_RULES.items():
            low, high = LIMITS[key]
            value = changes.get(key)
            if isinstance(value, int) and not low <= value <= high:
                return rule.format(low=low, high=high)
        try:
            self._room.update_settings(now=self._workspace.now(), **changes)
        except FocusMateError as err:
            return str(err)
        self.session.note_local_change(self.room_id)
        self._config = self._room.settings.timer_config()
        self._update_room()
        self._update_timer()
        return None

    def leave(self) -> None:
        """Leave the room on this profile (the others keep it)."""
        try:
            self._workspace.leave_room(self._room)
        except FocusMateError as err:
            self.error.emit(str(err))
            return
        self._finish()

    def delete(self) -> None:
        """Delete the room for everyone (owner only)."""
        try:
            self._workspace.delete_room(self._room)
        except FocusMateError as err:
            self.error.emit(str(err))
            return
        self.session.note_local_change(self.room_id)
        self._finish()

    # -- reading --------------------------------------------------------------------------------

    def _read_view(self) -> tuple[TimerView, frozenset[Command]]:
        state = self._room.timer_state
        now = self.session.now_for(self.room_id)
        return view(state, self._config, now=now), allowed_commands(state, self._config, now=now)

    def _read_timer(self) -> TimerSnapshot:
        current, allowed = self._read_view()
        fresh = (
            current.status is Status.IDLE
            and current.phase is Phase.FOCUS
            and current.round == 1
            and current.progress == 0
        )
        if not self._usable:
            allowed = frozenset()  # a room not yet arrived, or deleted, takes no commands
        return TimerSnapshot(
            phase=current.phase,
            status=current.status,
            remaining_s=current.remaining_s,
            progress=current.progress,
            round=current.round,
            rounds_before_long=current.rounds_before_long,
            remaining_text=clock_text(current.remaining_s),
            # Reset is allowed but means nothing on a timer that has not moved yet.
            commands=allowed - {Command.RESET} if fresh else allowed,
        )

    def _read_room(self) -> RoomSnapshot:
        room = self._room
        return RoomSnapshot(
            name=room.name,
            settings=room.settings,
            is_owner=room.owner_id == self._workspace.user_id,
            arrived=room.exists,
            deleted=room.deleted,
            my_task=self._workspace.current_task(room),
            participants=self._participants(),
        )

    def _my_presence(self) -> tuple[str, str]:
        announced = self.session.presence_keeper.announced.get(self.room_id)
        if announced is not None:
            return announced
        return status_for(self._read_view()[0]), self._workspace.current_task(self._room)

    def _participants(self) -> tuple[Participant, ...]:
        me = self._workspace.user_id
        here: dict[str, tuple[str, str]] = {}
        for state in self.session.engine.peers_present(self.room_id):
            user_id = state.get("user_id")
            if not isinstance(user_id, str):
                continue
            status = state.get("status")
            status = status if status in STATUSES else "idle"
            known = here.get(user_id)
            if known is None or _STATUS_RANK[status] < _STATUS_RANK[known[0]]:
                here[user_id] = (status, _clean_task(state.get("task")))
        here[me] = self._my_presence()
        owner = self._room.owner_id
        people = []
        for member in self._room.members().values():
            if not member.active:
                continue
            status, task = here.get(member.user_id, ("offline", ""))
            people.append(
                Participant(
                    user_id=member.user_id,
                    name=member.name,
                    is_you=member.user_id == me,
                    is_owner=member.user_id == owner,
                    status=status,
                    task=task,
                )
            )
        people.sort(key=lambda p: (not p.is_you, p.status == "offline", p.name.casefold()))
        return tuple(people)

    # -- keeping up -----------------------------------------------------------------------------

    def _update_timer(self) -> None:
        snapshot = self._read_timer()
        if snapshot != self._timer:
            self._timer = snapshot
            self.timerChanged.emit()

    def _update_room(self) -> None:
        snapshot = self._read_room()
        if snapshot != self._snapshot:
            self._snapshot = snapshot
            self.changed.emit()

    def set_active(self, active: bool) -> None:
        """Whether the room's page is on screen (the default). Off screen the timer is not
        re-read every tick; coming back catches up at once."""
        self._active = active
        if active and not self._gone:
            self._update_timer()
            self._update_room()

    def _on_tick(self) -> None:
        if self._gone or not self._active:
            return
        self._update_timer()
        mine = next((p for p in self._snapshot.participants if p.is_you), None)
        if mine is not None and (mine.status, mine.task) != self._my_presence():
            self._update_room()

    def _on_room_changed(self, room_id: str) -> None:
        if self._gone or room_id != self.room_id:
            return
        self._config = self._room.settings.timer_config()
        self._usable = self._room.exists and not self._room.deleted
        self._update_room()
        self._update_timer()

    def _on_rooms_changed(self) -> None:
        if not self._gone and self.room_id not in self._workspace.store.active_room_ids():
            self._finish()  # left or deleted elsewhere (another window, the CLI)

    def _finish(self) -> None:
        self._gone = True
        self.session.note_rooms_changed()
        self.left.emit()


def _clean_task(value: object) -> str:
    """A peer's task as one short line: control and format characters (bidi overrides) go."""
    if not isinstance(value, str):
        return ""
    kept = "".join(c for c in value if unicodedata.category(c) not in {"Cc", "Cf"} or c.isspace())
    return " ".join(kept.split())[:MAX_TASK_CHARS]
