"""The y-sync session driven with bytes only: two documents converge through DocSync pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from focusmate.document import CrdtDocument
from focusmate.errors import ValidationError
from focusmate.store import Store
from sync.backoff import Backoff
from sync.docsync import DocSync
from sync.wire import ProtocolError
from sync.ysync import SyncStep1, SyncStep2, SyncUpdate, decode_message

NOW = 1_800_000_000.0


def _doc(tmp_path: Path, name: str) -> CrdtDocument:
    store = Store(tmp_path / f"{name}.db")
    return CrdtDocument(store, "a" * 32, kind="room", now=NOW)


def _exchange(a: DocSync, b: DocSync) -> None:
    """Deliver messages both ways until neither side has anything left to say."""
    to_b, to_a = a.start(), b.start()
    while to_a or to_b:
        next_b = [r for m in to_b for r in b.receive(decode_message(m), now=NOW)]
        next_a = [r for m in to_a for r in a.receive(decode_message(m), now=NOW)]
        to_a, to_b = next_b, next_a


def test_two_documents_converge_through_the_handshake(tmp_path: Path) -> None:
    left, right = _doc(tmp_path, "left"), _doc(tmp_path, "right")
    with left.edit(now=NOW):
        left.map("m")["from_left"] = 1
    with right.edit(now=NOW):
        right.map("m")["from_right"] = 2
    a, b = DocSync(left, origin="link:b"), DocSync(right, origin="link:a")
    _exchange(a, b)
    assert a.synced and b.synced
    assert left.map("m").to_py() == right.map("m").to_py() == {"from_left": 1, "from_right": 2}


def test_remote_updates_are_persisted_before_they_are_seen(tmp_path: Path) -> None:
    left, right = _doc(tmp_path, "left"), _doc(tmp_path, "right")
    b = DocSync(right, origin="link:a")
    with left.edit(now=NOW):
        left.map("m")["k"] = "v"
    b.receive(SyncUpdate(left.encode_update()), now=NOW)
    reopened = _doc(tmp_path, "right")  # a fresh reader of the same store
    assert reopened.map("m").to_py() == {"k": "v"}


def test_local_changes_go_out_except_to_the_link_they_came_from(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "one")
    sync = DocSync(doc, origin="relay:x")
    message = sync.local_update(b"\x01\x02", origin="local")
    assert message is not None
    assert decode_message(message) == SyncUpdate(b"\x01\x02")
    assert sync.local_update(b"\x01\x02", origin="relay:x") is None
    assert sync.local_update(b"\x00\x00", origin="local") is None


def test_step1_is_answered_with_what_the_peer_lacks(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "one")
    with doc.edit(now=NOW):
        doc.map("m")["k"] = 1
    (reply,) = DocSync(doc, origin="x").receive(SyncStep1(b"\x00"), now=NOW)
    answer = decode_message(reply)
    assert isinstance(answer, SyncStep2)
    assert answer.update == doc.encode_update()


def test_a_malformed_update_or_state_vector_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "one")
    sync = DocSync(doc, origin="x")
    with pytest.raises(ValidationError):
        sync.receive(SyncUpdate(b"\x05garbage"), now=NOW)
    with pytest.raises(ProtocolError):
        sync.receive(SyncStep1(b"\xff\xff\xff"), now=NOW)
    assert doc.store.read_log(doc.doc_id).updates == []


def test_backoff_grows_with_jitter_up_to_its_cap_and_resets() -> None:
    low = Backoff(base=1.0, cap=8.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    high = Backoff(base=1.0, cap=8.0, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    high.reset()
    assert high.next_delay() == 1.0
