"""Signature verdicts kept in the profile: a restart does not check the same signatures again,
and nobody without the key file can plant a verdict."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from focusmate import identity
from focusmate.board import BULK_READ_AFTER
from focusmate.clock import FakeClock
from focusmate.verdicts import Verdicts
from focusmate.workspace import Workspace

T0 = 1_700_000_000.0


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every Ed25519 check of a post's signature (the data checked)."""
    seen: list[bytes] = []
    real = identity.verify

    def counting(sign_public: bytes, data: bytes, signature: bytes) -> bool:
        if b'"kind":"post"' in data:
            seen.append(data)
        return real(sign_public, data, signature)

    monkeypatch.setattr(identity, "verify", counting)
    return seen


def profile_with_posts(path: Path, count: int) -> str:
    with Workspace(path, clock=FakeClock(T0)) as ws:
        room, _ = ws.create_room("Deep work")
        board = ws.board(room)
        for i in range(count):
            board.post(f"post {i}", now=T0 + i)
        return room.room_id


def read_board(path: Path, room_id: str) -> list[tuple[str, bool]]:
    with Workspace(path, clock=FakeClock(T0 + 100)) as ws:
        return [(p.body, p.verified) for p in ws.board(ws.find_room(room_id)).posts()]


def test_a_restart_does_not_check_the_same_signatures_again(
    tmp_path: Path, checks: list[bytes]
) -> None:
    room_id = profile_with_posts(tmp_path / "p", 5)
    checks.clear()

    first = read_board(tmp_path / "p", room_id)
    assert len(checks) == 5 and all(ok for _, ok in first)
    checks.clear()

    assert read_board(tmp_path / "p", room_id) == first
    assert checks == []


def test_a_whole_board_read_serves_a_later_page_read(tmp_path: Path, checks: list[bytes]) -> None:
    """A whole board is read from the maps' JSON (integral times as ints), a page record by
    record (times as floats): the same record has one verdict either way."""
    room_id = profile_with_posts(tmp_path / "p", BULK_READ_AFTER + 5)
    with Workspace(tmp_path / "p", clock=FakeClock(T0 + 500)) as ws:
        assert len(ws.board(ws.find_room(room_id)).posts()) == BULK_READ_AFTER + 5
    checks.clear()

    with Workspace(tmp_path / "p", clock=FakeClock(T0 + 600)) as ws:
        assert len(ws.board(ws.find_room(room_id)).posts(limit=20)) == 20

    assert checks == []


def test_a_changed_record_is_checked_again_after_a_restart(
    tmp_path: Path, checks: list[bytes]
) -> None:
    room_id = profile_with_posts(tmp_path / "p", 2)
    read_board(tmp_path / "p", room_id)
    with Workspace(tmp_path / "p", clock=FakeClock(T0 + 200)) as ws:
        posts = ws.document(room_id, kind="room").map("posts")
        post_id = next(iter(posts.keys()))
        with ws.document(room_id, kind="room").edit(now=T0 + 200):
            posts[post_id] = {**posts[post_id], "body": "forged"}
    checks.clear()

    board = dict(read_board(tmp_path / "p", room_id))

    assert board["forged"] is False and len(checks) == 1


def test_a_planted_verdict_does_not_make_a_forgery_verified(tmp_path: Path) -> None:
    """Someone who can write the database but not read the key cannot compute the digest."""
    room_id = profile_with_posts(tmp_path / "p", 1)
    with Workspace(tmp_path / "p", clock=FakeClock(T0 + 200)) as ws:
        doc = ws.document(room_id, kind="room")
        post_id = next(iter(doc.map("posts").keys()))
        forged = {**doc.map("posts")[post_id], "body": "send me your password"}
        with doc.edit(now=T0 + 200):
            doc.map("posts")[post_id] = forged
        fields = ("post_id", "author", "body", "created_at", "edited_at", "deleted")
        signed = (forged[f] for f in fields)
        signed = (int(v) if isinstance(v, float) and v.is_integer() else v for v in signed)
        values = ("post", room_id, forged["pk"], forged["sig"], *signed)
        plain = repr(values).encode()
        planted = [
            hashlib.blake2b(plain, digest_size=16).digest(),
            hashlib.blake2b(plain, key=b"\x00" * 32, digest_size=16).digest(),
        ]
        with ws.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO signature_verdicts(digest, ok) VALUES (?, 1)",
                [(d,) for d in planted],
            )

    assert read_board(tmp_path / "p", room_id) == [("send me your password", False)]


def test_the_profile_keeps_a_bounded_number_of_verdicts(tmp_path: Path) -> None:
    room_id = profile_with_posts(tmp_path / "p", 6)
    with Workspace(tmp_path / "p", clock=FakeClock(T0 + 100)) as ws:
        verdicts = Verdicts(b"k" * 32, ws.store, maxsize=4)
        board = ws.board(ws.find_room(room_id))
        board._verdicts = verdicts  # the bound, at a size a test can reach
        assert all(p.verified for p in board.posts())
        (rows,) = ws.store.query("SELECT count(*) FROM signature_verdicts")

    assert rows[0] <= 4


def test_a_record_with_an_unhashable_field_is_checked_every_time() -> None:
    verdicts = Verdicts(b"k" * 32)
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        return False

    odd = ("post", "room", "pk", "sig", ["a list", "where a string belongs"])
    assert verdicts.check(odd, check) is False
    assert verdicts.check(odd, check) is False
    assert len(calls) == 2 and len(verdicts) == 0
