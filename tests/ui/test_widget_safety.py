"""Widgets show peers' text literally, dialogs from the room page do not pile up, and errors,
Like buttons and the countdown are usable with a screen reader and the keyboard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette, QTextDocument
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLabel, QMessageBox
from pytestqt.qtbot import QtBot

from focusmate.clock import FakeClock
from focusmate.settings import Theme
from focusmate.timer import Command
from tests.ui.test_board import Pair, board_app, card_with, click, play
from tests.ui.uikit import run, session, until, workspace
from ui.theme import apply_theme, error_color, is_dark
from ui.viewmodels.app import AppViewModel, LanPeer
from ui.viewmodels.room import RoomViewModel
from ui.widgets.banner import Banner
from ui.widgets.countdown import CountdownWidget
from ui.widgets.first_run import FirstRunPage
from ui.widgets.invite_dialog import InviteDialog
from ui.widgets.room_dialogs import JoinRoomDialog
from ui.widgets.room_page import RoomPage
from ui.widgets.room_settings_dialog import RoomSettingsDialog

HOSTILE = "<h1>big</h1><img src=x>"


class NamedPair(Pair):
    """Alice and another member who chose ``name``: any text at all, markup included."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.clock = FakeClock()
        self.alice = workspace(tmp_path / "alice", clock=self.clock, name="Alice")
        self.bob = workspace(tmp_path / "bob", clock=self.clock, name=name)
        self.room, invite = self.alice.create_room("Board room")
        self.bob_room = self.bob.join_room(invite.code)
        self.to_bob()
        self.to_alice()


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


def tooltip_shows(tip: str) -> str:
    """The words a tooltip displays: Qt renders one as HTML when it looks like HTML."""
    document = QTextDocument()
    if QtGui.Qt.mightBeRichText(tip):
        document.setHtml(tip)
    else:
        document.setPlainText(tip)
    return document.toPlainText()


def assert_literal(label: QLabel, text: str) -> None:
    """``label`` holds ``text`` and shows it as written, never as HTML."""
    assert label.text() == text
    assert label.textFormat() == Qt.TextFormat.PlainText, label.accessibleName() or text


def room_page(
    qtbot: QtBot, tmp_path: Path, name: str = "Deep work"
) -> tuple[RoomViewModel, RoomPage]:
    ws = workspace(tmp_path / "me", clock=FakeClock(), name="Ada")
    room, _ = ws.create_room(name)
    vm = RoomViewModel(session(ws), room.room_id)
    page = RoomPage(vm)
    qtbot.addWidget(page)
    page.show()
    return vm, page


# -- peers' text is plain text ---------------------------------------------------------------


def test_a_notice_shows_its_title_and_body_literally(qtbot: QtBot) -> None:
    banner = Banner()
    qtbot.addWidget(banner)
    banner.show_notice("<b>Sam</b> posted", HOSTILE)
    assert_literal(banner.title, "<b>Sam</b> posted")
    assert_literal(banner.body, HOSTILE)


def test_a_post_body_and_its_header_show_literally(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair = NamedPair(tmp_path, "<b>Sam</b>")
    pair.bob_posts(HOSTILE)
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        await until(lambda: card_with(view, HOSTILE) is not None, "Bob's post")
        card = card_with(view, HOSTILE)
        assert card is not None
        assert_literal(card.body, HOSTILE)
        assert_literal(card.author, "<b>Sam</b>")
        for label in (card.badge, card.time):
            assert label.textFormat() == Qt.TextFormat.PlainText
        assert tooltip_shows(card.badge.toolTip()) == "Signed by <b>Sam</b>."
        assert tooltip_shows(card.like.toolTip()) == "Like <b>Sam</b>'s post (0 likes)"
        assert card.like.accessibleName() == "Like <b>Sam</b>'s post"

    play(qloop, s, scenario)


def test_the_room_name_shows_literally_in_the_title_and_the_leave_question(
    tmp_path: Path, qtbot: QtBot
) -> None:
    _, page = room_page(qtbot, tmp_path, name="<b>Loud</b> room")
    assert_literal(page.title, "<b>Loud</b> room")
    assert page.error.textFormat() == Qt.TextFormat.PlainText
    page.confirm_leave()
    box = page.leave_box
    assert box is not None
    assert box.textFormat() == Qt.TextFormat.PlainText
    assert box.text() == "Leave “<b>Loud</b> room”?"
    box.reject()


def test_peer_names_in_the_join_dialog_show_literally(
    tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = AppViewModel(session(workspace(tmp_path / "me", name="Ada")))
    monkeypatch.setattr(vm, "lan_peers", lambda: [LanPeer(user_id="u1", name="<i>Sam</i>")])
    dialog = JoinRoomDialog(vm)
    qtbot.addWidget(dialog)
    assert "<i>Sam</i>" in dialog.peers_note.text()
    assert dialog.peers_note.textFormat() == Qt.TextFormat.PlainText
    dialog.field.setText("<b>not a code</b>")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.error.text()
    assert dialog.error.textFormat() == Qt.TextFormat.PlainText


def test_what_was_typed_comes_back_literally_in_error_messages(
    tmp_path: Path, qtbot: QtBot
) -> None:
    vm, page = room_page(qtbot, tmp_path)
    settings = RoomSettingsDialog(vm, page)
    assert settings.error.textFormat() == Qt.TextFormat.PlainText
    first_run = FirstRunPage(AppViewModel(vm.session))
    qtbot.addWidget(first_run)
    assert first_run.error.textFormat() == Qt.TextFormat.PlainText


# -- dialogs opened from the room page go away when closed -----------------------------------


def test_dialogs_opened_from_the_room_page_are_deleted_once_closed(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    _, page = room_page(qtbot, tmp_path)

    async def scenario() -> None:
        for _ in range(3):
            page.open_invite()
            dialog = page.invite_dialog
            assert dialog is not None and dialog.isVisible()
            dialog.close()
            assert page.invite_dialog is None

            page.open_settings()
            settings = page.settings_dialog
            assert settings is not None and settings.isVisible()
            settings.reject()
            assert page.settings_dialog is None

            page.confirm_leave()
            box = page.leave_box
            assert box is not None and box.isVisible()
            box.reject()
            assert page.leave_box is None

        def nothing_left() -> bool:
            kinds = (InviteDialog, RoomSettingsDialog, QMessageBox)
            return not any(page.findChildren(kind) for kind in kinds)

        await until(nothing_left, "the closed dialogs to be deleted", timeout=3)

    run(qloop, scenario())


def test_opening_the_invite_twice_keeps_one_dialog(tmp_path: Path, qtbot: QtBot) -> None:
    _, page = room_page(qtbot, tmp_path)
    page.open_invite()
    first = page.invite_dialog
    page.open_invite()
    assert page.invite_dialog is first
    assert len(page.findChildren(InviteDialog)) == 1


# -- accessibility -----------------------------------------------------------------------------


def test_error_labels_are_drawn_in_the_error_colour(
    tmp_path: Path, qtbot: QtBot, restored_look: QApplication
) -> None:
    apply_theme(restored_look, Theme.LIGHT)
    expected = error_color(dark=is_dark()).name()
    vm = AppViewModel(session(workspace(tmp_path / "me", name="Ada")))
    join = JoinRoomDialog(vm)
    first_run = FirstRunPage(vm)
    for widget in (join, first_run):
        qtbot.addWidget(widget)
    for label in (join.error, first_run.error):
        assert label.property("error") is True
        label.ensurePolished()
        assert label.palette().color(QPalette.ColorRole.WindowText).name() == expected


def test_like_buttons_say_whose_post_they_like(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair.bob_posts("Bob's news")
    s, vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        await until(lambda: card_with(view, "Bob's news") is not None, "Bob's post")
        card = card_with(view, "Bob's news")
        assert card is not None
        assert card.like.accessibleName() == "Like Bob's post"
        click(qtbot, card.like)
        await until(lambda: card.like.text() == "♥ 1", "the like to count")
        assert card.like.accessibleName() == "Unlike Bob's post"
        assert tooltip_shows(card.like.toolTip()) == "Unlike Bob's post (1 like)"

        assert vm.post("Mine")
        await until(lambda: card_with(view, "Mine") is not None, "my post")
        mine = card_with(view, "Mine")
        assert mine is not None
        assert mine.like.accessibleName() == "Like your post"

    play(qloop, s, scenario)


def test_tab_reaches_the_countdown_and_shows_it_has_focus(tmp_path: Path, qtbot: QtBot) -> None:
    _, page = room_page(qtbot, tmp_path)
    page.resize(900, 600)
    countdown = page.countdown
    assert countdown.focusPolicy() == Qt.FocusPolicy.TabFocus
    assert countdown.nextInFocusChain() is page.buttons[Command.START]
    page.activateWindow()
    qtbot.waitUntil(page.isActiveWindow)
    unfocused = countdown.grab().toImage()
    start = page.buttons[Command.START]
    start.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.keyClick(start, Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert countdown.hasFocus()
    assert countdown.grab().toImage() != unfocused  # a focus frame is drawn


def test_a_lone_countdown_takes_tab_focus(qtbot: QtBot) -> None:
    widget = CountdownWidget()
    qtbot.addWidget(widget)
    assert widget.focusPolicy() & Qt.FocusPolicy.TabFocus
