"""What changed in the rooms, as events: new posts and comments, timer phases, and our presence.

Shared by ``focusmate daemon`` (which prints the events) and the desktop app (which turns them
into notifications): both check after a document changed and on every tick of their clock, and
both announce the user in each room and record finished focus sessions the same way.

A tick must cost next to nothing, so what the checks read is kept in a :class:`RoomCache`: the
room list and our tasks are re-read only when something was committed to the store, a room's
name, settings and timer only when those parts of its document changed, and its board (a read
that checks every signature) only when its posts, comments, likes or members changed. The app
shares one cache between the watcher and its view-models, so a board is read once per change.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Subscription

from focusmate import timer
from focusmate.board import Post
from focusmate.document import CrdtDocument
from focusmate.room import Room
from focusmate.store import Store
from focusmate.timer import Phase, Status, TimerConfig, TimerState, TimerView
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from sync.presence import status_for
from sync.relay_link import Event

# The top-level maps of a room document (focusmate.room) that each kind of read depends on.
TIMER_MAPS = ("meta", "settings", "timer")
BOARD_MAPS = ("meta", "members", "posts", "comments", "likes")
MEMBER_MAPS = ("members",)
_changes = itertools.count(1)  # every change anywhere gets a new number: counts never repeat


def store_version(store: Store) -> tuple[int, int]:
    """Changes whenever anything is committed to the store: by another connection, such as a
    CLI command (``data_version``), or by ours (``total_changes()``). One tiny query."""
    row = store.query("SELECT data_version, total_changes() FROM pragma_data_version")[0]
    return int(row[0]), int(row[1])


class MapChanges:
    """A cheap fingerprint of some top-level maps of one document: a number that moves with
    every transaction touching them (their contents at any depth), by observers. Reading the
    maps is what costs; looking at the number costs nothing, so readers re-read only when it
    moved. Numbers are never reused, even by another instance."""

    def __init__(self, document: CrdtDocument, names: Sequence[str]) -> None:
        self.document = document
        self.names = tuple(names)
        self._doc: Doc[Any] | None = None
        self._subscriptions: list[Subscription] = []
        self._count = 0

    @property
    def count(self) -> int:
        doc = self.document.doc
        if doc is not self._doc:  # the first look, or the document was rebuilt from the store
            self._doc = doc
            self._subscriptions = [
                self.document.map(name).observe_deep(self._changed) for name in self.names
            ]
            self._count = next(_changes)
        return self._count

    def _changed(self, events: object) -> None:
        self._count = next(_changes)  # runs while the transaction commits: no reads here


@dataclass(frozen=True)
class RoomTimer:
    """What a room's timer (and its sidebar row) reads from the document, besides the time."""

    exists: bool
    deleted: bool
    name: str
    state: TimerState
    config: TimerConfig


class _Entry:
    """What the cache holds for one room document."""

    def __init__(self, document: CrdtDocument) -> None:
        self.document = document
        self.timer_maps = MapChanges(document, TIMER_MAPS)
        self.board_maps = MapChanges(document, BOARD_MAPS)
        self.member_maps = MapChanges(document, MEMBER_MAPS)
        self.timer_seen = -1
        self.timer: RoomTimer | None = None
        self.still: TimerView | None = None  # a stopped timer reads the same at any time
        self.page_seen: tuple[int, int] = (-1, 0)
        self.page: tuple[tuple[Post, ...], int] = ((), 0)


class RoomCache:
    """What the watcher and the app's view-models read again and again, read once.

    * The rooms we are in, and our current task in each: re-read by :meth:`sync` once anything
      was committed to the store (:func:`store_version`), or by :meth:`reload` when told.
    * Each room's name, settings and timer state (:meth:`timer`): re-read when the document's
      meta, settings or timer maps changed; the view of a timer that is not running is kept,
      since time does not move it.
    * Each room's newest posts (:meth:`page`, a verified read): re-read only when its posts,
      comments, likes or members changed (:meth:`board_changes`), not when its timer or settings
      did. Unchanged, the very same tuple comes back, so readers can tell by identity that there
      is nothing new.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._version: tuple[int, int] | None = None
        self._rooms: list[Room] = []
        self._ids: frozenset[str] = frozenset()
        self._entries: dict[str, _Entry] = {}
        self._tasks: dict[str, str] = {}

    # -- the store ------------------------------------------------------------------------------

    def sync(self) -> bool:
        """Forget the room list and tasks if anyone committed to the store since the last call;
        True when the set of rooms changed."""
        version = store_version(self.workspace.store)  # before reading, so nothing slips by
        if version == self._version:
            return False
        self._version = version
        self._tasks.clear()
        return self.reload()

    def reload(self) -> bool:
        """Re-read the room list (a room was joined, created, left or deleted here); True when
        the set of rooms changed."""
        self._rooms = self.workspace.rooms()
        ids, self._ids = self._ids, frozenset(room.room_id for room in self._rooms)
        for room_id in self._entries.keys() - self._ids:
            del self._entries[room_id]
        return ids != self._ids

    @property
    def room_ids(self) -> frozenset[str]:
        return self._ids

    def rooms(self) -> list[Room]:
        """Rooms the user is in, oldest joined first (deleted ones included), as last read."""
        return list(self._rooms)

    def room(self, room_id: str) -> Room | None:
        return next((room for room in self._rooms if room.room_id == room_id), None)

    def current_task(self, room: Room) -> str:
        task = self._tasks.get(room.room_id)
        if task is None:
            task = self._tasks[room.room_id] = self.workspace.current_task(room)
        return task

    # -- room documents -------------------------------------------------------------------------

    def _entry(self, room: Room) -> _Entry | None:
        document = room.document
        if not isinstance(document, CrdtDocument):
            return None  # not one of the workspace's documents: read it every time
        entry = self._entries.get(room.room_id)
        if entry is None or entry.document is not document:
            entry = self._entries[room.room_id] = _Entry(document)
        return entry

    def timer(self, room: Room) -> RoomTimer:
        entry = self._entry(room)
        if entry is None:
            return _read_timer(room)
        seen = entry.timer_maps.count
        if entry.timer is None or seen != entry.timer_seen:
            entry.timer, entry.timer_seen, entry.still = _read_timer(room), seen, None
        return entry.timer

    def timer_view(self, room: Room, *, now: float) -> TimerView:
        """The room's timer as it reads at ``now``: only a running timer is worked out again."""
        current = self.timer(room)
        entry = self._entry(room)
        if entry is not None and entry.still is not None:
            return entry.still
        view = timer.view(current.state, current.config, now=now)
        if entry is not None and current.state.status is not Status.RUNNING:
            entry.still = view
        return view

    def board_changes(self, room: Room) -> int:
        """Moves whenever the room's posts, comments, likes or members change."""
        entry = self._entry(room)
        return next(_changes) if entry is None else entry.board_maps.count

    def page(self, room: Room, limit: int) -> tuple[tuple[Post, ...], int]:
        """The newest ``limit`` posts (:meth:`focusmate.board.Board.posts` with ``limit``) and
        about how many posts the board has; the same tuple again while nothing changed."""
        entry = self._entry(room)
        board = self.workspace.board(room)
        if entry is None:
            return tuple(board.posts(limit=limit)), board.count()
        seen = entry.board_maps.count
        if (seen, limit) != entry.page_seen:
            entry.page, entry.page_seen = (
                (tuple(board.posts(limit=limit)), board.count()),
                (
                    seen,
                    limit,
                ),
            )
        return entry.page

    def member_changes(self, room: Room) -> int:
        """Moves whenever the room's members change (joins, leaves, names, keys)."""
        entry = self._entry(room)
        return -1 if entry is None else entry.member_maps.count


def _baseline(room: Room, watch: RoomWatch) -> None:
    """Remember the ids already on a board without reading it: reading checks every signature
    (seconds for a profile of large rooms, at start-up), and nothing already there is news."""
    watch.posts.update(map(str, room.document.map("posts").keys()))
    watch.comments.update(map(str, room.document.map("comments").keys()))


def _read_timer(room: Room) -> RoomTimer:
    settings = room.settings
    return RoomTimer(
        exists=room.exists,
        deleted=room.deleted,
        name=settings.name,
        state=room.timer_state,
        config=settings.timer_config(),
    )


@dataclass
class RoomWatch:
    """What the daemon last reported for one room, to report only what changed."""

    posts: set[str] = field(default_factory=set)
    comments: set[str] = field(default_factory=set)
    phase: tuple[Phase, Status, int] | None = None
    board_seen: int = -1  # RoomCache.board_changes when the board was last checked


class BoardAndTimerReporter:
    """Turns document changes and the passage of time into events."""

    def __init__(
        self,
        workspace: Workspace,
        emit: Callable[[Event], None],
        now_for: Callable[[str], float] | None = None,
        on_timer: Callable[[Room, TimerView], None] | None = None,
        cache: RoomCache | None = None,
    ) -> None:
        self.workspace = workspace
        self.emit = emit
        self.now_for = now_for  # the room's timebase (sync.engine), else our clock
        self.on_timer = on_timer  # every check, with each room's timer as it reads now
        self.cache = RoomCache(workspace) if cache is None else cache
        self.rooms: dict[str, RoomWatch] = {}

    def check(
        self, changed: Collection[str] | None = (), *, announce: bool = True, sync: bool = True
    ) -> None:
        """Timers every tick (cheap); the boards of the rooms in ``changed`` (None: all), which
        are read again only if their part of the document changed. ``sync=False``: the caller
        has just synced the cache with the store."""
        if sync:
            self.cache.sync()
        for room in self.cache.rooms():
            current = self.cache.timer(room)
            if current.exists and not current.deleted:
                watch = self.rooms.setdefault(room.room_id, RoomWatch())
                if not announce and watch.board_seen == -1:
                    _baseline(room, watch)  # what is there is not news: ids suffice
                elif changed is None or room.room_id in changed:
                    self._check_board(room, watch, announce=announce)
                self._check_timer(room, watch, announce=announce)

    def _check_board(self, room: Room, watch: RoomWatch, *, announce: bool) -> None:
        """Announce posts and comments not seen before. Only the posts that have something new
        are read (the board's index says which keys exist), however large the board."""
        changes = self.cache.board_changes(room)
        if changes == watch.board_seen:
            return  # nothing on the board changed
        watch.board_seen = changes
        board = self.workspace.board(room)
        comments = board.comment_posts()
        touched = {post for key, post in comments.items() if key not in watch.comments}
        me = self.workspace.user_id
        for post_id in board.post_ids():
            if post_id in watch.posts and post_id not in touched:
                continue
            post = board.read_post(post_id)
            if post is None:
                continue
            if post.post_id not in watch.posts:
                watch.posts.add(post.post_id)
                if announce and not (post.verified and post.author == me):
                    self.emit(_post_event(room, post))
            for comment in post.comments:
                if comment.comment_id not in watch.comments:
                    watch.comments.add(comment.comment_id)
                    # Ours is not news; one that only claims to be ours (forged) is.
                    if announce and not (comment.verified and comment.author == me):
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
        view = self.cache.timer_view(room, now=now)
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
    in the stats, as the app does.

    With a ``cache`` (the app's, kept in sync with the store by the session) the task is read
    from it; without one it is read from the store on every call."""

    def __init__(
        self, workspace: Workspace, engine: SyncEngine, cache: RoomCache | None = None
    ) -> None:
        self.workspace = workspace
        self.engine = engine
        self.cache = cache
        self.announced: dict[str, tuple[str, str]] = {}
        self.phases: dict[str, tuple[Phase, Status, int]] = {}
        self.away = False  # the user stepped away (the app's idle detection or choice)

    def __call__(self, room: Room, view: TimerView) -> None:
        phase = (view.phase, view.status, view.round)
        if self.phases.get(room.room_id) != phase:
            self.phases[room.room_id] = phase
            self.workspace.record_focus(room)
        status = "away" if self.away else status_for(view)
        task = (
            self.workspace.current_task(room)
            if self.cache is None
            else self.cache.current_task(room)
        )
        state = (status, task)
        if self.announced.get(room.room_id) != state:
            self.announced[room.room_id] = state
            self.engine.set_presence(room.room_id, status=state[0], task=state[1] or None)


def _post_event(room: Room, post: Post) -> Event:
    return {
        "event": "post_received",
        "room_id": room.room_id,
        "post_id": post.post_id,
        "author": post.author_name,
        "body": post.body,
        "verified": post.verified,  # False: the author shown is not who signed it
    }
