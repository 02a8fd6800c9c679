"""The app's loop stays free: nothing is read again that did not change, and hidden pages rest.

Spies count the expensive reads (verified board reads, SQL queries, room settings, message
histories) and the redraws; nothing here measures time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from focusmate import board as board_module
from focusmate.clock import FakeClock
from focusmate.inbox import Inbox
from focusmate.room import RoomSettings
from focusmate.store import Store
from focusmate.timer import Command
from focusmate.workspace import Workspace
from tests.ui.uikit import RoomPair, run, running, session, until, workspace
from ui.viewmodels.app import AppViewModel
from ui.viewmodels.board import BoardViewModel
from ui.viewmodels.messages import MessagesViewModel
from ui.widgets.board_view import BoardView


class Counter:
    """Counts the calls of a method of a class (every instance's), calling it through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.calls = 0
        original = getattr(owner, name)
        if isinstance(owner.__dict__[name], classmethod):

            def counted_classmethod(cls: Any, *args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return original(*args, **kwargs)

            monkeypatch.setattr(owner, name, classmethod(counted_classmethod))
            return

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def test_start_and_pause_neither_read_nor_redraw_the_board(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = RoomPair(tmp_path)
    for n in range(30):
        pair.clock.advance(1)
        pair.bob_posts(f"post {n}")
    reads = Counter(monkeypatch, board_module.Board, "posts")
    s = session(pair.alice)
    vm = BoardViewModel(s, pair.room_id)
    view = BoardView(vm)
    qtbot.addWidget(view)
    view.show()
    redraws: list[None] = []
    vm.changed.connect(lambda: redraws.append(None))
    changed: list[str] = []
    s.roomChanged.connect(changed.append)
    posted: list[dict[str, Any]] = []
    s.postReceived.connect(posted.append)

    async def scenario() -> None:
        async with running(s):
            assert reads.calls == 1  # the view-model's first page
            for command in (Command.START, Command.PAUSE, Command.RESUME):
                changed.clear()
                await s.timer_command(pair.room_id, command)
                await until(lambda: pair.room_id in changed, f"the room changed by {command}")
                s.tick()  # the watcher checks the boards of changed rooms
            assert reads.calls == 1
            assert redraws == []

            pair.clock.advance(1)
            pair.bob_posts("news")
            await until(lambda: vm.snapshot.posts[0].body == "news", "Bob's post on the board")
            s.tick()
            assert [(e["body"], e["verified"]) for e in posted] == [("news", True)]
            assert reads.calls == 2  # one page read; the watcher read the new post alone
            assert len(redraws) == 1

    run(qloop, scenario())


def test_an_idle_tick_asks_the_store_one_question_and_reads_no_room(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "me", clock=clock)
    rooms = [ws.create_room(f"Room {n:02d}")[0] for n in range(12)]
    for room in rooms[::2]:
        room.timer_command(Command.START, now=clock.now())
    s = session(ws)
    app = AppViewModel(s)
    s.tick()  # the first tick records where each timer stands (writes)...
    s.tick()  # ...so the next one reads the rooms and tasks again, once
    queries = Counter(monkeypatch, Store, "_read")
    listing = Counter(monkeypatch, Store, "active_room_ids")
    tasks = Counter(monkeypatch, Workspace, "current_task")
    settings = Counter(monkeypatch, RoomSettings, "read")
    boards = Counter(monkeypatch, board_module.Board, "posts")
    for _ in range(10):
        clock.advance(1)
        s.tick()
    assert queries.calls == 10  # has anything been committed? once a tick
    assert (listing.calls, tasks.calls, settings.calls, boards.calls) == (0, 0, 0, 0)
    rows = {row.name: row for row in app.rooms.rows()}
    assert rows["Room 00"].summary == "Focus · 24:50"  # running timers still count down
    assert rows["Room 01"].summary == "Focus · ready"

    # What changes in the store is noticed at the next tick: here, or by another process.
    announced = s.presence_keeper.announced
    ws.set_current_task(rooms[0], "Write the report")  # as the room page does
    s.tick()
    assert announced[rooms[0].room_id] == ("focusing", "Write the report")
    rooms_changed: list[None] = []
    s.roomsChanged.connect(lambda: rooms_changed.append(None))
    other = Workspace(ws.profile_dir, clock=clock)  # a CLI command on the same profile
    try:
        other.set_current_task(other.find_room(rooms[2].room_id), "Proofread")
        other.create_room("Made elsewhere")
    finally:
        other.close()
    listed = listing.calls
    s.tick()
    assert announced[rooms[2].room_id] == ("focusing", "Proofread")
    assert rooms_changed == [None]
    assert "Made elsewhere" in {row.name for row in app.rooms.rows()}
    assert listing.calls == listed + 1  # read again once


def test_the_message_list_ignores_timer_and_board_changes_and_hidden_history_is_not_read(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = RoomPair(tmp_path)
    s = session(pair.alice)
    vm = MessagesViewModel(s)  # its page is not shown
    summaries = Counter(monkeypatch, Inbox, "summaries")
    histories = Counter(monkeypatch, Inbox, "conversation")
    changed: list[str] = []
    s.roomChanged.connect(changed.append)

    async def scenario() -> None:
        async with running(s):
            vm.open(pair.bob.user_id)
            assert (summaries.calls, histories.calls) == (1, 0)
            assert vm.current is None  # read once the page shows

            await s.timer_command(pair.room_id, Command.START)
            pair.bob_posts("a post, not a message")
            await until(lambda: pair.room_id in changed, "the room's change")
            assert not vm._pending.isActive()  # no refresh was even scheduled
            assert summaries.calls == 1

            pair.bob.inbox.send(pair.bob.contact("Alice"), "Lunch?")
            pair.alice.inbox.receive(pair.bob.inbox.queued()[-1])
            s.messagesChanged.emit()
            await until(lambda: vm.unread_total == 1, "the unread badge")
            assert (summaries.calls, histories.calls) == (2, 0)
            assert vm.conversations[0].preview == "Lunch?"

            vm.set_visible(True)
            assert vm.current is not None
            assert [m.text for m in vm.current.messages] == ["Lunch?"]
            assert vm.unread_total == 0
            assert histories.calls == 1

            changed.clear()
            pair.bob_room.join(my_name="Robert", now=pair.clock.now())  # a member changed
            pair.to_alice()
            await until(lambda: vm.conversations[0].name == "Robert", "Bob's new name")

    run(qloop, scenario())


def test_a_hidden_board_rests_and_catches_up_when_shown(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = RoomPair(tmp_path)
    pair.bob_posts("earlier")
    s = session(pair.alice)
    vm = BoardViewModel(s, pair.room_id)
    reads = Counter(monkeypatch, board_module.Board, "posts")
    redraws: list[None] = []
    vm.changed.connect(lambda: redraws.append(None))
    arrivals: list[int] = []
    vm.arrived.connect(arrivals.append)
    changed: list[str] = []
    s.roomChanged.connect(changed.append)

    async def scenario() -> None:
        async with running(s):
            vm.set_active(False)  # the window shows another page
            pair.clock.advance(5 * 60)
            s.tick()
            pair.bob_posts("while away")
            await until(lambda: pair.room_id in changed, "the room's change")
            s.tick()  # the watcher reads the new post alone (to notify)...
            assert reads.calls == 0
            assert redraws == []  # ...the hidden board neither redraws nor reads
            assert [p.body for p in vm.snapshot.posts] == ["earlier"]
            assert vm.snapshot.posts[0].time_text == "just now"

            vm.set_active(True)
            assert len(redraws) == 1  # one redraw, with the new post and the new times
            assert [(p.body, p.time_text) for p in vm.snapshot.posts] == [
                ("while away", "just now"),
                ("earlier", "5 min ago"),
            ]
            assert arrivals == [1]
            assert reads.calls == 1  # the page, read once on showing

    run(qloop, scenario())
