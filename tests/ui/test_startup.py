"""Opening the app fast: what the first screen needs first, the rest when it is wanted.

A long board shows its newest posts at once and the rest right after; the Messages and Stats
pages, the dialogs and the chimes are made when first used and then work as always; the
window does not load the headless commands; an achievement earned in the app is still
announced, and one earned before it opened is not.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

import ui.app
from focusmate.clock import FakeClock
from focusmate.stats import FocusSession
from focusmate.timer import Command
from sync.engine_lock import EngineLock
from tests.ui.uikit import RoomPair, run, running, session, until, workspace
from ui.app import build_window, run_app
from ui.launcher import main, opens_app
from ui.session import Session
from ui.sound import ChimePlayer
from ui.viewmodels.board import PAGE, BoardViewModel
from ui.viewmodels.notices import NoticeCenter
from ui.widgets import board_view, main_window
from ui.widgets.board_view import FIRST_CARDS, BoardView
from ui.widgets.main_window import MainWindow
from ui.widgets.messages_page import MessagesPage
from ui.widgets.post_card import PostCard
from ui.widgets.sidebar import MESSAGES, STATS
from ui.widgets.stats_page import StatsPage

ROOT = Path(__file__).resolve().parents[2]
UTC = ZoneInfo("UTC")
MORNING = 1_767_258_000.0  # Thursday 2026-01-01 09:00 UTC


def shown_bodies(view: BoardView) -> list[str]:
    """The posts on the board, top to bottom, as far as their cards are on screen."""
    cards = [view._list.itemAt(i).widget() for i in range(view._list.count())]
    return [c.body.text() for c in cards if isinstance(c, PostCard) and c.isVisible()]


def focus_session(session_id: str, room_id: str, started_at: float) -> FocusSession:
    return FocusSession(
        session_id=session_id,
        room_id=room_id,
        started_at=started_at,
        duration_s=25 * 60,
        task="",
        completed=True,
    )


def window(s: Session, qtbot: QtBot, tmp_path: Path) -> MainWindow:
    w = build_window(s, tz=UTC, cache_dir=tmp_path / "cache", tray=False)
    qtbot.addWidget(w)
    w.show()
    return w


async def focus_then_break(s: Session, clock: FakeClock, room_id: str) -> None:
    await s.timer_command(room_id, Command.START)
    clock.advance(25 * 60 + 1)
    s.tick()  # the focus phase is over (and recorded just after it is announced)
    clock.advance(5 * 60)
    s.tick()  # the break is over


# -- the board ---------------------------------------------------------------------------------


def test_a_long_board_shows_its_newest_posts_first_and_the_rest_after_the_first_paint(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair = RoomPair(tmp_path)
    board = pair.alice.board(pair.room)
    for n in range(2 * PAGE):
        board.post(f"post {n}", now=pair.clock.now() + n)
    newest = [f"post {n}" for n in range(2 * PAGE - 1, -1, -1)]
    s = session(pair.alice)
    view = BoardView(BoardViewModel(s, pair.room_id))
    qtbot.addWidget(view)
    view.resize(520, 600)
    assert not view.cards  # nothing is built for a board nobody sees yet

    view.show()
    assert shown_bodies(view) == newest[:FIRST_CARDS]  # the first screenful, at once, in order

    async def scenario() -> None:
        await until(lambda: len(view.cards) == PAGE, "the rest of the first page")
        await until(lambda: len(shown_bodies(view)) == PAGE, "every card on screen")
        assert shown_bodies(view) == newest[:PAGE]
        assert view.more.isVisible()
        assert view.more.text() == f"Show older posts ({PAGE} more)"
        view.more.click()
        await until(lambda: len(shown_bodies(view)) == 2 * PAGE, "the older posts")
        assert shown_bodies(view) == newest
        assert not view.more.isVisible()

    run(qloop, scenario())


def test_scrolling_down_a_long_board_brings_the_next_posts_at_once(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(board_view, "PASS_GAP_MS", 3_600_000)  # no building in the background
    pair = RoomPair(tmp_path)
    board = pair.alice.board(pair.room)
    for n in range(PAGE):
        board.post(f"post {n}", now=pair.clock.now() + n)
    s = session(pair.alice)
    view = BoardView(BoardViewModel(s, pair.room_id))
    qtbot.addWidget(view)
    view.resize(520, 600)
    view.show()
    bar = view.feed.verticalScrollBar()

    async def scenario() -> None:
        await until(lambda: bar.maximum() > 0, "the first screenful laid out")
        built = len(view.cards)
        assert built < PAGE
        while len(view.cards) < PAGE:
            bar.setValue(bar.maximum())  # the user scrolls to the last post shown
            await until(lambda built=built: len(view.cards) > built, "the next posts")
            built = len(view.cards)
        await until(lambda: len(shown_bodies(view)) == PAGE, "every card on screen")
        assert shown_bodies(view)[-1] == "post 0"

    run(qloop, scenario())


def test_a_long_board_keeps_a_draft_while_the_rest_of_it_is_built(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair = RoomPair(tmp_path)
    for n in range(40):
        pair.clock.advance(60)
        pair.bob_posts(f"Older post {n}")
    s = session(pair.alice)
    view = BoardView(BoardViewModel(s, pair.room_id))
    qtbot.addWidget(view)
    view.show()
    qtbot.keyClicks(view.composer, "Typed before the board was complete")

    async def scenario() -> None:
        async with running(s):
            await until(lambda: len(view.cards) == 40, "every card")
            pair.clock.advance(60)
            pair.bob_posts("Brand new")
            await until(lambda: len(view.cards) == 41, "the new post")
            assert shown_bodies(view)[0] == "Brand new"
            assert view.composer.toPlainText() == "Typed before the board was complete"

    run(qloop, scenario())


# -- pages, chimes and notices ---------------------------------------------------------------


def test_the_messages_and_stats_pages_are_made_on_their_first_visit_and_work(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair = RoomPair(tmp_path)
    pair.clock.set(MORNING)
    pair.alice.mark_onboarded()
    pair.alice.stats().record([focus_session("s1", pair.room_id, MORNING - 3600)], now=MORNING)
    s = session(pair.alice)
    w = window(s, qtbot, tmp_path)
    assert not w.findChildren(MessagesPage) and not w.findChildren(StatsPage)

    w.show_page(STATS)
    (stats,) = w.findChildren(StatsPage)
    assert w.content.currentWidget() is stats is w.stats_page
    assert stats.today.figure.text() == "25 min"
    assert "1 of" in stats.unlocked_count.text()

    w.show_page(MESSAGES)
    (messages,) = w.findChildren(MessagesPage)
    assert w.content.currentWidget() is messages is w.messages_page
    assert [c.name for c in w.models.messages.conversations] == ["Bob"]
    w.models.messages.open(pair.bob.user_id)
    assert w.models.messages.current is not None  # read: the page is on screen

    async def scenario() -> None:
        async with running(s):
            w.show_page(STATS)
            w.show_page(MESSAGES)
            assert w.findChildren(StatsPage) == [stats]  # made once
            assert w.findChildren(MessagesPage) == [messages]

    run(qloop, scenario())


def test_the_chimes_are_made_when_first_needed(tmp_path: Path, qtbot: QtBot) -> None:
    cache = tmp_path / "cache"
    player = ChimePlayer(cache)
    assert not cache.exists() and not player.effects  # nothing written or loaded yet
    player.play("break", 0)  # muted: still nothing to load
    assert not cache.exists()
    player.play("focus", 60)
    assert (cache / "chime-focus.wav").is_file() and (cache / "chime-break.wav").is_file()
    if player.available:  # (QtMultimedia's system libraries are there)
        assert set(player.effects) == {"focus", "break"}
        assert list(player.played) == ["focus"]


def test_the_window_loads_the_chimes_soon_after_it_is_up(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main_window, "CHIMES_AFTER_MS", 100)
    ws = workspace(tmp_path / "me", name="Me")
    ws.mark_onboarded()
    w = window(session(ws), qtbot, tmp_path)
    chimes = w.models.chimes
    assert chimes is not None and not chimes.effects

    async def scenario() -> None:
        await until((tmp_path / "cache" / "chime-focus.wav").is_file, "the chimes")

    run(qloop, scenario())


def test_an_achievement_earned_in_the_app_is_announced_and_one_earned_before_is_not(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    clock = FakeClock(MORNING)
    fresh = workspace(tmp_path / "fresh", clock=clock, name="New")
    seasoned = workspace(tmp_path / "seasoned", clock=clock, name="Old")
    seasoned.stats().record([focus_session("earlier", "a-room", MORNING - 86_400)], now=MORNING)
    heard: dict[str, list[str]] = {}

    async def scenario() -> None:
        for ws in (fresh, seasoned):
            room, _ = ws.create_room("Focus")
            s = session(ws)
            notices = NoticeCenter(s, system_available=False, tz=UTC)
            titles = heard.setdefault(ws.display_name, [])
            notices.banner.connect(lambda title, _body, titles=titles: titles.append(title))
            async with running(s):
                await focus_then_break(s, clock, room.room_id)

    run(qloop, scenario())
    # (A session is recorded as its end is announced: what it unlocks is told with the next.)
    assert heard["New"] == ["Short break", "Time to focus", "Unlocked: First focus"]
    assert heard["Old"] == ["Short break", "Time to focus"]  # earned before the app opened


def test_an_achievement_earned_while_the_app_was_closed_is_not_announced(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    """The window is made before syncing starts, and starting records the focus that ended
    while the app was closed: what that unlocked is not news when the break ends."""
    clock = FakeClock(MORNING)
    ws = workspace(tmp_path / "me", clock=clock, name="Me")
    room, _ = ws.create_room("Focus")
    titles: list[str] = []

    async def scenario() -> None:
        earlier = session(ws)
        async with running(earlier):
            await earlier.timer_command(room.room_id, Command.START)
            earlier.tick()
        clock.advance(25 * 60 + 60)  # the app was closed when the focus ended, a minute ago
        s = session(ws)
        notices = NoticeCenter(s, system_available=False, tz=UTC)
        notices.banner.connect(lambda title, _body: titles.append(title))
        assert ws.stats().sessions() == []
        async with running(s):
            assert [x.completed for x in ws.stats().sessions()] == [True]  # recorded at start
            clock.advance(5 * 60)
            s.tick()  # the break is over

    run(qloop, scenario())
    assert titles == ["Time to focus"]


# -- the launcher ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "window"),
    [
        ([], True),
        (["app"], True),
        (["--profile", "p"], True),
        (["--profile=p", "app", "--no-lan"], True),
        (["--profile", "app", "daemon"], False),  # a profile named "app", then the daemon
        (["daemon"], False),
        (["doctor", "--no-lan"], False),
        (["room", "list"], False),
        (["-h"], False),
        (["app", "--help"], False),
        (["--version"], False),
        (["--profile"], False),
    ],
)
def test_the_launcher_knows_which_arguments_open_the_window(argv: list[str], window: bool) -> None:
    assert opens_app(argv) is window


def test_the_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for command in ("app", "daemon", "doctor", "room", "board"):
        assert command in listed


def test_the_window_opens_without_loading_the_headless_commands(tmp_path: Path) -> None:
    """``focusmate app`` needs neither the daemon, the doctor nor the other commands, and the
    garbage collector it paused while the window opened runs again."""
    code = (
        "import gc, sys\n"
        "from ui.launcher import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = [m for m in ('sync.daemon', 'sync.doctor', 'focusmate.cli.commands',"
        " 'PySide6.QtCharts', 'PySide6.QtMultimedia') if m in sys.modules]\n"
        "print(code, gc.isenabled(), loaded)\n"
    )
    profile, png = tmp_path / "profile", tmp_path / "window.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("FOCUSMATE_PROFILE", None)
    argv = ["--profile", str(profile), "app", "--no-lan", "--snapshot", str(png)]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "0 True []"
    assert png.is_file()


def test_the_windows_arguments_are_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--profile", str(tmp_path / "p"), "app", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()  # refused before anything was opened


def test_no_window_opens_on_a_profile_another_focusmate_syncs(
    tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "busy"
    workspace(profile, name="Busy").close()
    other = EngineLock(profile)  # as another FocusMate's engine holds it
    other.acquire()
    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: said.append(text))
    built: list[object] = []
    monkeypatch.setattr(ui.app, "build_window", lambda *args, **kwargs: built.append(args))
    try:
        assert run_app(profile, relays=(), lan=False, snapshot=tmp_path / "window.png") == 1
    finally:
        other.release()
    assert not built and not (tmp_path / "window.png").exists()
    assert len(said) == 1 and "already running" in said[0]
    assert gc.isenabled()
