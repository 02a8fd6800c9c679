"""sync.watch: what the watcher reads is read again only when its part of the store changed.

Spies count the expensive reads (a verified board read, room settings, the room list, tasks);
nothing here measures time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from focusmate import board as board_module
from focusmate import room as room_module
from focusmate import workspace as workspace_module
from focusmate.board import Post
from focusmate.clock import FakeClock
from focusmate.identity import Identity, sign_record
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.room import Room
from focusmate.store import Store
from focusmate.timer import Command, Status
from focusmate.workspace import Workspace
from sync.relay_link import Event
from sync.watch import BoardAndTimerReporter, RoomCache, store_version


class Counter:
    """Wraps a method (or classmethod) of a class and counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.calls = 0
        original = getattr(owner, name)  # for a classmethod: bound to its class already

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        def counted_classmethod(cls: Any, *args: Any, **kwargs: Any) -> Any:
            return counted(*args, **kwargs)

        if isinstance(owner.__dict__[name], classmethod):
            monkeypatch.setattr(owner, name, classmethod(counted_classmethod))
        else:
            monkeypatch.setattr(owner, name, counted)


class Two:
    """Alice (whose cache is under test) and Bob, sharing one room by copying updates."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.alice = Workspace(tmp_path / "alice", clock=self.clock)
        self.bob = Workspace(tmp_path / "bob", clock=self.clock)
        self.room, invite = self.alice.create_room("Watched room")
        self.bob_room = self.bob.join_room(invite.code)
        self.to_bob()
        self.to_alice()

    def _deliver(self, source: Workspace, target: Workspace) -> None:
        src = source.document(self.room.room_id, kind=ROOM_KIND)
        dst = target.document(self.room.room_id, kind=ROOM_KIND)
        dst.apply_remote(src.encode_update(dst.state_vector()), origin="peer", now=self.clock.now())

    def to_alice(self) -> None:
        self._deliver(self.bob, self.alice)

    def to_bob(self) -> None:
        self._deliver(self.alice, self.bob)

    def bob_posts(self, text: str) -> str:
        self.clock.advance(1)  # newest first, in the order written
        post_id = self.bob.board(self.bob_room).post(text, now=self.clock.now())
        self.to_alice()
        return post_id

    def bob_forges(self, author: Identity, body: str, *, post_id: str = "forged") -> None:
        """Bob writes a post claiming ``author``, signed with his own key."""
        self.clock.advance(1)
        fields = {
            "post_id": post_id,
            "author": author.user_id,
            "body": body,
            "created_at": self.clock.now(),
            "edited_at": None,
            "deleted": False,
        }
        sig = sign_record(
            self.bob.identity, kind="post", fields={"room_id": self.room.room_id, **fields}
        )
        pk = author.public.to_dict()["sign_public"]
        doc = self.bob.document(self.room.room_id, kind=ROOM_KIND)
        with doc.edit(now=self.clock.now()):
            doc.map("posts")[post_id] = {**fields, "pk": pk, "sig": sig}
        self.to_alice()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Two]:
    pair = Two(tmp_path)
    yield pair
    pair.alice.close()
    pair.bob.close()


def test_the_board_is_read_again_only_when_its_part_of_the_room_changed(
    two: Two, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        two.bob_posts(f"post {n}")
    reads = Counter(monkeypatch, board_module.Board, "posts")
    cache = RoomCache(two.alice)
    room = two.room

    def posts(of: Room = room) -> tuple[Post, ...]:
        return cache.page(of, 10)[0]

    first = cache.page(room, 10)
    assert len(first[0]) == 5 and first[1] == 5
    assert reads.calls == 1

    # The timer and the settings live in the same document, but not on the board.
    room.timer_command(Command.START, now=two.clock.now())
    room.update_settings(now=two.clock.now(), focus_min=30)
    assert cache.page(room, 10) is first
    assert cache.page(Room(room.document, me=room.me), 10) is first  # any Room over the document
    assert reads.calls == 1

    two.bob_posts("news")  # a post, a like, a comment, a member: each is read once
    assert [p.body for p in posts()][:2] == ["news", "post 4"]
    two.alice.board(room).like(first[0][0].post_id, now=two.clock.now())
    assert posts()[1].liked_by_me
    two.bob.board(two.bob_room).comment(first[0][1].post_id, "a comment", now=two.clock.now())
    two.to_alice()
    assert posts()[2].comments[0].body == "a comment"
    two.bob_room.join(my_name="Robert", now=two.clock.now())  # his name in the room changes
    two.to_alice()
    assert {p.author_name for p in posts()} == {"Robert"}
    assert cache.page(room, 10) is cache.page(room, 10)
    assert reads.calls == 5
    assert [p.body for p in cache.page(room, 2)[0]] == ["news", "post 4"]  # another page size
    assert reads.calls == 6


def test_a_document_rebuilt_from_the_store_is_read_again(
    two: Two, monkeypatch: pytest.MonkeyPatch
) -> None:
    two.bob_posts("before")
    cache = RoomCache(two.alice)
    before = cache.page(two.room, 10)
    document = two.alice.document(two.room.room_id, kind=ROOM_KIND)

    def failing_edit() -> None:
        with document.edit(now=two.clock.now()):
            document.map("posts")["half"] = {"body": "never saved"}
            raise RuntimeError("the edit fails: the document is reloaded from the store")

    with pytest.raises(RuntimeError):
        failing_edit()
    after = cache.page(two.room, 10)
    assert after is not before  # a new pycrdt document: nothing cached from the old one holds
    assert [p.body for p in after[0]] == ["before"]
    two.bob_posts("later")  # and the new document is observed too
    assert [p.body for p in cache.page(two.room, 10)[0]] == ["later", "before"]


def test_timer_inputs_are_read_again_only_when_meta_settings_or_timer_changed(
    two: Two, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Counter(monkeypatch, room_module.RoomSettings, "read")
    cache = RoomCache(two.alice)
    room = two.room
    now = two.clock.now()

    def reads_by(action: Any) -> int:
        """How many times the cache parsed the room's settings while doing ``action``."""
        before = settings.calls
        action()
        return settings.calls - before

    idle = cache.timer_view(room, now=now)
    assert reads_by(lambda: cache.timer_view(room, now=now + 60)) == 0
    assert cache.timer_view(room, now=now + 60) is idle  # a stopped timer: time does not move it
    two.bob_posts("not about the timer")
    assert reads_by(lambda: cache.timer(room)) == 0

    room.timer_command(Command.START, now=now)
    assert reads_by(lambda: cache.timer_view(room, now=now + 60)) == 1
    running = cache.timer_view(room, now=now + 60)
    assert running.status is Status.RUNNING
    assert running.remaining_s == 24 * 60
    assert reads_by(lambda: cache.timer_view(room, now=now + 120)) == 0
    assert cache.timer_view(room, now=now + 120).remaining_s == 23 * 60  # worked out again
    room.update_settings(now=now, name="Renamed room")
    assert reads_by(lambda: cache.timer(room)) == 1
    assert cache.timer(room).name == "Renamed room"


def test_the_room_list_and_tasks_are_read_again_only_after_a_commit(
    two: Two, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws = two.alice
    cache = RoomCache(ws)
    assert cache.sync()
    assert cache.room_ids == {two.room.room_id}
    listing = Counter(monkeypatch, Store, "active_room_ids")
    tasks = Counter(monkeypatch, workspace_module.Workspace, "current_task")
    assert cache.current_task(two.room) == ""
    for _ in range(5):
        assert not cache.sync()
        assert cache.current_task(two.room) == ""
    assert (listing.calls, tasks.calls) == (0, 1)

    ws.set_current_task(two.room, "Write the report")  # through our own connection
    assert not cache.sync()  # the rooms are the same...
    assert cache.current_task(two.room) == "Write the report"  # ...the task is read again
    assert (listing.calls, tasks.calls) == (1, 2)

    other = Workspace(ws.profile_dir, clock=two.clock)  # a CLI command on the same profile
    try:
        other.set_current_task(other.find_room(two.room.room_id), "Proofread")
        created, _ = other.create_room("Made elsewhere")
    finally:
        other.close()
    assert cache.sync()
    assert cache.room_ids == {two.room.room_id, created.room_id}
    assert cache.current_task(two.room) == "Proofread"


def test_the_store_version_moves_with_every_commit_from_anywhere(two: Two) -> None:
    ws = two.alice
    before = store_version(ws.store)
    assert store_version(ws.store) == before  # reading changes nothing
    ws.set_current_task(two.room, "Ours")
    ours = store_version(ws.store)
    assert ours != before
    other = Store(ws.store.path)
    try:
        other.put_setting("from-elsewhere", 1)
    finally:
        other.close()
    assert store_version(ws.store) != ours


def test_post_events_say_whether_their_author_is_verified_and_forgeries_of_us_are_news(
    two: Two, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Event] = []
    reporter = BoardAndTimerReporter(two.alice, events.append)
    reporter.check(None, announce=False)
    reads = Counter(monkeypatch, board_module.Board, "read_post")
    post_id = two.bob_posts("genuine")
    carol = Identity.generate()
    two.bob_forges(carol, "claims to be Carol")
    reporter.check({two.room.room_id})
    posts = [e for e in events if e["event"] == "post_received"]
    assert [(e["body"], e["verified"]) for e in posts] == [
        ("claims to be Carol", False),
        ("genuine", True),
    ]
    two.bob.board(two.bob_room).comment(post_id, "hi", now=two.clock.now())
    two.to_alice()
    two.alice.board(two.room).comment(post_id, "mine", now=two.clock.now())
    two.bob_forges(two.alice.identity, "claims to be Alice", post_id="forged-alice")
    events.clear()
    reporter.check({two.room.room_id})
    assert sorted((e["event"], e["body"], e["verified"]) for e in events) == [
        ("comment_received", "hi", True),
        ("post_received", "claims to be Alice", False),  # not ours, whatever it says
    ]
    assert reads.calls == 4  # only posts with news: two new, then one commented and one new

    room = two.room
    room.timer_command(Command.START, now=two.clock.now())
    events.clear()
    reporter.check({room.room_id})  # the document changed, but not its board
    assert [e["event"] for e in events] == ["timer_phase"]
    assert reads.calls == 4
