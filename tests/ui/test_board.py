"""The room board in the app: posting, live arrivals, likes, edits, deletions and forgeries.

Two profiles share one room without a network: Alice's app runs a real (offline) session; Bob is
a plain workspace whose room document updates are copied into Alice's store, as a sync link
would deliver them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QMessageBox
from pytestqt.qtbot import QtBot

from focusmate.identity import sign_record
from focusmate.room import DOC_KIND as ROOM_KIND
from tests.ui.uikit import RoomPair, run, running, session, until
from ui.session import Session
from ui.viewmodels.board import PAGE, UNVERIFIED, BoardViewModel
from ui.widgets.board_view import BoardView
from ui.widgets.post_card import VERIFIED, PostCard


class Pair(RoomPair):
    """Alice (the app under test) and Bob (another member, editing through the core)."""

    def alice_posts(self) -> list[Any]:
        return self.alice.board(self.room).posts()


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


def board_app(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> tuple[Session, BoardViewModel, BoardView]:
    s = session(pair.alice)
    vm = BoardViewModel(s, pair.room_id)
    view = BoardView(vm)
    qtbot.addWidget(view)
    view.resize(520, 480)
    view.show()
    return s, vm, view


def play(
    qloop: asyncio.AbstractEventLoop, s: Session, scenario: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    async def wrapped() -> None:
        async with running(s):
            await scenario()

    run(qloop, wrapped())


def cards(view: BoardView) -> list[PostCard]:
    return [card for card in view.findChildren(PostCard) if card.post_id in view.cards]


def card_with(view: BoardView, body: str) -> PostCard | None:
    return next((c for c in cards(view) if c.body.text() == body), None)


def click(qtbot: QtBot, button: QAbstractButton) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def forge_post_as_alice(pair: Pair, body: str) -> None:
    """Bob writes a post that claims Alice as its author, signed with his own key."""
    fields = {
        "post_id": "forged",
        "author": pair.alice.user_id,
        "body": body,
        "created_at": pair.clock.now(),
        "edited_at": None,
        "deleted": False,
    }
    sig = sign_record(pair.bob.identity, kind="post", fields={"room_id": pair.room_id, **fields})
    pk = pair.alice.identity.public.to_dict()["sign_public"]
    doc = pair.bob.document(pair.room_id, kind=ROOM_KIND)
    with doc.edit(now=pair.clock.now()):
        doc.map("posts")["forged"] = {**fields, "pk": pk, "sig": sig}
    pair.to_alice()


# -- posting ---------------------------------------------------------------------------------


def test_posting_from_the_composer_shows_my_card_and_saves_it(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    s, _vm, view = board_app(pair, qtbot, qloop)
    assert view.empty.isVisible()

    async def scenario() -> None:
        qtbot.keyClicks(view.composer, "Starting chapter 3")
        click(qtbot, view.post_button)
        await until(lambda: card_with(view, "Starting chapter 3"), "my post's card")
        card = card_with(view, "Starting chapter 3")
        assert card is not None
        assert card.author.text() == "Alice"
        assert card.badge.text() == VERIFIED
        assert card.time.text() == "just now"
        assert card.edit.isVisible()
        assert card.delete.isVisible()
        assert view.composer.toPlainText() == ""
        assert not view.empty.isVisible()
        [post] = pair.alice_posts()
        assert post.body == "Starting chapter 3"
        assert post.author == pair.alice.user_id

    play(qloop, s, scenario)


def test_ctrl_enter_posts_and_an_empty_post_is_refused_keeping_the_draft(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    s, vm, view = board_app(pair, qtbot, qloop)
    errors: list[str] = []
    vm.error.connect(errors.append)

    async def scenario() -> None:
        qtbot.keyClicks(view.composer, "   ")
        click(qtbot, view.post_button)
        assert errors == ["A post cannot be empty."]
        assert view.message.isVisible()
        assert "cannot be empty" in view.message.text()
        assert view.composer.toPlainText() == "   "

        view.composer.clear()
        qtbot.keyClicks(view.composer, "Keyboard post")
        qtbot.keyClick(view.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        await until(lambda: card_with(view, "Keyboard post"), "the post sent with Ctrl+Enter")
        assert not view.message.isVisible()

    play(qloop, s, scenario)


# -- live arrivals ---------------------------------------------------------------------------


def test_a_post_by_another_member_arrives_live_and_is_not_mine(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    s, vm, view = board_app(pair, qtbot, qloop)
    arrived: list[int] = []
    vm.arrived.connect(arrived.append)

    async def scenario() -> None:
        pair.bob_posts("Bob here, 25 minutes on the report")
        await until(lambda: card_with(view, "Bob here, 25 minutes on the report"), "Bob's post")
        card = card_with(view, "Bob here, 25 minutes on the report")
        assert card is not None
        assert card.author.text() == "Bob"
        assert card.badge.text() == VERIFIED
        assert not card.edit.isVisibleTo(view)
        assert not card.delete.isVisibleTo(view)
        assert arrived == [1]
        assert not vm.snapshot.posts[0].mine

    play(qloop, s, scenario)


def test_a_live_refresh_keeps_drafts_and_the_reading_position(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    for n in range(30):
        pair.bob_posts(f"Older post {n}\nwith a second line")
        pair.clock.advance(60)
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        bar = view.feed.verticalScrollBar()
        await until(lambda: len(view.cards) == 30, "every card")
        qtbot.keyClicks(view.composer, "Half-typed thought")
        reading = card_with(view, "Older post 20\nwith a second line")
        assert reading is not None
        click(qtbot, reading.comment)
        reply = reading.reply_row
        assert reply is not None
        qtbot.keyClicks(reply.editor, "Half-typed reply")

        seen: list[tuple[int, int]] = []

        def scroll_to_reading() -> bool:
            """The user scrolls this post to the top of the view, and the layout is at rest."""
            bar.setValue(reading.y())
            seen.append((reading.y(), bar.value()))
            return len(seen) > 1 and seen[-1] == seen[-2] and bar.value() == reading.y() > 0

        await until(scroll_to_reading, "the post being read at the top of the view")
        pair.bob_posts("Brand new")
        await until(lambda: card_with(view, "Brand new"), "the new post")
        new_card = card_with(view, "Brand new")
        assert new_card is not None
        await until(lambda: new_card.height() > 0 and reading.y() > new_card.y(), "the layout")
        assert reading.y() == bar.value(), "the post being read stayed at the top of the view"
        assert view.new_items.isVisible()
        assert view.new_items.text() == "↑ 1 new on the board"
        assert view.composer.toPlainText() == "Half-typed thought"
        assert reply.editor.toPlainText() == "Half-typed reply"
        assert reply.isVisible()

        click(qtbot, view.new_items)
        assert bar.value() == 0
        assert not view.new_items.isVisible()

    play(qloop, s, scenario)


# -- likes, comments, edits and deletions ----------------------------------------------------


def test_like_toggles_the_count(pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    pair.bob_posts("Like this")
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        card = card_with(view, "Like this")
        assert card is not None
        assert (card.like.text(), card.like.accessibleName()) == ("♡ 0", "Like Bob's post")
        click(qtbot, card.like)
        await until(lambda: card.like.text() == "♥ 1", "the like to count")
        assert card.like.accessibleName() == "Unlike Bob's post"
        assert pair.alice_posts()[0].liked_by_me
        click(qtbot, card.like)
        await until(lambda: card.like.text() == "♡ 0", "the like to be withdrawn")
        assert card.like.accessibleName() == "Like Bob's post"
        assert pair.alice_posts()[0].likes == 0

    play(qloop, s, scenario)


def test_commenting_and_comments_from_others(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    post_id = pair.bob_posts("Who is in for a sprint?")
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        card = card_with(view, "Who is in for a sprint?")
        assert card is not None
        assert card.reply_row is None
        click(qtbot, card.comment)
        reply = card.reply_row
        assert reply is not None
        qtbot.keyClicks(reply.editor, "Me!")
        click(qtbot, reply.action)
        await until(lambda: len(card.comments) == 1, "my comment")
        [mine] = card.comments.values()
        assert (mine.author.text(), mine.body.text()) == ("Alice", "Me!")
        assert mine.edit.isVisible()
        assert not reply.isVisible()

        pair.to_bob()
        pair.bob.board(pair.bob_room).comment(post_id, "Great", now=pair.clock.now() + 1)
        pair.to_alice()
        await until(lambda: len(card.comments) == 2, "Bob's comment")
        bobs = [r for r in card.comments.values() if r.author.text() == "Bob"]
        assert [r.body.text() for r in bobs] == ["Great"]
        assert not bobs[0].edit.isVisibleTo(view)
        assert [c.body for c in pair.alice_posts()[0].comments] == ["Me!", "Great"]

    play(qloop, s, scenario)


def test_edit_and_delete_my_own_post(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair.alice.board(pair.room).post("Draft plan", now=pair.clock.now())
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        card = card_with(view, "Draft plan")
        assert card is not None
        click(qtbot, card.edit)
        assert card.editor is not None
        editor = card.editor.editor
        assert editor.isVisible()
        assert not card.body.isVisible()
        assert editor.toPlainText() == "Draft plan"
        editor.clear()
        qtbot.keyClicks(editor, "Final plan")
        qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        await until(lambda: "edited" in card.time.text(), "the edit to show")
        assert card.body.text() == "Final plan"
        assert not editor.isVisible()
        assert pair.alice_posts()[0].body == "Final plan"

        click(qtbot, card.delete)
        box = view.findChild(QMessageBox)
        assert box is not None
        assert box.isVisible()
        box.button(QMessageBox.StandardButton.Cancel).click()
        await until(lambda: view.findChild(QMessageBox) is None, "the question to close")
        assert len(pair.alice_posts()) == 1
        assert card_with(view, "Final plan") is card

        click(qtbot, card.delete)
        box = view.findChild(QMessageBox)
        assert box is not None
        confirm = next(b for b in box.buttons() if b.text() == "Delete")
        confirm.click()
        await until(lambda: not view.cards, "the card to go")
        assert pair.alice_posts() == []
        assert view.empty.isVisible()

    play(qloop, s, scenario)


# -- authorship ------------------------------------------------------------------------------


def test_a_forged_post_shows_the_unverified_warning(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    s, vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        forge_post_as_alice(pair, "I quit!")
        await until(lambda: card_with(view, "I quit!"), "the forged post")
        card = card_with(view, "I quit!")
        assert card is not None
        assert card.author.text() == "Alice"  # it claims to be hers...
        assert card.badge.text() == UNVERIFIED  # ...and says it cannot prove it
        assert not card.edit.isVisibleTo(view)
        assert not vm.snapshot.posts[0].verified

    play(qloop, s, scenario)


# -- paging and time -------------------------------------------------------------------------


def test_only_the_newest_posts_show_until_more_are_asked_for(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    board = pair.alice.board(pair.room)
    for n in range(PAGE + 5):
        board.post(f"post {n}", now=pair.clock.now() + n)
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        await until(lambda: len(view.cards) == PAGE, "the first page of cards")
        assert card_with(view, f"post {PAGE + 4}") is not None
        assert card_with(view, "post 0") is None
        assert view.more.isVisible()
        assert view.more.text() == "Show older posts (5 more)"
        click(qtbot, view.more)
        await until(lambda: len(view.cards) == PAGE + 5, "the older posts")
        assert card_with(view, "post 0") is not None
        assert not view.more.isVisible()

    play(qloop, s, scenario)


def test_times_read_as_how_long_ago(
    pair: Pair, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    pair.bob_posts("Earlier today")
    s, _vm, view = board_app(pair, qtbot, qloop)

    async def scenario() -> None:
        card = card_with(view, "Earlier today")
        assert card is not None
        assert card.time.text() == "just now"
        pair.clock.advance(5 * 60)
        s.tick()
        assert card.time.text() == "5 min ago"
        pair.clock.advance(3 * 3600)
        s.tick()
        assert card.time.text() == "3 h ago"

    play(qloop, s, scenario)
