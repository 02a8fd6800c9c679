"""The Messages page: two real profiles sharing a room, envelopes carried between them by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from focusmate.clock import FakeClock
from focusmate.workspace import Workspace
from tests.ui.uikit import run, session, until, workspace
from ui.session import Session
from ui.viewmodels.messages import MessagesViewModel, safety_number
from ui.widgets.messages_page import ConversationRow, MessagesPage


def _carry_room(src: Workspace, dst: Workspace, room_id: str) -> None:
    """What a sync link would do: bring the room document's edits from one profile to another."""
    update = src.document(room_id, kind="room").encode_update()
    dst.document(room_id, kind="room").apply_remote(update, origin="test", now=src.now())


def _alex_and_sam(tmp_path: Path) -> tuple[Workspace, Workspace]:
    clock = FakeClock()
    alex = workspace(tmp_path / "alex", clock=clock, name="Alex")
    sam = workspace(tmp_path / "sam", clock=clock, name="Sam")
    room, invite = alex.create_room("Deep work")
    sam.join_room(invite.code)
    _carry_room(alex, sam, room.room_id)
    _carry_room(sam, alex, room.room_id)
    return alex, sam


def _page(qtbot: QtBot, s: Session) -> tuple[MessagesPage, MessagesViewModel]:
    vm = MessagesViewModel(s)
    page = MessagesPage(vm)
    qtbot.addWidget(page)
    page.resize(800, 500)
    return page, vm


def _open(page: MessagesPage, name: str) -> None:
    rows = [page.list.itemWidget(page.list.item(i)) for i in range(page.list.count())]
    (row,) = [
        i for i, r in enumerate(rows) if isinstance(r, ConversationRow) and r.name.text() == name
    ]
    page.list.setCurrentRow(row)


def _shown(page: MessagesPage) -> list[tuple[str, str]]:
    """Each message on screen: its text and the line under it."""
    return [(r.bubble.text(), r.meta.text()) for r in page.conversation.messages.rows]


def _deliver(sender: Workspace, recipient: Session) -> str:
    """Hand the sender's newest queued envelope to the recipient, as the engine would."""
    envelope = sender.inbox.queued()[-1]
    recipient.workspace.inbox.receive(envelope)
    recipient.messagesChanged.emit()
    return envelope.id


def test_a_sent_message_waits_offline_then_shows_delivered_and_read(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    alex, sam = _alex_and_sam(tmp_path)
    alex_session = session(alex)
    page, _ = _page(qtbot, alex_session)

    async def scenario() -> None:
        await alex_session.start()  # offline: no relay, no LAN
        try:
            page.show()
            _open(page, "Sam")
            composer = page.conversation.composer
            qtbot.keyClicks(composer, "Lunch at one?")
            qtbot.keyClick(composer, Qt.Key.Key_Return)
            assert composer.toPlainText() == ""
            await until(lambda: _shown(page), "Alex's message on his page")
            (text, meta) = _shown(page)[0]
            assert text == "Lunch at one?"
            assert meta.endswith("Waiting to send")
            (message,) = alex.inbox.conversation(sam.user_id)
            for state, label in (("sent", "Sent"), ("delivered", "Delivered"), ("read", "Read")):
                alex.inbox.advance(message.id, state)  # the engine does this on receipts
                alex_session.messagesChanged.emit()
                await until(lambda label=label: _shown(page)[0][1].endswith(label), label)
        finally:
            await alex_session.stop()

    run(qloop, scenario())


def test_messages_are_read_only_while_the_page_is_visible(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    alex, sam = _alex_and_sam(tmp_path)
    sam_session = session(sam)
    page, vm = _page(qtbot, sam_session)
    badge: list[int] = []
    vm.unreadChanged.connect(badge.append)

    async def scenario() -> None:
        # Sam had the conversation open, then went to another page.
        page.show()
        _open(page, "Alex")
        page.hide()
        alex.inbox.send(alex.contact("Sam"), "Lunch at one?")
        _deliver(alex, sam_session)
        await until(lambda: vm.unread_total == 1, "the unread badge at 1")
        row = page.list.itemWidget(page.list.item(0))
        assert isinstance(row, ConversationRow)
        assert row.badge is not None and row.badge.text() == "1"
        assert row.name.font().bold()
        assert sam.inbox.conversation(alex.user_id)[0].state == "received"

        page.show()
        await until(lambda: vm.unread_total == 0, "the message read once the page shows")
        assert [text for text, _ in _shown(page)] == ["Lunch at one?"]
        assert sam.inbox.conversation(alex.user_id)[0].state == "read"
        assert sam.inbox.read_receipts_due() == {alex.user_id: [alex.inbox.queued()[0].id]}

        # While Sam looks at the conversation, a new message is read as it arrives.
        alex.inbox.send(alex.contact("Sam"), "Or two?")
        _deliver(alex, sam_session)
        await until(lambda: len(_shown(page)) == 2, "the second message on Sam's page")
        assert [m.state for m in sam.inbox.conversation(alex.user_id)] == ["read", "read"]
        assert badge == [1, 0]

    run(qloop, scenario())


def test_empty_and_overlong_messages_are_refused_with_a_visible_reason(
    tmp_path: Path, qtbot: QtBot
) -> None:
    alex, _ = _alex_and_sam(tmp_path)
    page, _ = _page(qtbot, session(alex))
    page.show()
    _open(page, "Sam")
    view = page.conversation
    qtbot.keyClicks(view.composer, "   ")
    qtbot.mouseClick(view.send_button, Qt.MouseButton.LeftButton)
    assert page.error_label.isVisible()
    assert page.error_label.text() == "A message cannot be empty."
    view.composer.setPlainText("x" * 4001)
    assert not page.error_label.isVisible()  # editing clears the old reason
    qtbot.mouseClick(view.send_button, Qt.MouseButton.LeftButton)
    assert "at most 4000 characters" in page.error_label.text()
    assert view.composer.toPlainText() == "x" * 4001  # nothing typed is lost
    assert alex.inbox.conversations() == {}


def test_shift_enter_starts_a_new_line_instead_of_sending(tmp_path: Path, qtbot: QtBot) -> None:
    alex, sam = _alex_and_sam(tmp_path)
    page, _ = _page(qtbot, session(alex))
    page.show()
    _open(page, "Sam")
    composer = page.conversation.composer
    qtbot.keyClicks(composer, "first")
    qtbot.keyClick(composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer, "second")
    assert alex.inbox.conversations() == {}
    qtbot.keyClick(composer, Qt.Key.Key_Return)
    assert [m.text for m in alex.inbox.conversation(sam.user_id)] == ["first\nsecond"]


def test_the_encryption_note_names_the_peer_and_both_see_one_safety_number(
    tmp_path: Path, qtbot: QtBot
) -> None:
    alex, sam = _alex_and_sam(tmp_path)
    alex_page, alex_vm = _page(qtbot, session(alex))
    sam_page, sam_vm = _page(qtbot, session(sam))
    for page, peer in ((alex_page, "Sam"), (sam_page, "Alex")):
        page.show()
        _open(page, peer)
        assert page.conversation.name.text() == peer
        assert page.conversation.note.text() == (
            f"Messages with {peer} are end-to-end encrypted. Only you and {peer} can read them;"
            " relays only pass them on."
        )
    assert alex_vm.current is not None and sam_vm.current is not None
    number = alex_vm.current.safety_number
    assert number == sam_vm.current.safety_number
    assert number == safety_number(alex.identity.public, sam.identity.public)
    assert len(number.split()) == 6 and number in alex_vm.encryption_note
    assert number in alex_page.conversation.lock.toolTip()
    other = workspace(tmp_path / "other")
    assert number != safety_number(alex.identity.public, other.identity.public)


def test_with_no_one_to_write_to_the_page_says_how_to_get_someone(
    tmp_path: Path, qtbot: QtBot
) -> None:
    page, vm = _page(qtbot, session(workspace(tmp_path / "alone", name="Ada")))
    page.show()
    assert vm.conversations == ()
    assert page.left.currentWidget() is page.no_contacts
    assert page.no_contacts.text() == "Join or create a room to message people in it."
    assert page.right.currentWidget() is page.placeholder
