"""What the app tells the user, and through which channel: sound, tray, or an in-app banner.

The rules are the core's (:func:`focusmate.notifications.decide`); this turns session events
into :class:`~focusmate.notifications.Notice` objects, applies the rules with the window's state,
keeps back what do-not-disturb holds during focus, and lets it out when the break begins.
Adapters (the banner widget, the tray icon, the sound player) listen to the signals.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import QObject, Signal

from focusmate import achievements
from focusmate.errors import FocusMateError
from focusmate.notifications import Channel, EventKind, HeldNotices, Notice, decide
from focusmate.room import Room
from focusmate.timer import Command, Phase, Status
from ui.session import Session

_PHASE_NOTICES = {
    Phase.FOCUS: ("Time to focus", "{room}: focus for {minutes} minutes."),
    Phase.SHORT_BREAK: ("Short break", "{room}: stand up, stretch, look away."),
    Phase.LONG_BREAK: ("Long break", "{room}: well done, take a proper rest."),
}


class NoticeCenter(QObject):
    """Turns events into notices and sends each to the channels the settings allow."""

    banner = Signal(str, str)  # title, body: show inside the window
    systemNotice = Signal(str, str)  # title, body: show through the tray
    sound = Signal(str)  # "focus" or "break": play the chime for that phase

    def __init__(
        self,
        session: Session,
        *,
        system_available: bool,
        tz: ZoneInfo,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.system_available = system_available
        self.window_active = True
        self.tz = tz
        self.held = HeldNotices()
        self._phases: dict[str, tuple[Phase, int]] = {}  # each room's last (phase, revision)
        # The achievements unlocked so far are worked out at the first phase change (reading a
        # year of sessions takes a while), from the sessions recorded by now, noted cheaply; or,
        # should the session start later, by then (starting records the sessions that ended
        # while the app was closed: no news either).
        self._unlocked: set[str] | None = None
        self._recorded = self._session_ids()
        if not session.running:
            session.started.connect(self._note_recorded)
        session.timerPhase.connect(self._on_phase)
        session.postReceived.connect(self._on_post)
        session.commentReceived.connect(self._on_comment)
        session.dmReceived.connect(self._on_dm)
        cache = session.room_cache  # the timers as the sidebar has just read them
        for room in session.workspace.rooms():
            current = cache.timer(room)
            if current.exists and not current.deleted:
                view = cache.timer_view(room, now=session.now_for(room.room_id))
                self._phases[room.room_id] = (view.phase, current.state.revision)

    # -- state ----------------------------------------------------------------------------------

    def focusing(self) -> bool:
        """Is a focus phase running in any of our rooms right now?"""
        for room in self.session.workspace.rooms():
            if room.exists and not room.deleted:
                view = room.timer_view(now=self.session.now_for(room.room_id))
                if view.phase is Phase.FOCUS and view.status is Status.RUNNING:
                    return True
        return False

    def _note_recorded(self) -> None:
        if self._unlocked is None:
            self._recorded = self._session_ids()

    def _session_ids(self) -> frozenset[str]:
        """The ids of the focus sessions recorded so far (the stats map's keys)."""
        return frozenset(self.session.workspace.stats().document.map("sessions").keys())

    def _achievements(self) -> tuple[set[str], set[str]]:
        """The achievements unlocked now, and those unlocked before (when first asked: by the
        sessions recorded when this was made)."""
        sessions = self.session.workspace.stats().sessions()
        now = {u.achievement.id for u in achievements.unlocked(sessions, tz=self.tz)}
        before = self._unlocked
        if before is None:
            earlier = [s for s in sessions if s.session_id in self._recorded]
            before = {u.achievement.id for u in achievements.unlocked(earlier, tz=self.tz)}
        return now, before

    # -- events ---------------------------------------------------------------------------------

    def _on_phase(self, event: dict[str, Any]) -> None:
        """A phase that ends (running on, or waiting for Start when the room does not advance
        by itself) or is skipped is news; a start, a pause, or a reset to the beginning is not."""
        room_id = str(event["room_id"])
        try:
            room = self.session.workspace.find_room(room_id)
        except FocusMateError:
            return  # left meanwhile
        phase, state = Phase(event["phase"]), room.timer_state
        before = self._phases.get(room_id)
        self._phases[room_id] = (phase, state.revision)
        reset = state.revision != (before[1] if before else -1) and (
            state.last_command is Command.RESET
        )
        if before is not None and before[0] != phase and not reset:
            self._phase_changed(room, phase)
        if len(self.held) and not self.focusing():
            self.release_held()  # the break began, or the timer stopped

    def _phase_changed(self, room: Room, phase: Phase) -> None:
        room_id = room.room_id
        title, body = _PHASE_NOTICES[phase]
        minutes = round(room.settings.timer_config().focus_s / 60)
        text = body.format(room=room.name, minutes=minutes)
        chime = "focus" if phase is Phase.FOCUS else "break"
        self.notify(EventKind.PHASE_CHANGED, title, text, room_id=room_id, sound=chime)
        unlocked, before = self._achievements()
        for achievement in achievements.CATALOGUE:
            if achievement.id in unlocked - before:
                self.notify(EventKind.ACHIEVEMENT_UNLOCKED, f"Unlocked: {achievement.title}",
                            achievement.description)  # fmt: skip
        self._unlocked = unlocked

    def _on_post(self, event: dict[str, Any]) -> None:
        room = self._room_name(str(event["room_id"]))
        self.notify(EventKind.POST_RECEIVED, f"{_author(event)} posted in {room}",
                    str(event["body"]), room_id=str(event["room_id"]))  # fmt: skip

    def _on_comment(self, event: dict[str, Any]) -> None:
        room = self._room_name(str(event["room_id"]))
        self.notify(EventKind.COMMENT_RECEIVED, f"{_author(event)} commented in {room}",
                    str(event["body"]), room_id=str(event["room_id"]))  # fmt: skip

    def _on_dm(self, event: dict[str, Any]) -> None:
        sender = str(event["from"])
        name = self.session.workspace.member_names().get(sender, sender[:11])
        self.notify(EventKind.DM_RECEIVED, f"Message from {name}", str(event["text"]))

    def _room_name(self, room_id: str) -> str:
        try:
            return self.session.workspace.find_room(room_id).name
        except FocusMateError:
            return room_id[:8]

    # -- deciding -------------------------------------------------------------------------------

    def notify(
        self,
        kind: EventKind,
        title: str,
        body: str,
        *,
        room_id: str | None = None,
        sound: str = "",
    ) -> None:
        notice = Notice(kind=kind, title=title, body=body, at=self.session.workspace.now(),
                        room_id=room_id)  # fmt: skip
        decision = decide(
            notice,
            self.session.workspace.settings,
            focusing=self.focusing(),
            window_active=self.window_active,
            system_available=self.system_available,
        )
        if decision.held:
            self.held.hold(notice)
            return
        self._deliver(notice, decision.channels, sound=sound)

    def release_held(self) -> None:
        """The break began: what waited comes out now (collapsed when there is a lot)."""
        names = {r.room_id: r.name for r in self.session.workspace.rooms() if r.exists}
        for notice in self.held.release(room_names=names):
            decision = decide(
                notice,
                self.session.workspace.settings,
                focusing=False,
                window_active=self.window_active,
                system_available=self.system_available,
            )
            self._deliver(notice, decision.channels, sound="")

    def _deliver(self, notice: Notice, channels: frozenset[Channel], *, sound: str) -> None:
        if Channel.SOUND in channels and sound:
            self.sound.emit(sound)
        if Channel.SYSTEM in channels:
            self.systemNotice.emit(notice.title, notice.body)
        if Channel.IN_APP in channels:
            self.banner.emit(notice.title, notice.body)


def _author(event: dict[str, Any]) -> str:
    """The author's name, flagged when the signature does not prove it (as the board does)."""
    name = str(event["author"])
    return name if event.get("verified") is True else f"⚠ unverified “{name}”"
