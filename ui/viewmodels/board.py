"""The room board as the app shows it: posts with their comments and likes, as snapshots.

Reading a board checks the signature of every post, comment and like shown (about 0.2 ms a
record here, the first time). So only the newest :data:`PAGE` posts are read until the user asks
for more (:meth:`focusmate.board.Board.posts` with a limit reads only those records, however
large the room), through the session's room cache (:class:`sync.watch.RoomCache`), which reads
again only when the board's part of the room document changed — not when the timer or the
settings did, though they share the document. Verdicts are kept in the profile
(:mod:`focusmate.verdicts`), and a post that did not change is not built again. A snapshot equal
to the previous one is not published.

While its page is hidden (:meth:`BoardViewModel.set_active`) the board neither re-reads nor
re-renders its relative times; it catches up when shown again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QObject, Signal

from focusmate.board import Board, Comment, Post
from focusmate.errors import FocusMateError
from ui.session import Session

PAGE = 100  # posts shown at first, and added by each "show more"
UNVERIFIED = "⚠ unverified author"


@dataclass(frozen=True)
class CommentItem:
    comment_id: str
    post_id: str
    author_name: str
    body: str
    mine: bool  # ours and genuinely signed by us: we may edit and delete it
    verified: bool
    time_text: str  # "5 min ago", with "· edited ..." when it was edited


@dataclass(frozen=True)
class PostItem:
    post_id: str
    author_name: str
    body: str
    mine: bool
    verified: bool
    time_text: str
    likes: int
    liked_by_me: bool
    comments: tuple[CommentItem, ...]  # oldest first


@dataclass(frozen=True)
class BoardSnapshot:
    posts: tuple[PostItem, ...]  # newest first, at most the shown number
    older: int  # posts not shown yet (see ``show_more``)


def relative_time(then: float, now: float) -> str:
    """Calm, coarse "how long ago": minutes, hours, days, then the date."""
    seconds = now - then
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} days ago"
    day = datetime.fromtimestamp(then)
    return f"{day.day} {day:%b %Y}"


def _when(created_at: float, edited_at: float | None, now: float) -> str:
    text = relative_time(created_at, now)
    return text if edited_at is None else f"{text} · edited {relative_time(edited_at, now)}"


class BoardViewModel(QObject):
    """One room's board: snapshots, the user's board actions, and arrivals from others."""

    changed = Signal()
    error = Signal(str)
    arrived = Signal(int)  # new posts and comments by others since the previous read

    def __init__(self, session: Session, room_id: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.room_id = room_id
        self._me = session.workspace.user_id
        self._board: Board | None = None
        self._posts: tuple[Post, ...] = ()  # the newest posts, as the room cache read them
        self._total = 0  # about how many posts the board has
        self._read: tuple[tuple[Post, ...], int] | None = None  # the read behind the snapshot
        self._known: set[str] | None = None  # ids of posts and comments read so far
        self._shown = PAGE
        self._active = True  # shown: see set_active
        self._stale = False  # the room changed while inactive
        self._minute = self._now_minute()
        self.snapshot = BoardSnapshot(posts=(), older=0)
        session.roomChanged.connect(self._on_room_changed)
        session.ticked.connect(self._on_tick)
        self.refresh()

    # -- reading --------------------------------------------------------------------------------

    def set_active(self, active: bool) -> None:
        """Whether the board is on screen (the default). An inactive board skips re-reads and
        once-a-minute re-renders; activating it catches up on both."""
        if active == self._active:
            return
        self._active = active
        if active:
            if self._stale:
                self.refresh()
            if self._now_minute() != self._minute:
                self._publish()

    @property
    def active(self) -> bool:
        return self._active

    def refresh(self) -> None:
        """Re-read the board if its part of the room changed (checking new signatures), and
        publish a new snapshot if it differs."""
        self._stale = False
        board = self._open_board()
        read = (
            self._session.room_cache.page(board.room, self._shown) if board is not None else ((), 0)
        )
        if read is self._read:
            return  # nothing on the board changed (a timer command, a settings edit)
        self._read = read
        self._posts, self._total = read
        # (id, genuinely ours): one that only claims to be ours is an arrival like any other
        items = [(p.post_id, p.verified and p.author == self._me) for p in self._posts]
        items += [
            (c.comment_id, c.verified and c.author == self._me)
            for p in self._posts
            for c in p.comments
        ]
        known, self._known = self._known, {item_id for item_id, _ in items}
        self._publish()
        if known is not None:
            fresh = sum(1 for item_id, mine in items if not mine and item_id not in known)
            if fresh:
                self.arrived.emit(fresh)

    def show_more(self) -> None:
        """Show the next :data:`PAGE` older posts (older posts are no arrivals)."""
        self._shown += PAGE
        self._known = None
        self.refresh()

    def _open_board(self) -> Board | None:
        if self._board is None:
            try:
                room = self._session.workspace.find_room(self.room_id)
            except FocusMateError:
                return None  # not (or no longer) one of our rooms: an empty board
            self._board = self._session.workspace.board(room)  # verdicts cached per workspace
        return self._board

    def _publish(self) -> None:
        now = self._session.workspace.now()
        self._minute = self._now_minute()
        shown = self._posts[: self._shown]
        snapshot = BoardSnapshot(
            posts=tuple(self._post_item(p, now) for p in shown),
            older=max(0, self._total - len(shown)),
        )
        if snapshot != self.snapshot:
            self.snapshot = snapshot
            self.changed.emit()

    def _post_item(self, post: Post, now: float) -> PostItem:
        return PostItem(
            post_id=post.post_id,
            author_name=post.author_name,
            body=post.body,
            mine=post.verified and post.author == self._me,
            verified=post.verified,
            time_text=_when(post.created_at, post.edited_at, now),
            likes=post.likes,
            liked_by_me=post.liked_by_me,
            comments=tuple(self._comment_item(c, now) for c in post.comments),
        )

    def _comment_item(self, comment: Comment, now: float) -> CommentItem:
        return CommentItem(
            comment_id=comment.comment_id,
            post_id=comment.post_id,
            author_name=comment.author_name,
            body=comment.body,
            mine=comment.verified and comment.author == self._me,
            verified=comment.verified,
            time_text=_when(comment.created_at, comment.edited_at, now),
        )

    def _on_room_changed(self, room_id: str) -> None:
        if room_id != self.room_id:
            return
        if self._active:
            self.refresh()
        else:
            self._stale = True  # read when shown again

    def _on_tick(self) -> None:
        if self._active and self._now_minute() != self._minute:
            self._publish()  # "5 min ago" becomes "6 min ago"; nothing is re-read

    def _now_minute(self) -> int:
        return int(self._session.workspace.now() // 60)

    # -- acting ---------------------------------------------------------------------------------

    def post(self, text: str) -> bool:
        """Post ``text``; False (and ``error``) when it was refused, so the draft stays."""
        return self._act(lambda board, now: board.post(text, now=now))

    def edit_post(self, post_id: str, text: str) -> bool:
        return self._act(lambda board, now: board.edit_post(post_id, text, now=now))

    def delete_post(self, post_id: str) -> bool:
        return self._act(lambda board, now: board.delete_post(post_id, now=now))

    def comment(self, post_id: str, text: str) -> bool:
        return self._act(lambda board, now: board.comment(post_id, text, now=now))

    def edit_comment(self, comment_id: str, text: str) -> bool:
        return self._act(lambda board, now: board.edit_comment(comment_id, text, now=now))

    def delete_comment(self, comment_id: str) -> bool:
        return self._act(lambda board, now: board.delete_comment(comment_id, now=now))

    def toggle_like(self, post_id: str) -> bool:
        liked = any(p.liked_by_me for p in self._posts if p.post_id == post_id)
        if liked:
            return self._act(lambda board, now: board.unlike(post_id, now=now))
        return self._act(lambda board, now: board.like(post_id, now=now))

    def _act(self, action: Callable[[Board, float], object]) -> bool:
        board = self._open_board()
        if board is None:
            self.error.emit("You are not in this room any more.")
            return False
        try:
            action(board, self._session.workspace.now())
        except FocusMateError as exc:
            self.error.emit(str(exc))
            return False
        self._session.note_local_change(self.room_id)  # its roomChanged re-reads the board
        return True
