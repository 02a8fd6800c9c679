"""The room board: posts, comments and likes, with authorship every reader can check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from focusmate.board import COMMENT_MAX, POST_MAX, Board
from focusmate.errors import NotFoundError, PermissionDeniedError, ValidationError
from focusmate.identity import sign_record
from focusmate.room import RoomSettings
from focusmate.verdicts import Verdicts
from tests.unit._rooms import T0, User, make_user, room_with, send, sync


@pytest.fixture
def pair(tmp_path: Path) -> tuple[User, User]:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    return alice, bob


def write_raw(user: User, map_name: str, key: str, value: Any, *, now: float = T0 + 50) -> None:
    """What a buggy or hostile peer can do: put any value under any key."""
    with user.doc.edit(now=now):
        user.doc.map(map_name)[key] = value


def raw_record(user: User, map_name: str, key: str) -> dict[str, Any]:
    return dict(user.doc.map(map_name)[key])


# -- posting, commenting, liking -------------------------------------------------------------


def test_post_is_seen_by_others_with_verified_author(pair: tuple[User, User]) -> None:
    alice, bob = pair

    post_id = alice.board.post("  Starting a 25-minute sprint  ", now=T0 + 10)
    send(alice, bob)

    [post] = bob.board.posts()
    assert post.post_id == post_id
    assert post.body == "Starting a 25-minute sprint"
    assert post.author == alice.user_id
    assert post.author_name == "Alice"
    assert post.verified
    assert post.created_at == T0 + 10
    assert post.edited_at is None
    assert post.likes == 0
    assert post.comments == ()


def test_comment_is_attached_to_its_post(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("Who's in?", now=T0 + 10)
    send(alice, bob)

    comment_id = bob.board.comment(post_id, "Me!", now=T0 + 20)
    send(bob, alice)

    [comment] = alice.board.posts()[0].comments
    assert comment.comment_id == comment_id
    assert comment.post_id == post_id
    assert comment.body == "Me!"
    assert comment.author_name == "Bob"
    assert comment.verified


def test_like_and_unlike(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("Done with chapter 3", now=T0 + 10)
    send(alice, bob)

    bob.board.like(post_id, now=T0 + 20)
    send(bob, alice)
    assert alice.board.posts()[0].likes == 1
    assert not alice.board.posts()[0].liked_by_me
    assert bob.board.posts()[0].liked_by_me

    bob.board.unlike(post_id, now=T0 + 30)
    send(bob, alice)
    assert alice.board.posts()[0].likes == 0
    assert not bob.board.posts()[0].liked_by_me


def test_likes_count_once_per_user(pair: tuple[User, User], tmp_path: Path) -> None:
    alice, bob = pair
    post_id = alice.board.post("Like me", now=T0 + 10)
    bob_phone = make_user(tmp_path, "Bob-phone", identity=bob.identity)
    sync(alice, bob, bob_phone)

    bob.board.like(post_id, now=T0 + 20)
    bob.board.like(post_id, now=T0 + 21)
    bob_phone.board.like(post_id, now=T0 + 22)  # the same user on another device, concurrently
    alice.board.like(post_id, now=T0 + 23)
    sync(alice, bob, bob_phone)

    for user in (alice, bob, bob_phone):
        assert user.board.posts()[0].likes == 2


def test_unlike_without_like_is_harmless(pair: tuple[User, User]) -> None:
    alice, _bob = pair
    post_id = alice.board.post("Hi", now=T0 + 10)

    alice.board.unlike(post_id, now=T0 + 20)

    assert alice.board.posts()[0].likes == 0


def test_forged_like_is_not_counted_and_does_not_block_a_real_one(
    pair: tuple[User, User],
) -> None:
    alice, bob = pair
    post_id = alice.board.post("Hi", now=T0 + 10)
    send(alice, bob)
    # Bob writes a like in Alice's name (under her key) signed with his own key.
    forged = {"post_id": post_id, "author": alice.user_id, "at": T0 + 20}
    sig = sign_record(bob.identity, kind="like", fields={"room_id": bob.room.room_id, **forged})
    pk = bob.identity.public.to_dict()["sign_public"]
    write_raw(bob, "likes", f"{post_id}:{alice.user_id}", {**forged, "pk": pk, "sig": sig})
    send(bob, alice)

    assert alice.board.posts()[0].likes == 0
    assert not alice.board.posts()[0].liked_by_me
    alice.board.like(post_id, now=T0 + 30)
    assert alice.board.posts()[0].likes == 1


def test_comment_or_like_on_missing_post_is_not_found(pair: tuple[User, User]) -> None:
    alice, _bob = pair

    with pytest.raises(NotFoundError):
        alice.board.comment("nope", "Hello?", now=T0 + 10)
    with pytest.raises(NotFoundError):
        alice.board.like("nope", now=T0 + 10)


def test_member_who_left_cannot_post(pair: tuple[User, User]) -> None:
    _alice, bob = pair
    bob.room.leave(now=T0 + 5)

    with pytest.raises(PermissionDeniedError, match="not a member"):
        bob.board.post("Hello", now=T0 + 10)


# -- ordering --------------------------------------------------------------------------------


def test_posts_newest_first_comments_oldest_first(pair: tuple[User, User]) -> None:
    alice, bob = pair
    first = alice.board.post("first", now=T0 + 10)
    second = bob.board.post("second", now=T0 + 20)
    sync(alice, bob)
    third = alice.board.post("third", now=T0 + 30)
    sync(alice, bob)
    bob.board.comment(first, "c2", now=T0 + 50)
    alice.board.comment(first, "c1", now=T0 + 40)
    bob.board.comment(first, "c3", now=T0 + 60)
    sync(alice, bob)

    for user in (alice, bob):
        posts = user.board.posts()
        assert [p.post_id for p in posts] == [third, second, first]
        assert [c.body for c in posts[-1].comments] == ["c1", "c2", "c3"]


# -- length limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_empty_post_and_comment_are_refused(pair: tuple[User, User], body: str) -> None:
    alice, _bob = pair
    post_id = alice.board.post("ok", now=T0 + 10)

    with pytest.raises(ValidationError, match="cannot be empty"):
        alice.board.post(body, now=T0 + 20)
    with pytest.raises(ValidationError, match="cannot be empty"):
        alice.board.comment(post_id, body, now=T0 + 20)


def test_post_length_limit(pair: tuple[User, User]) -> None:
    alice, bob = pair

    alice.board.post("p" * POST_MAX, now=T0 + 10)
    with pytest.raises(ValidationError, match=f"at most {POST_MAX}"):
        alice.board.post("p" * (POST_MAX + 1), now=T0 + 20)
    send(alice, bob)

    assert [len(p.body) for p in bob.board.posts()] == [POST_MAX]
    assert POST_MAX == 4000


def test_comment_length_limit(pair: tuple[User, User]) -> None:
    alice, _bob = pair
    post_id = alice.board.post("ok", now=T0 + 10)

    alice.board.comment(post_id, "c" * COMMENT_MAX, now=T0 + 20)
    with pytest.raises(ValidationError, match=f"at most {COMMENT_MAX}"):
        alice.board.comment(post_id, "c" * (COMMENT_MAX + 1), now=T0 + 30)

    assert [len(c.body) for c in alice.board.posts()[0].comments] == [COMMENT_MAX]
    assert COMMENT_MAX == 1000


def test_edit_respects_the_limits(pair: tuple[User, User]) -> None:
    alice, _bob = pair
    post_id = alice.board.post("ok", now=T0 + 10)
    comment_id = alice.board.comment(post_id, "ok", now=T0 + 10)

    with pytest.raises(ValidationError):
        alice.board.edit_post(post_id, "p" * (POST_MAX + 1), now=T0 + 20)
    with pytest.raises(ValidationError):
        alice.board.edit_comment(comment_id, " ", now=T0 + 20)

    assert alice.board.posts()[0].body == "ok"


# -- editing and deleting --------------------------------------------------------------------


def test_edit_own_post_and_comment(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("draft", now=T0 + 10)
    comment_id = alice.board.comment(post_id, "typo", now=T0 + 11)

    alice.board.edit_post(post_id, "final", now=T0 + 20)
    alice.board.edit_comment(comment_id, "fixed", now=T0 + 21)
    send(alice, bob)

    [post] = bob.board.posts()
    assert post.body == "final"
    assert post.edited_at == T0 + 20
    assert post.created_at == T0 + 10
    assert post.verified
    assert post.comments[0].body == "fixed"
    assert post.comments[0].verified


def test_cannot_edit_or_delete_others_items(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("mine", now=T0 + 10)
    comment_id = alice.board.comment(post_id, "mine too", now=T0 + 11)
    send(alice, bob)

    with pytest.raises(PermissionDeniedError, match="your own post"):
        bob.board.edit_post(post_id, "hijacked", now=T0 + 20)
    with pytest.raises(PermissionDeniedError, match="your own post"):
        bob.board.delete_post(post_id, now=T0 + 20)
    with pytest.raises(PermissionDeniedError, match="your own comment"):
        bob.board.edit_comment(comment_id, "hijacked", now=T0 + 20)
    with pytest.raises(PermissionDeniedError, match="your own comment"):
        bob.board.delete_comment(comment_id, now=T0 + 20)

    [post] = bob.board.posts()
    assert post.body == "mine"
    assert post.comments[0].body == "mine too"


def test_editing_or_deleting_missing_items_is_not_found(pair: tuple[User, User]) -> None:
    alice, _bob = pair
    post_id = alice.board.post("soon gone", now=T0 + 10)
    comment_id = alice.board.comment(post_id, "soon gone", now=T0 + 10)
    alice.board.delete_comment(comment_id, now=T0 + 20)
    alice.board.delete_post(post_id, now=T0 + 20)

    for missing in ("never-existed", post_id):
        with pytest.raises(NotFoundError):
            alice.board.edit_post(missing, "x", now=T0 + 30)
        with pytest.raises(NotFoundError):
            alice.board.delete_post(missing, now=T0 + 30)
    for missing in ("never-existed", comment_id):
        with pytest.raises(NotFoundError):
            alice.board.edit_comment(missing, "x", now=T0 + 30)
        with pytest.raises(NotFoundError):
            alice.board.delete_comment(missing, now=T0 + 30)
    with pytest.raises(NotFoundError):
        alice.board.comment(post_id, "on a deleted post", now=T0 + 30)


def test_deleted_post_disappears_for_everyone_after_sync(tmp_path: Path) -> None:
    alice, bob, carol = room_with(tmp_path, "Alice", "Bob", "Carol")
    gone = alice.board.post("oops", now=T0 + 10)
    kept = alice.board.post("keep", now=T0 + 11)
    sync(alice, bob, carol)
    bob.board.comment(gone, "ha", now=T0 + 12)
    sync(alice, bob, carol)

    alice.board.delete_post(gone, now=T0 + 20)
    sync(alice, bob, carol)

    for user in (alice, bob, carol):
        assert [p.post_id for p in user.board.posts()] == [kept]


def test_deleted_comment_disappears_for_everyone(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("post", now=T0 + 10)
    send(alice, bob)
    comment_id = bob.board.comment(post_id, "regret", now=T0 + 11)
    bob.board.comment(post_id, "fine", now=T0 + 12)
    bob.board.delete_comment(comment_id, now=T0 + 13)
    send(bob, alice)

    assert [c.body for c in alice.board.posts()[0].comments] == ["fine"]


# -- forgery ---------------------------------------------------------------------------------


def test_post_claiming_another_author_is_unverified(pair: tuple[User, User]) -> None:
    alice, bob = pair
    # Bob signs with his own key a post claiming to be from Alice.
    fields = {
        "post_id": "forged",
        "author": alice.user_id,
        "body": "I quit!",
        "created_at": T0 + 10,
        "edited_at": None,
        "deleted": False,
    }
    sig = sign_record(bob.identity, kind="post", fields={"room_id": bob.room.room_id, **fields})
    write_raw(
        bob,
        "posts",
        "forged",
        {**fields, "pk": alice.identity.public.to_dict()["sign_public"], "sig": sig},
    )
    send(bob, alice)

    [post] = alice.board.posts()
    assert post.author == alice.user_id
    assert not post.verified


def test_post_with_the_forgers_own_key_but_another_author_is_unverified(
    pair: tuple[User, User],
) -> None:
    alice, bob = pair
    fields = {
        "post_id": "forged",
        "author": alice.user_id,
        "body": "I quit!",
        "created_at": T0 + 10,
        "edited_at": None,
        "deleted": False,
    }
    sig = sign_record(bob.identity, kind="post", fields={"room_id": bob.room.room_id, **fields})
    pk = bob.identity.public.to_dict()["sign_public"]
    write_raw(bob, "posts", "forged", {**fields, "pk": pk, "sig": sig})
    send(bob, alice)

    assert not alice.board.posts()[0].verified


def test_post_tampered_after_signing_is_unverified(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("Meet at 10", now=T0 + 10)
    send(alice, bob)

    write_raw(bob, "posts", post_id, {**raw_record(bob, "posts", post_id), "body": "Meet at 11"})
    send(bob, alice)

    [post] = alice.board.posts()
    assert post.body == "Meet at 11"
    assert not post.verified


def test_comment_tampered_after_signing_is_unverified(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("post", now=T0 + 10)
    comment_id = alice.board.comment(post_id, "nice", now=T0 + 11)
    send(alice, bob)

    write_raw(
        bob, "comments", comment_id, {**raw_record(bob, "comments", comment_id), "body": "mean"}
    )
    send(bob, alice)

    assert not alice.board.posts()[0].comments[0].verified


def test_signature_replayed_from_another_room_is_unverified(tmp_path: Path) -> None:
    alice = make_user(tmp_path, "Alice", room_id="a" * 32)
    alice.room.initialise(RoomSettings(name="Room A"), my_name="Alice", now=T0)
    post_id = alice.board.post("said in room A", now=T0 + 10)
    record = raw_record(alice, "posts", post_id)
    bob, carol = room_with(tmp_path, "Bob", "Carol")  # another room (tests' default room id)

    write_raw(bob, "posts", post_id, record)
    send(bob, carol)

    [post] = carol.board.posts()
    assert post.author == alice.user_id
    assert not post.verified


def test_forged_deletion_does_not_silently_hide_a_post(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("important", now=T0 + 10)
    send(alice, bob)

    record = raw_record(bob, "posts", post_id)
    write_raw(bob, "posts", post_id, {**record, "body": "", "deleted": True})
    send(bob, alice)

    [post] = alice.board.posts()
    assert post.post_id == post_id
    assert not post.verified


def test_own_record_tampered_by_others_cannot_be_edited(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("Meet at 10", now=T0 + 10)
    send(alice, bob)
    write_raw(bob, "posts", post_id, {**raw_record(bob, "posts", post_id), "body": "Meet at 11"})
    send(bob, alice)

    with pytest.raises(PermissionDeniedError):
        alice.board.edit_post(post_id, "whatever", now=T0 + 20)


@pytest.mark.parametrize(
    "record",
    [
        "a string",
        42,
        None,
        [],
        {},
        {"author": "x", "body": "no id", "created_at": 1.0},
        {"post_id": "p", "author": "x", "body": "bad time", "created_at": "soon"},
        {"post_id": "p", "author": "x", "body": "nan time", "created_at": float("nan")},
        {"post_id": "p", "author": 7, "body": "bad author", "created_at": 1.0},
        {"post_id": "p", "author": "x", "body": ["list"], "created_at": 1.0},
    ],
    ids=repr,
)
def test_malformed_post_from_a_peer_is_ignored(pair: tuple[User, User], record: object) -> None:
    alice, bob = pair
    good = alice.board.post("still here", now=T0 + 10)
    send(alice, bob)

    write_raw(bob, "posts", "p", record)
    write_raw(bob, "comments", "c", record, now=T0 + 51)
    write_raw(bob, "likes", f"{good}:x", record, now=T0 + 52)
    send(bob, alice)

    assert [p.post_id for p in alice.board.posts()] == [good]
    assert alice.board.posts()[0].comments == ()


def test_signed_post_copied_under_another_key_is_not_shown_twice(pair: tuple[User, User]) -> None:
    alice, bob = pair
    post_id = alice.board.post("once", now=T0 + 10)
    send(alice, bob)

    write_raw(bob, "posts", "copy", raw_record(bob, "posts", post_id))
    send(bob, alice)

    assert [p.post_id for p in alice.board.posts()] == [post_id]


def test_board_uses_injected_ids(pair: tuple[User, User]) -> None:
    alice, _bob = pair
    ids = iter(["p1", "c1"])
    board = Board(alice.room, alice.identity, new_id=lambda: next(ids))

    assert board.post("hello", now=T0 + 10) == "p1"
    assert board.comment("p1", "hi", now=T0 + 11) == "c1"


def test_verdicts_are_remembered_but_a_changed_record_is_checked_again(tmp_path: Path) -> None:
    """The verdict cache keys on the signed content: tampering after a good verdict is caught."""
    alice, _ = room_with(tmp_path, "Alice", "Bob")
    cache = Verdicts(b"k" * 32)
    board = Board(alice.room, alice.identity, verdicts=cache)
    post_id = board.post("original", now=T0)
    assert [p.verified for p in board.posts()] == [True]
    remembered = len(cache)
    assert [p.verified for p in board.posts()] == [True] and len(cache) == remembered
    raw = raw_record(alice, "posts", post_id)  # a peer rewrites the body, keeping the signature
    write_raw(alice, "posts", post_id, {**raw, "body": "forged"})
    (post,) = board.posts()
    assert post.body == "forged" and not post.verified


def test_the_newest_posts_alone_are_the_start_of_the_whole_board(pair: tuple[User, User]) -> None:
    """A first screenful (``limit``) shows exactly what the full board starts with: deleted
    posts are skipped, not counted, and comments and likes come along."""
    alice, bob = pair
    ids = [alice.board.post(f"post {i}", now=T0 + 10 + i) for i in range(6)]
    alice.board.comment(ids[4], "on the second newest", now=T0 + 30)
    alice.board.delete_post(ids[5], now=T0 + 31)
    send(alice, bob)
    bob.board.like(ids[3], now=T0 + 32)
    send(bob, alice)

    whole = alice.board.posts()
    first = alice.board.posts(limit=3)

    assert first == whole[:3]
    assert [p.body for p in first] == ["post 4", "post 3", "post 2"]
    assert [c.body for c in first[0].comments] == ["on the second newest"]
    assert first[1].likes == 1
