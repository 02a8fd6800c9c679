"""What changed in the rooms, as events: new posts and comments, timer phases, and our presence.

Shared by ``focusmate daemon`` (which prints the events) and the desktop app (which turns them
into notifications): both check after a document changed and on every tick of their clock, and
both announce the user in each room and record finished focus sessions the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from focusmate.room import Room
from focusmate.timer import Phase, Status, TimerView
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from sync.presence import status_for
from sync.relay_link import Event


@dataclass
class RoomWatch:
    """What the daemon last reported for one room, to report only what changed."""

    posts: set[str] = field(default_factory=set)
    comments: set[str] = field(default_factory=set)
    phase: tuple[Phase, Status, int] | None = None


class BoardAndTimerReporter:
    """Turns document changes and the passage of time into events."""

    def __init__(
        self,
        workspace: Workspace,
        emit: Callable[[Event], None],
        now_for: Callable[[str], float] | None = None,
        on_timer: Callable[[Room, TimerView], None] | None = None,
    ) -> None:
        self.workspace = workspace
        self.emit = emit
        self.now_for = now_for  # the room's timebase (sync.engine), else our clock
        self.on_timer = on_timer  # every check, with each room's timer as it reads now
        self.rooms: dict[str, RoomWatch] = {}

    def check(self, changed: Collection[str] | None = (), *, announce: bool = True) -> None:
        """Timers every tick (cheap); the boards of the rooms in ``changed`` (None: all), since
        reading a board checks every signature in it."""
        for room in self.workspace.rooms():
            if room.exists and not room.deleted:
                watch = self.rooms.setdefault(room.room_id, RoomWatch())
                if changed is None or room.room_id in changed:
                    self._check_board(room, watch, announce=announce)
                self._check_timer(room, watch, announce=announce)

    def _check_board(self, room: Room, watch: RoomWatch, *, announce: bool) -> None:
        for post in self.workspace.board(room).posts():
            if post.post_id not in watch.posts:
                watch.posts.add(post.post_id)
                if announce and post.author != self.workspace.user_id:
                    self.emit(_post_event(room, post.post_id, post.author_name, post.body))
            for comment in post.comments:
                if comment.comment_id not in watch.comments:
                    watch.comments.add(comment.comment_id)
                    if announce and comment.author != self.workspace.user_id:
                        self.emit(
                            {
                                "event": "comment_received",
                                "room_id": room.room_id,
                                "post_id": post.post_id,
                                "comment_id": comment.comment_id,
                                "author": comment.author_name,
                                "body": comment.body,
                                "verified": comment.verified,
                            }
                        )

    def _check_timer(self, room: Room, watch: RoomWatch, *, announce: bool) -> None:
        now = self.now_for(room.room_id) if self.now_for else self.workspace.now()
        view = room.timer_view(now=now)
        phase = (view.phase, view.status, view.round)
        if phase != watch.phase:
            if announce:  # (a room that arrives after the start is news, with its phase)
                self.emit(
                    {
                        "event": "timer_phase",
                        "room_id": room.room_id,
                        "phase": view.phase.value,
                        "status": view.status.value,
                        "round": view.round,
                        "remaining_s": round(view.remaining_s, 3),
                        "ends_at": view.ends_at,  # on the room's timebase
                        "at": self.workspace.now(),  # this machine's clock
                    }
                )
            watch.phase = phase
        if self.on_timer is not None:
            self.on_timer(room, view)


class PresenceKeeper:
    """Tells each room what we are doing — focusing, on a break or idle, as its timer says, and
    on which task (``focusmate timer start --task``) — and records our finished focus sessions
    in the stats, as the app does."""

    def __init__(self, workspace: Workspace, engine: SyncEngine) -> None:
        self.workspace = workspace
        self.engine = engine
        self.announced: dict[str, tuple[str, str]] = {}
        self.phases: dict[str, tuple[Phase, Status, int]] = {}
        self.away = False  # the user stepped away (the app's idle detection or choice)

    def __call__(self, room: Room, view: TimerView) -> None:
        phase = (view.phase, view.status, view.round)
        if self.phases.get(room.room_id) != phase:
            self.phases[room.room_id] = phase
            self.workspace.record_focus(room)
        status = "away" if self.away else status_for(view)
        state = (status, self.workspace.current_task(room))
        if self.announced.get(room.room_id) != state:
            self.announced[room.room_id] = state
            self.engine.set_presence(room.room_id, status=state[0], task=state[1] or None)


def _post_event(room: Room, post_id: str, author: str, body: str) -> Event:
    return {
        "event": "post_received",
        "room_id": room.room_id,
        "post_id": post_id,
        "author": author,
        "body": body,
    }
