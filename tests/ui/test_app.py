"""The whole app, offscreen: first run, two windows focusing together through a real relay,
the keyboard, notices and do-not-disturb, and stats after a completed session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QDialog, QLineEdit, QPlainTextEdit, QWidget
from pytestqt.qtbot import QtBot

from focusmate.clock import FakeClock, SystemClock
from focusmate.settings import Settings
from focusmate.timer import Status
from focusmate.workspace import Workspace
from sync.engine_lock import AlreadyRunningError
from tests.integration.relaykit import running_relay
from tests.ui.uikit import run, session, until, workspace
from ui.app import build_window, open_workspace
from ui.launcher import display_problem
from ui.session import Session
from ui.widgets.main_window import MainWindow
from ui.widgets.room_dialogs import JoinRoomDialog
from ui.widgets.room_page import RoomPage
from ui.widgets.sidebar import MESSAGES, STATS

UTC = ZoneInfo("UTC")


def window(s: Session, qtbot: QtBot, tmp_path: Path) -> MainWindow:
    w = build_window(s, tz=UTC, cache_dir=tmp_path / f"cache-{id(s)}", tray=False)
    qtbot.addWidget(w)
    w.show()
    return w


def control(root: QWidget, kind: type[QWidget], name: str) -> QWidget:
    """The visible control of ``kind`` with accessible name ``name`` under ``root``."""
    found = [
        w for w in root.findChildren(kind) if w.accessibleName() == name and w.isVisibleTo(root)
    ]
    assert found, f"no visible {kind.__name__} named {name!r}"
    return found[0]


def click(root: QWidget, name: str) -> None:
    button = control(root, QAbstractButton, name)
    assert isinstance(button, QAbstractButton)
    button.click()


def type_into(root: QWidget, name: str, text: str) -> None:
    field = control(root, QPlainTextEdit, name)
    assert isinstance(field, QPlainTextEdit)
    field.setPlainText(text)


def room_page(w: MainWindow) -> RoomPage:
    page = w.content.currentWidget()
    assert isinstance(page, RoomPage)
    return page


def test_first_run_asks_for_a_name_then_opens_the_main_window(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "new")
    w = window(session(ws), qtbot, tmp_path)
    assert w.root.currentWidget() is w.first_run
    name = control(w.first_run, QLineEdit, "Your display name")
    assert isinstance(name, QLineEdit)
    name.setText("   ")
    click(w.first_run, "Get started")
    assert w.root.currentWidget() is w.first_run  # a blank name is refused, with a reason
    assert w.first_run.error.isVisible() and w.first_run.error.text()
    name.setText("Robin")
    click(w.first_run, "Get started")
    assert w.root.currentWidget() is w.main
    assert ws.display_name == "Robin" and ws.onboarded
    assert build_window(session(ws), tz=UTC, cache_dir=tmp_path / "c2", tray=False).vm.onboarded


def test_two_apps_focus_together_through_a_relay(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    """Alice creates a room, Bob joins by its code; one Start shows the same countdown in both
    windows; a post and a direct message arrive, and Bob sees his message read."""

    async def scenario() -> None:
        async with running_relay(tmp_path / "relay") as relay:
            url = f"ws://127.0.0.1:{relay.port}"
            people = {}
            for name in ("Alice", "Bob"):
                ws = workspace(tmp_path / name, clock=SystemClock(), name=name)
                ws.mark_onboarded()
                people[name] = session(ws, relays=(url,))
            alice_s, bob_s = people["Alice"], people["Bob"]
            for s in people.values():
                await s.start()
            try:
                alice, bob = (window(s, qtbot, tmp_path) for s in (alice_s, bob_s))
                room_id = alice.vm.create_room("Pairing")
                assert room_id is not None and alice.current_room() is not None
                invite = room_page(alice).vm.invite()
                assert invite is not None
                assert bob.vm.join_room(invite.code) == room_id
                await until(lambda: room_page(bob).vm.room.arrived, "the room reaching Bob")
                assert room_page(bob).title.text().startswith("Pairing")

                click(room_page(alice), "Start")
                await until(
                    lambda: room_page(bob).vm.timer.status is Status.RUNNING, "Bob's countdown"
                )
                a, b = room_page(alice).vm.timer, room_page(bob).vm.timer
                assert abs(a.remaining_s - b.remaining_s) < 0.5  # one timer, one timebase
                await until(lambda: "Pairing" in bob.windowTitle(), "the time in Bob's title")

                type_into(room_page(alice), "New post text", "Pairing on the parser, join us")
                click(room_page(alice), "Post")
                await until(
                    lambda: (
                        [p.body for p in bob.board_models[room_id].snapshot.posts]
                        == ["Pairing on the parser, join us"]
                    ),
                    "Alice's post on Bob's board",
                )

                bob.show_page(MESSAGES)
                bob.models.messages.open(alice_s.workspace.user_id)
                type_into(bob.messages_page, "Message", "Coffee after this round?")
                click(bob.messages_page, "Send message")
                await until(lambda: alice.models.messages.unread_total == 1, "Alice's badge")
                assert "(1)" in alice.sidebar.messages_item.text()
                alice.show_page(MESSAGES)
                alice.models.messages.open(bob_s.workspace.user_id)
                assert alice.models.messages.unread_total == 0
                await until(lambda: _last_state(bob, alice_s) == "read", "Bob's message read")
            finally:
                for s in people.values():
                    await s.stop()

    run(qloop, scenario())


def _last_state(w: MainWindow, peer: Session) -> str:
    messages = w.models.app.session.workspace.inbox.conversation(peer.workspace.user_id)
    return messages[-1].state if messages else ""


def test_space_runs_a_session_that_lands_in_the_stats_with_a_notice_and_a_chime(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "solo", clock=clock, name="Sol")
    ws.mark_onboarded()
    room, _ = ws.create_room("Solo")
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = window(s, qtbot, tmp_path)
            w.show_room(room.room_id)
            w.activateWindow()
            await until(w.isActiveWindow, "the window active")
            qtbot.keyClick(w.sidebar.rooms, Qt.Key.Key_Space)  # the Timer menu's Start / Pause
            await until(lambda: room_page(w).vm.timer.status is Status.RUNNING, "started")
            s.tick()
            assert w.windowTitle().startswith("25:00 · Focus · Solo")
            clock.advance(25 * 60 + 1)
            s.tick()
            assert room_page(w).vm.timer.phase_label == "Short break"
            assert w.banner.isVisible() and w.banner.title.text() == "Short break"
            assert w.models.chimes is not None and w.models.chimes.played[-1] == "break"
            w.show_page(STATS)
            stats = w.models.stats
            await until(lambda: stats.snapshot.today.minutes == 25, "25 minutes in today's stats")
            assert stats.snapshot.today.sessions == 1
        finally:
            await s.stop()

    run(qloop, scenario())


def test_do_not_disturb_holds_messages_during_focus_until_the_break(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "busy", clock=clock, name="Busy")
    ws.mark_onboarded()
    ws.save_settings(Settings(do_not_disturb=True, sound_enabled=False))
    room, _ = ws.create_room("Quiet")
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = window(s, qtbot, tmp_path)
            w.show_room(room.room_id)
            await room_page(w).vm.toggle()
            s.tick()
            s.dmReceived.emit({"event": "dm_received", "id": "m1", "from": "X", "text": "psst"})
            assert not w.banner.isVisible()  # held: nothing interrupts the focus
            clock.advance(25 * 60 + 1)
            s.tick()  # the break begins: the phase notice, then what was held
            shown = [w.banner.title.text()]
            while w.banner._queue:
                w.banner.next()
                shown.append(w.banner.title.text())
            assert shown[0] == "Short break"
            assert any(t.startswith("Message from") for t in shown)
        finally:
            await s.stop()

    run(qloop, scenario())


def test_the_app_explains_when_there_is_no_display() -> None:
    assert display_problem({}, "linux").startswith("There is no display")
    assert display_problem({"DISPLAY": ":0"}, "linux") == ""
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") == ""
    assert display_problem({}, "darwin") == ""


def test_a_second_app_on_one_profile_is_refused(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    ws = Workspace(tmp_path / "p", clock=SystemClock())
    first, second = session(ws), session(ws)

    async def scenario() -> None:
        await first.start()
        try:
            with pytest.raises(AlreadyRunningError, match="already running"):
                await second.start()
        finally:
            await first.stop()

    run(qloop, scenario())


def test_a_room_offered_on_the_lan_is_joined_from_the_join_dialog(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    async def scenario() -> None:
        sessions = []
        for name in ("Alice", "Bob"):
            ws = workspace(tmp_path / name, clock=SystemClock(), name=name)
            ws.mark_onboarded()
            sessions.append(session(ws, lan=True))
        alice_s, bob_s = sessions
        for s in sessions:
            await s.start()
        try:
            alice, bob = (window(s, qtbot, tmp_path) for s in sessions)
            room_id = alice.vm.create_room("Open table")
            assert room_id is not None
            room_page(alice).open_invite()
            dialog = room_page(alice).invite_dialog
            offer = control(dialog, QAbstractButton, "Offer on my network")
            assert isinstance(offer, QAbstractButton)
            offer.click()  # opt in: until now the room was not visible on the LAN
            dialog.close()
            a, b = alice_s.engine, bob_s.engine
            assert a.lan is not None and b.lan is not None
            dialer, listener = sorted(sessions, key=lambda s: s.workspace.user_id)
            assert listener.engine.lan is not None
            dialer.engine.dial(listener.workspace.user_id, "127.0.0.1", listener.engine.lan.port)
            await until(lambda: bool(bob.vm.lan_offers()), "the offer at Bob")
            join = JoinRoomDialog(bob.vm, bob)
            qtbot.addWidget(join)
            click(join, "Join Open table")
            assert join.room_id == room_id
            await until(lambda: room_page(bob).vm.room.arrived, "the room over the LAN")
            assert room_page(bob).vm.room.name == "Open table"
        finally:
            for s in sessions:
                await s.stop()

    run(qloop, scenario())


def test_stepping_away_shows_as_away_in_every_room(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", name="Me")
    ws.mark_onboarded()
    rooms = [ws.create_room(name)[0] for name in ("One", "Two")]
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = window(s, qtbot, tmp_path)
            w.away_action.trigger()
            assert w.away_action.isChecked()
            for room in rooms:
                assert s.presence_keeper.announced[room.room_id][0] == "away"
            w.away_action.trigger()
            assert all(s.presence_keeper.announced[r.room_id][0] == "idle" for r in rooms)
        finally:
            await s.stop()

    run(qloop, scenario())


def test_a_room_that_waits_for_start_still_chimes_when_focus_ends_but_not_on_reset(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "manual", clock=clock, name="Manual")
    ws.mark_onboarded()
    room, _ = ws.create_room("By hand", auto_advance=False)
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = window(s, qtbot, tmp_path)
            w.show_room(room.room_id)
            vm = room_page(w).vm
            await vm.toggle()
            s.tick()
            clock.advance(25 * 60 + 1)
            s.tick()  # focus is over; the break waits for Start
            assert vm.timer.status is Status.IDLE and vm.timer.phase_label == "Short break"
            assert w.banner.title.text() == "Short break"
            assert w.models.chimes is not None and w.models.chimes.played[-1] == "break"
            heard = len(w.models.chimes.played)
            await vm.reset()
            s.tick()
            assert len(w.models.chimes.played) == heard  # a reset is not a phase ending
        finally:
            await s.stop()

    run(qloop, scenario())


def test_space_on_a_focused_button_presses_it_instead_of_starting_the_timer(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "keys", name="Keys")
    ws.mark_onboarded()
    room, _ = ws.create_room("Keyboard")
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = window(s, qtbot, tmp_path)
            w.show_room(room.room_id)
            w.activateWindow()
            await until(w.isActiveWindow, "the window active")
            page = room_page(w)
            page.invite_button.setFocus()
            qtbot.keyClick(page.invite_button, Qt.Key.Key_Space)
            await until(lambda: page.findChildren(QDialog), "the invite dialog")
            assert page.vm.timer.status is Status.IDLE  # the timer did not start
        finally:
            await s.stop()

    run(qloop, scenario())


def test_only_the_room_on_screen_keeps_redrawing(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "two", clock=clock, name="Two")
    ws.mark_onboarded()
    rooms = [ws.create_room(name)[0] for name in ("First", "Second")]
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = window(s, qtbot, tmp_path)
            w.show_room(rooms[0].room_id)
            await room_page(w).vm.toggle()  # the first room's timer runs
            w.show_room(rooms[1].room_id)
            first = w.room_models[rooms[0].room_id]
            redraws: list[int] = []
            first.timerChanged.connect(lambda: redraws.append(1))
            clock.advance(5)
            s.tick()
            assert redraws == []  # off screen: not re-read every tick
            w.show_room(rooms[0].room_id)
            assert redraws and first.timer.remaining_text == "24:55"  # caught up at once
        finally:
            await s.stop()

    run(qloop, scenario())


def test_with_a_tray_the_timer_and_its_controls_are_in_the_tray_and_closing_hides(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    """Desktops with a tray (not this offscreen one) get the remaining time and quick controls
    there, and closing the window keeps FocusMate running."""
    clock = FakeClock()
    ws = workspace(tmp_path / "tray", clock=clock, name="Tray")
    ws.mark_onboarded()
    room, _ = ws.create_room("Tray room")
    s = session(ws)

    async def scenario() -> None:
        await s.start()
        try:
            w = build_window(s, tz=UTC, cache_dir=tmp_path / "cache", tray=True)
            qtbot.addWidget(w)
            w.show()
            assert w.tray is not None
            menu = w.tray.contextMenu()
            assert menu is not None
            texts = [a.text() for a in menu.actions()]
            assert "&Start / Pause" in texts and "S&kip phase" in texts and "&Quit" in texts
            w.show_room(room.room_id)
            await room_page(w).vm.toggle()
            s.tick()
            assert w.tray.toolTip().startswith("25:00 · Focus · Tray room")
            quit_requests: list[bool] = []
            w.quitRequested.connect(lambda: quit_requests.append(True))
            w.tray.setVisible(True)
            if w.tray.isVisible():  # (only where the platform really shows a tray icon)
                w.close()
                assert not w.isVisible() and not quit_requests
        finally:
            await s.stop()

    run(qloop, scenario())


def test_a_sealed_key_is_opened_with_a_passphrase_asked_for_in_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No terminal behind a desktop launcher: the app itself asks, says when it is wrong, and
    a cancel opens nothing."""
    monkeypatch.delenv("FOCUSMATE_PASSPHRASE", raising=False)
    Workspace(tmp_path / "sealed", clock=SystemClock(), passphrase="correct horse").close()
    prompts: list[str] = []
    answers = iter(["wrong", "correct horse"])

    def ask(prompt: str) -> str | None:
        prompts.append(prompt)
        return next(answers)

    ws = open_workspace(tmp_path / "sealed", ask=ask)
    assert ws is not None
    ws.close()
    assert "is sealed" in prompts[0] and "does not open the key" in prompts[1]
    assert open_workspace(tmp_path / "sealed", ask=lambda prompt: None) is None
