"""The room screen: the countdown and its buttons, people and tasks, invite and settings."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractButton, QDialog, QDialogButtonBox, QLabel
from pytestqt.qtbot import QtBot

from focusmate.clock import FakeClock
from focusmate.invite import parse_invite
from focusmate.timer import Command, Phase, Status
from focusmate.workspace import Workspace
from sync.ysync import AwarenessEntry, AwarenessMessage
from tests.ui.uikit import run, session, until, workspace
from ui.session import Session
from ui.theme import phase_color
from ui.viewmodels.room import RoomViewModel, TimerSnapshot
from ui.widgets.countdown import CountdownWidget
from ui.widgets.room_page import RoomPage


def _page(qtbot: QtBot, s: Session, room_id: str) -> tuple[RoomViewModel, RoomPage]:
    vm = RoomViewModel(s, room_id)
    page = RoomPage(vm)
    qtbot.addWidget(page)
    page.resize(900, 600)
    page.show()
    return vm, page


def _shown(page: RoomPage) -> set[Command]:
    return {command for command, button in page.buttons.items() if not button.isHidden()}


def _click(qtbot: QtBot, button: QAbstractButton) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _run_session(
    qloop: asyncio.AbstractEventLoop, s: Session, body: Callable[[], Awaitable[None]]
) -> None:
    async def scenario() -> None:
        await s.start()
        try:
            await body()
        finally:
            await s.stop()

    run(qloop, scenario())


def test_start_counts_down_and_each_command_changes_the_buttons_shown(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "me", clock=clock, name="Ada")
    room, _ = ws.create_room("Deep work")
    s = session(ws)
    vm, page = _page(qtbot, s, room.room_id)

    async def press(command: Command, status: Status) -> None:
        _click(qtbot, page.buttons[command])
        await until(lambda: vm.timer.status is status, f"the timer to be {status} after {command}")

    async def body() -> None:
        assert page.countdown.centre_text() == "25:00"
        assert _shown(page) == {Command.START, Command.SKIP}  # nothing to reset yet

        await press(Command.START, Status.RUNNING)
        assert (vm.timer.remaining_text, page.countdown.centre_text()) == ("25:00", "25:00")
        assert _shown(page) == {Command.PAUSE, Command.SKIP, Command.RESET}

        clock.advance(1)
        s.tick()
        assert (vm.timer.remaining_text, page.countdown.centre_text()) == ("24:59", "24:59")
        assert "24:59 left, running" in page.countdown.accessibleDescription()

        await press(Command.PAUSE, Status.PAUSED)
        assert _shown(page) == {Command.RESUME, Command.SKIP, Command.RESET}
        clock.advance(60)
        s.tick()
        assert page.countdown.centre_text() == "24:59"  # a paused timer does not move

        await press(Command.RESUME, Status.RUNNING)
        assert _shown(page) == {Command.PAUSE, Command.SKIP, Command.RESET}

        _click(qtbot, page.buttons[Command.SKIP])
        await until(lambda: vm.timer.phase is Phase.SHORT_BREAK, "the short break")
        assert page.countdown.centre_text() == "05:00"

        await press(Command.RESET, Status.IDLE)
        assert (vm.timer.phase, page.countdown.centre_text()) == (Phase.FOCUS, "25:00")
        assert _shown(page) == {Command.START, Command.SKIP}
        assert not page.error.isVisible()

    _run_session(qloop, s, body)


def _owner_and_member(tmp_path: Path, clock: FakeClock) -> tuple[Workspace, Workspace, str]:
    """Ada creates a room; Bea joins with its code; their stores swap the room's updates."""
    owner = workspace(tmp_path / "ada", clock=clock, name="Ada")
    member = workspace(tmp_path / "bea", clock=clock, name="Bea")
    room, invite = owner.create_room("Deep work")
    member.join_room(invite.code)
    ada_doc = owner.document(room.room_id, kind="room")
    bea_doc = member.document(room.room_id, kind="room")
    bea_doc.apply_remote(ada_doc.encode_update(), origin="peer", now=clock.now())
    ada_doc.apply_remote(bea_doc.encode_update(), origin="peer", now=clock.now())
    return owner, member, room.room_id


def test_only_the_owner_is_offered_the_room_settings(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    owner, member, room_id = _owner_and_member(tmp_path, clock)
    owner_vm, owner_page = _page(qtbot, session(owner), room_id)
    member_vm, member_page = _page(qtbot, session(member), room_id)

    assert owner_page.settings_button.isVisible()
    assert not member_page.settings_button.isVisible()
    assert member_page.title.text() == "Deep work"
    people = [member_page.people.item(i).text() for i in range(member_page.people.count())]
    assert people == ["Bea (you)\nIdle", "Ada · owner\nOffline"]
    assert owner_vm.is_owner
    assert not member_vm.is_owner
    assert member_vm.update_settings(focus_min=50) == (
        "Only the room's owner can change the room's settings."
    )
    assert member.find_room(room_id).settings.focus_min == 25


def test_your_task_is_announced_and_shown_beside_your_name(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "me", clock=clock, name="Ada")
    room, _ = ws.create_room("Deep work")
    s = session(ws)
    vm, page = _page(qtbot, s, room.room_id)

    async def body() -> None:
        qtbot.keyClicks(page.task, "Chapter 3 draft")
        qtbot.keyClick(page.task, Qt.Key.Key_Return)
        assert page.people.item(0).text() == "Ada (you) · owner\nIdle — Chapter 3 draft"
        assert s.presence_keeper.announced[room.room_id] == ("idle", "Chapter 3 draft")
        assert ws.current_task(ws.find_room(room.room_id)) == "Chapter 3 draft"

        _click(qtbot, page.buttons[Command.START])
        await until(lambda: vm.timer.status is Status.RUNNING, "the timer to run")
        s.tick()  # the keeper announces that we are focusing now
        assert page.people.item(0).text() == "Ada (you) · owner\nFocusing — Chapter 3 draft"

    _run_session(qloop, s, body)


def test_someone_elses_presence_shows_their_status_and_task(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    owner, member, room_id = _owner_and_member(tmp_path, clock)
    s = session(owner)
    _, page = _page(qtbot, s, room_id)
    assert page.people.item(1).text() == "Bea\nOffline"
    state = {
        "user_id": member.user_id,
        "name": "Bea",
        "status": "focusing",
        "task": "Tax\u202eform",
    }

    async def body() -> None:
        s.engine.awareness_received(
            room_id, AwarenessMessage((AwarenessEntry(7, 1, state),)), link=None
        )
        await until(lambda: page.people.item(1).text() != "Bea\nOffline", "Bea's presence")
        assert page.people.item(1).text() == "Bea\nFocusing — Taxform"  # bidi override dropped

    _run_session(qloop, s, body)


def test_the_invite_dialog_copies_a_code_that_opens_the_room(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", name="Ada")
    room, invite = ws.create_room("Deep work")
    _, page = _page(qtbot, session(ws), room.room_id)
    QGuiApplication.clipboard().setText("something else")

    _click(qtbot, page.invite_button)
    dialog = page.invite_dialog
    assert dialog is not None
    assert dialog.isVisible()
    assert dialog.code.text() == invite.code
    assert dialog.link.text().startswith("focusmate://join/" + invite.code)
    _click(qtbot, dialog.copy_code)
    assert QGuiApplication.clipboard().text() == invite.code
    assert parse_invite(QGuiApplication.clipboard().text()).room_id == room.room_id
    assert dialog.status.text() == "Code copied to the clipboard."
    _click(qtbot, dialog.copy_link)
    assert parse_invite(QGuiApplication.clipboard().text()).room_id == room.room_id


def test_room_settings_refuse_a_zero_minute_focus_and_accept_fifty(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", name="Ada")
    room, _ = ws.create_room("Deep work")
    vm, page = _page(qtbot, session(ws), room.room_id)

    _click(qtbot, page.settings_button)
    dialog = page.settings_dialog
    assert dialog is not None
    dialog.focus.setValue(0)
    dialog.name.setText("Deep focus")
    _click(qtbot, dialog.buttons.button(QDialogButtonBox.StandardButton.Ok))
    assert dialog.isVisible()
    assert dialog.error.isVisible()
    assert dialog.error.text() == "Focus must last 1–60 minutes."
    assert ws.find_room(room.room_id).settings.focus_min == 25

    dialog.focus.setValue(50)
    _click(qtbot, dialog.buttons.button(QDialogButtonBox.StandardButton.Ok))
    assert not dialog.isVisible()
    assert dialog.result() == QDialog.DialogCode.Accepted
    saved = ws.find_room(room.room_id).settings
    assert (saved.name, saved.focus_min, saved.short_break_min) == ("Deep focus", 50, 5)
    assert page.title.text() == "Deep focus"
    assert page.countdown.centre_text() == "50:00"
    assert vm.timer.remaining_text == "50:00"


def test_leaving_asks_first_and_then_leaves(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", name="Ada")
    room, _ = ws.create_room("Deep work")
    vm, page = _page(qtbot, session(ws), room.room_id)
    left: list[bool] = []
    vm.left.connect(lambda: left.append(True))

    def answer(text: str) -> None:
        _click(qtbot, page.leave_button)
        box = page.leave_box
        assert box is not None
        assert box.isVisible()
        button = next(b for b in box.buttons() if b.text() == text)
        _click(qtbot, button)

    answer("Cancel")
    assert not left
    assert room.room_id in ws.store.active_room_ids()
    answer("Leave")
    assert left == [True]
    assert room.room_id not in ws.store.active_room_ids()


def _snapshot(status: Status, progress: float) -> TimerSnapshot:
    return TimerSnapshot(
        phase=Phase.FOCUS,
        status=status,
        remaining_s=1500 * (1 - progress),
        progress=progress,
        round=2,
        rounds_before_long=4,
        remaining_text="25:00",
        commands=frozenset(),
    )


def test_the_countdown_drains_in_the_phase_colour_only_while_running(qtbot: QtBot) -> None:
    widget = CountdownWidget()
    qtbot.addWidget(widget)
    widget.resize(300, 300)
    assert widget.heightForWidth(300) == 300

    def ring_at_3_and_9(snapshot: TimerSnapshot) -> tuple[str, str]:
        """The ring's colour at three and at nine o'clock (its centre line is 16.5 px in)."""
        widget.set_snapshot(snapshot)
        image = widget.grab().toImage()
        assert not image.isNull()
        ratio = image.devicePixelRatio()
        three = image.pixelColor(round(283.5 * ratio), round(150 * ratio))
        nine = image.pixelColor(round(16.5 * ratio), round(150 * ratio))
        return three.name(), nine.name()

    dark = widget.palette().color(widget.backgroundRole()).lightness() < 128
    focus = phase_color(Phase.FOCUS, dark=dark).name()
    assert ring_at_3_and_9(_snapshot(Status.RUNNING, 0.0)) == (focus, focus)
    assert widget.centre_text() == "25:00"
    assert "Focus, round 2 of 4, 25:00 left, running" in widget.accessibleDescription()
    three, nine = ring_at_3_and_9(_snapshot(Status.RUNNING, 0.5))
    assert (three != focus, nine) == (True, focus)  # the first half, 12 to 6, is spent
    assert focus not in ring_at_3_and_9(_snapshot(Status.PAUSED, 0.0))  # a quieter colour


def test_the_page_fits_900_by_600_beside_a_board(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    owner, _, room_id = _owner_and_member(tmp_path, clock)
    s = session(owner)
    vm = RoomViewModel(s, room_id)
    board = QLabel("The board goes here")
    page = RoomPage(vm, board)
    qtbot.addWidget(page)
    page.resize(900, 600)
    page.show()

    async def body() -> None:
        _click(qtbot, page.buttons[Command.START])
        await until(lambda: vm.timer.status is Status.RUNNING, "the timer to run")
        clock.advance(7 * 60 + 12)
        s.tick()
        assert page.countdown.centre_text() == "17:48"
        assert not page.grab().toImage().isNull()

    _run_session(qloop, s, body)
    inside = page.rect()
    for widget in (page.countdown, page.people, page.task, page.leave_button, board):
        corner = widget.mapTo(page, widget.rect().bottomRight())
        assert widget.isVisible() and inside.contains(corner), widget.accessibleName()
    minimum = page.countdown.minimumSizeHint()
    assert page.countdown.width() >= minimum.width()
    assert page.countdown.height() >= minimum.height()
    assert board.width() > page.countdown.width() / 2


def test_the_countdown_never_runs_backwards_when_the_clock_steps_back(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    """The wall clock steps back two minutes mid-focus: the countdown slows down, then keeps
    the timebase's pace again; it never shows more time left than a moment before."""
    clock = FakeClock()
    steady = FakeClock(0.0)  # the monotonic clock, which no one can set back
    ws = workspace(tmp_path / "me", clock=clock, name="Ada")
    room, _ = ws.create_room("Deep work")
    s = session(ws, monotonic=steady.now)
    vm, page = _page(qtbot, s, room.room_id)

    async def body() -> None:
        _click(qtbot, page.buttons[Command.START])
        await until(lambda: vm.timer.status is Status.RUNNING, "the timer to run")
        shown: list[float] = []
        for second in range(400):
            if second == 60:
                clock.set(clock.now() - 120)
            clock.advance(1)
            steady.advance(1)
            s.tick()
            shown.append(vm.timer.remaining_s)
        steps = [before - after for before, after in itertools.pairwise(shown)]
        assert min(steps) > 0  # always counting down, if slowly for a while
        assert steps[-1] == 1.0  # back at the timebase's pace
        assert page.countdown.centre_text() == vm.timer.remaining_text

    _run_session(qloop, s, body)
