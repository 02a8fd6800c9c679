"""The board index follows the document: a page read through it always shows what reading the
whole board from scratch shows, whatever arrives, in whatever order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusmate.board import Board, Post
from tests.unit._rooms import T0, User, room_with, send


def from_scratch(user: User) -> list[Post]:
    """The board as a reader with no index history sees it."""
    return Board(user.room, user.identity).posts()


def test_a_page_follows_remote_posts_comments_likes_and_deletions(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    assert alice.board.posts(limit=3) == []  # the index is built, then follows changes
    first = bob.board.post("first", now=T0 + 10)
    second = bob.board.post("second", now=T0 + 20)
    bob.board.comment(first, "a comment", now=T0 + 21)
    send(bob, alice)
    alice.board.like(first, now=T0 + 22)
    bob.board.delete_post(second, now=T0 + 23)
    send(bob, alice)

    (post,) = alice.board.posts(limit=3)

    assert (post.body, post.likes, [c.body for c in post.comments]) == ("first", 1, ["a comment"])
    assert alice.board.posts(limit=3) == from_scratch(alice)


def test_a_comment_rewritten_under_another_post_moves_with_it(tmp_path: Path) -> None:
    """A hostile peer can rewrite any record; the index files it where its value says."""
    (alice,) = room_with(tmp_path, "Alice")
    one = alice.board.post("one", now=T0 + 10)
    two = alice.board.post("two", now=T0 + 11)
    comment = alice.board.comment(one, "hi", now=T0 + 12)
    alice.board.posts(limit=5)
    raw = dict(alice.doc.map("comments")[comment])
    with alice.doc.edit(now=T0 + 13):
        alice.doc.map("comments")[comment] = {**raw, "post_id": two}

    page = {p.body: p for p in alice.board.posts(limit=5)}

    assert [c.comment_id for c in page["two"].comments] == [comment]
    assert page["one"].comments == ()
    assert not page["two"].comments[0].verified  # the signature covered the old post id


def test_a_rebuilt_document_is_indexed_again(tmp_path: Path) -> None:
    """When the document is reloaded from the store (after a failed commit, say), the index
    reads it again instead of following the old one."""
    (alice,) = room_with(tmp_path, "Alice")
    alice.board.post("before", now=T0 + 10)
    alice.board.posts(limit=5)
    old = alice.doc.doc
    alice.doc._reload()  # what a failed commit does
    assert alice.doc.doc is not old
    alice.board.post("after", now=T0 + 20)

    assert [p.body for p in alice.board.posts(limit=5)] == ["after", "before"]


operations = st.lists(
    st.tuples(
        st.sampled_from(["post", "comment", "like", "delete", "edit", "garble", "deliver"]),
        st.integers(min_value=0, max_value=50),
        st.sampled_from([0, 1]),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, limit=st.integers(min_value=1, max_value=8))
def test_pages_always_match_a_read_from_scratch(
    tmp_path_factory: Any, ops: list[tuple[str, int, int]], limit: int
) -> None:
    users = room_with(tmp_path_factory.mktemp("room"), "Alice", "Bob")
    clock = T0 + 100
    for user in users:
        user.board.posts(limit=limit)  # build both indexes before anything happens
    for op, pick, who in ops:
        user, other = users[who], users[1 - who]
        mine = [p.post_id for p in user.board.posts() if p.author == user.user_id]
        anyone = [p.post_id for p in user.board.posts()]
        clock += 1
        if op == "post":
            user.board.post(f"post {pick}", now=clock - pick % 2)  # some times tie
        elif op == "comment" and anyone:
            user.board.comment(anyone[pick % len(anyone)], f"comment {pick}", now=clock)
        elif op == "like" and anyone:
            user.board.like(anyone[pick % len(anyone)], now=clock)
        elif op == "delete" and mine:
            user.board.delete_post(mine[pick % len(mine)], now=clock)
        elif op == "edit" and mine:
            user.board.edit_post(mine[pick % len(mine)], f"edited {pick}", now=clock)
        elif op == "garble":
            with user.doc.edit(now=clock):
                user.doc.map("posts")[f"junk{pick}"] = {"created_at": "not a time"}
        elif op == "deliver":
            send(user, other, now=clock)
        for reader in users:
            expected = from_scratch(reader)
            assert reader.board.posts(limit=limit) == expected[:limit]
            assert reader.board.posts() == expected
