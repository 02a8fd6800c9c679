"""CrdtDocument: local edits are committed before anyone hears of them, remote updates are checked,
persisted and only then applied, and listeners hear about every real change — deletions too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from focusmate import store as store_module
from focusmate.document import MAX_UPDATE_BYTES, CrdtDocument
from focusmate.errors import StoreError, ValidationError
from focusmate.store import COMPACT_AFTER_UPDATES, Store


class Peer:
    """Another replica of the document, whose edits arrive as update bytes."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    @property
    def board(self) -> Map[Any]:
        board: Map[Any] = self.doc.get("board", type=Map)
        return board

    def set(self, key: str, value: str) -> bytes:
        with self.doc.transaction():
            self.board[key] = value
        return self.updates[-1]

    def delete(self, key: str) -> bytes:
        with self.doc.transaction():
            del self.board[key]
        return self.updates[-1]


@pytest.fixture
def store(profile_dir: Path) -> Iterator[Store]:
    with Store(profile_dir / "focusmate.db") as store:
        yield store


@pytest.fixture
def document(store: Store) -> CrdtDocument:
    return CrdtDocument(store, "room-1", kind="room", now=1.0)


def board(document: CrdtDocument) -> dict[str, Any]:
    return dict(document.map("board").to_py() or {})


def reopened(store: Store) -> dict[str, Any]:
    return board(CrdtDocument(store, "room-1", kind="room", now=9.0))


# -- local edits ----------------------------------------------------------------------------------


def test_edit_commits_one_update_per_block(store: Store, document: CrdtDocument) -> None:
    with document.edit(now=2.0) as doc:
        doc.get("board", type=Map)["a"] = "1"
        doc.get("board", type=Map)["b"] = "2"
    with document.edit(now=3.0):
        document.map("board")["c"] = "3"

    assert store.pending_update_count("room-1") == 2
    assert reopened(store) == {"a": "1", "b": "2", "c": "3"}


def test_empty_edit_commits_nothing_even_after_a_deletion(
    store: Store, document: CrdtDocument
) -> None:
    with document.edit(now=2.0):
        document.map("board")["a"] = "1"
    with document.edit(now=3.0):
        del document.map("board")["a"]
    heard: list[str] = []
    document.on_change(lambda _update, origin: heard.append(origin))

    with document.edit(now=4.0):
        document.map("board")  # read, change nothing

    assert store.pending_update_count("room-1") == 2
    assert heard == []


def test_edit_of_a_deletion_commits_only_that_deletion(
    store: Store, document: CrdtDocument
) -> None:
    with document.edit(now=2.0):
        document.map("board").update({"a": "1", "b": "2"})
    with document.edit(now=3.0):
        del document.map("board")["a"]
    with document.edit(now=4.0):
        del document.map("board")["b"]

    # The last update holds one deletion, not the document's whole delete set again.
    log = store.read_log("room-1")
    assert len(log.updates[2]) <= len(log.updates[1])
    assert reopened(store) == {}


def test_edit_block_that_raises_leaves_nothing_in_memory_or_on_disk(
    store: Store, document: CrdtDocument
) -> None:
    with document.edit(now=2.0):
        document.map("board")["kept"] = "yes"

    def edit_failing_halfway() -> None:
        with document.edit(now=3.0):
            document.map("board")["half"] = "written"
            raise KeyError("validation failed halfway")

    with pytest.raises(KeyError):
        edit_failing_halfway()

    assert board(document) == {"kept": "yes"}
    assert reopened(store) == {"kept": "yes"}
    with document.edit(now=4.0):  # the document is usable afterwards
        document.map("board")["next"] = "ok"
    assert reopened(store) == {"kept": "yes", "next": "ok"}


def test_nested_edit_is_refused(document: CrdtDocument) -> None:
    def nest() -> None:
        with document.edit(now=2.0), document.edit(now=2.0):
            document.map("board")["a"] = "1"

    with pytest.raises(RuntimeError, match="nested"):
        nest()
    assert board(document) == {}


def test_edit_that_cannot_be_committed_is_dropped_from_memory(
    store: Store, document: CrdtDocument
) -> None:
    with document.edit(now=2.0):
        document.map("board")["kept"] = "yes"
    store._conn.execute("PRAGMA query_only = ON")  # every write now fails inside SQLite

    with pytest.raises(StoreError, match="read-only"), document.edit(now=3.0):
        document.map("board")["lost"] = "no"

    assert board(document) == {"kept": "yes"}


# -- remote updates -------------------------------------------------------------------------------


def test_remote_update_is_persisted_and_applied(store: Store, document: CrdtDocument) -> None:
    peer = Peer()
    heard: list[tuple[bytes, str]] = []
    document.on_change(lambda update, origin: heard.append((update, origin)))

    update = peer.set("task", "write report")
    assert document.apply_remote(update, origin="peer:bob", now=2.0) is True

    assert board(document) == {"task": "write report"}
    assert heard == [(update, "peer:bob")]
    assert reopened(store) == {"task": "write report"}


def test_remote_update_that_cannot_be_persisted_is_not_applied(
    store: Store, document: CrdtDocument
) -> None:
    peer = Peer()
    store._conn.execute("PRAGMA query_only = ON")

    with pytest.raises(StoreError):
        document.apply_remote(peer.set("task", "x"), origin="peer:bob", now=2.0)

    assert board(document) == {}


def _truncated_update() -> bytes:
    update = Peer().set("task", "a real update, cut short")
    return update[: len(update) - 5]


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(b"\xff\xfe garbage \x00\x01", id="garbage"),
        pytest.param(_truncated_update(), id="truncated"),
        pytest.param(b"\x00" * (MAX_UPDATE_BYTES + 1), id="oversized"),
    ],
)
def test_malformed_remote_update_is_rejected_untouched(
    store: Store, document: CrdtDocument, update: bytes
) -> None:
    peer = Peer()
    document.apply_remote(peer.set("task", "before"), origin="peer:bob", now=2.0)
    heard: list[str] = []
    document.on_change(lambda _update, origin: heard.append(origin))

    with pytest.raises(ValidationError):
        document.apply_remote(update, origin="peer:mallory", now=3.0)

    assert store.pending_update_count("room-1") == 1
    assert board(document) == {"task": "before"}
    assert heard == []


def test_duplicate_remote_update_changes_nothing(document: CrdtDocument) -> None:
    peer = Peer()
    added = peer.set("task", "x")
    removed = peer.delete("task")
    document.apply_remote(added, origin="peer:bob", now=2.0)
    document.apply_remote(removed, origin="peer:bob", now=3.0)
    heard: list[str] = []
    document.on_change(lambda _update, origin: heard.append(origin))

    assert document.apply_remote(added, origin="peer:carol", now=4.0) is False
    assert document.apply_remote(removed, origin="peer:carol", now=5.0) is False
    assert heard == []


def test_remote_deletion_is_noticed(document: CrdtDocument) -> None:
    peer = Peer()
    document.apply_remote(peer.set("task", "x"), origin="peer:bob", now=2.0)
    heard: list[str] = []
    document.on_change(lambda _update, origin: heard.append(origin))

    assert document.apply_remote(peer.delete("task"), origin="peer:bob", now=3.0) is True

    assert board(document) == {}
    assert heard == ["peer:bob"]


def test_remote_updates_out_of_order_survive_compaction(
    store: Store, document: CrdtDocument
) -> None:
    peer = Peer()
    first = peer.set("a", "1")
    second = peer.set("b", "2")
    deletion = peer.delete("a")
    # The later updates arrive first: the document holds them pending until `first` comes.
    document.apply_remote(second, origin="peer:bob", now=2.0)
    document.apply_remote(deletion, origin="peer:bob", now=3.0)
    store.compact("room-1", now=4.0)

    late = CrdtDocument(store, "room-1", kind="room", now=5.0)
    late.apply_remote(first, origin="peer:bob", now=6.0)

    assert board(late) == {"b": "2"}


def fill_to_compaction(document: CrdtDocument, prefix: str, *, now: float) -> None:
    for i in range(COMPACT_AFTER_UPDATES):
        with document.edit(now=now + i):
            document.map("board")[f"{prefix}{i}"] = str(i)


def test_a_document_compacts_its_log_from_memory(
    store: Store, document: CrdtDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot is the document's own state: nothing folded, nothing pending, all kept."""

    def no_fold(parts: list[bytes]) -> tuple[bytes, bool]:
        raise AssertionError("the log was folded although the document held all of it")

    monkeypatch.setattr(store_module, "fold", no_fold)
    fill_to_compaction(document, "k", now=2.0)

    log = store.read_log("room-1")
    assert log.updates == [] and log.snapshot is not None and log.snapshot_complete
    assert reopened(store) == {f"k{i}": str(i) for i in range(COMPACT_AFTER_UPDATES)}


def test_an_update_from_another_process_in_between_is_folded_in(profile_dir: Path) -> None:
    """Our memory lacks what another process appended meanwhile, so the log is folded instead
    of our state being stored: the other process's edit survives the compaction."""
    with Store(profile_dir / "focusmate.db") as ours, Store(profile_dir / "focusmate.db") as theirs:
        document = CrdtDocument(ours, "room-1", kind="room", now=1.0)
        other = CrdtDocument(theirs, "room-1", kind="room", now=1.0)
        with document.edit(now=2.0):
            document.map("board")["first"] = "ours"
        with other.edit(now=3.0):
            other.map("board")["theirs"] = "kept"
        fill_to_compaction(document, "k", now=4.0)

        assert ours.read_log("room-1").snapshot is not None  # it compacted
        fresh = board(CrdtDocument(ours, "room-1", kind="room", now=9.0))
        assert fresh["theirs"] == "kept" and fresh["first"] == "ours"
        assert len(fresh) == COMPACT_AFTER_UPDATES + 2


# -- listeners ------------------------------------------------------------------------------------


def test_listener_hears_local_edits_and_can_unsubscribe(
    store: Store, document: CrdtDocument
) -> None:
    heard: list[tuple[bytes, str]] = []
    unsubscribe = document.on_change(lambda update, origin: heard.append((update, origin)))

    with document.edit(now=2.0):
        document.map("board")["a"] = "1"
    unsubscribe()
    with document.edit(now=3.0):
        document.map("board")["b"] = "2"

    assert [origin for _, origin in heard] == ["local"]
    # The update handed over is the committed one: a peer applying it gets the edit.
    assert heard[0][0] == store.read_log("room-1").updates[0]
    replica: Doc[Any] = Doc()
    replica.apply_update(heard[0][0])
    assert replica.get("board", type=Map).to_py() == {"a": "1"}


def test_refresh_does_not_report_own_edits_back(store: Store, document: CrdtDocument) -> None:
    with document.edit(now=2.0):
        document.map("board")["a"] = "1"
    with document.edit(now=3.0):
        del document.map("board")["a"]

    assert document.refresh() is False


def test_another_process_commit_is_read_again_when_taking_it_in_failed(
    profile_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should applying what another process committed fail once, the next refresh reads it
    again, instead of counting it as seen and never showing it."""
    with Store(profile_dir / "focusmate.db") as ours, Store(profile_dir / "focusmate.db") as theirs:
        document = CrdtDocument(ours, "room-1", kind="room", now=1.0)
        other = CrdtDocument(theirs, "room-1", kind="room", now=1.0)
        with other.edit(now=2.0):
            other.map("board")["theirs"] = "shown"
        take_in = document._take_in

        def failing(*args: Any, **kwargs: Any) -> bool:
            monkeypatch.setattr(document, "_take_in", take_in)  # fails once
            raise MemoryError("out of memory while applying")

        monkeypatch.setattr(document, "_take_in", failing)
        with pytest.raises(MemoryError):
            document.refresh()
        assert document.refresh() is True
        assert board(document) == {"theirs": "shown"}


# -- a gap held open ------------------------------------------------------------------------------


def count_full_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record each read of a document's whole log (a rebuild); returns the growing record."""
    reads: list[int] = []
    read_log = store.read_log

    def counting(doc_id: str, *, after_seq: int = 0) -> store_module.DocLog:
        if after_seq == 0:
            reads.append(after_seq)
        return read_log(doc_id, after_seq=after_seq)

    monkeypatch.setattr(store, "read_log", counting)
    return reads


def forwarded_like_the_engine(document: CrdtDocument) -> list[bytes]:
    """What sync.engine passes on: a 'store' change as the diff from the last state passed on."""
    forwarded: list[bytes] = []
    passed_on = document.state_vector()

    def forward(update: bytes, origin: str) -> None:
        nonlocal passed_on
        forwarded.append(document.encode_update(passed_on) if origin == "store" else update)
        passed_on = document.state_vector()

    document.on_change(forward)
    return forwarded


def test_a_gap_held_open_does_not_rebuild_the_document_for_every_update(
    store: Store, document: CrdtDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catching up out of order (the first update of a peer comes last) used to rebuild the
    document from its whole log for every update, O(room) each. Updates that only add to what
    waits are persisted and left for the rebuild that follows the gap closing: a constant
    number of rebuilds, and the change they make is heard once, forwarded whole."""
    author, other = Peer(), Peer()
    first = author.set("p0", "first post")
    later = [author.set(f"p{i}", f"post {i}") for i in range(1, 31)]
    heard: list[str] = []
    document.on_change(lambda _update, origin: heard.append(origin))
    forwarded = forwarded_like_the_engine(document)
    reads = count_full_reads(store, monkeypatch)

    for i, update in enumerate(later):
        document.apply_remote(update, origin="peer:bob", now=2.0 + i)
    # An update that can integrate while the gap stays open still shows at once.
    assert document.apply_remote(other.set("other", "shown"), origin="peer:carol", now=40.0)
    assert board(document)["other"] == "shown"
    assert len(reads) <= 3, f"{len(reads)} rebuilds for {len(later) + 1} updates"
    assert store.pending_update_count("room-1") == len(later) + 1  # all of it on disk

    heard.clear()
    assert document.apply_remote(first, origin="peer:bob", now=50.0) is True

    expected = {f"p{i}": "first post" if i == 0 else f"post {i}" for i in range(31)}
    expected["other"] = "shown"
    assert board(document) == expected
    assert heard == ["store"]  # the gap closing, once
    assert len(reads) <= 4
    replica: Doc[Any] = Doc()  # a peer that got only what was forwarded has it all
    for update in forwarded:
        replica.apply_update(update)
    assert replica.get("board", type=Map).to_py() == expected
    assert reopened(store) == expected


def test_a_deletion_while_a_gap_is_open_shows_at_once(document: CrdtDocument) -> None:
    """A deletion is never left waiting: what it deletes may be on screen."""
    author, other = Peer(), Peer()
    document.apply_remote(other.set("stale", "x"), origin="peer:carol", now=1.5)
    author.set("p0", "first")
    for i, update in enumerate([author.set(f"p{i}", "later") for i in range(1, 4)]):
        document.apply_remote(update, origin="peer:bob", now=2.0 + i)

    assert document.apply_remote(other.delete("stale"), origin="peer:carol", now=9.0) is True
    assert "stale" not in board(document)


def test_another_process_commit_is_picked_up_while_a_gap_is_open(profile_dir: Path) -> None:
    with Store(profile_dir / "focusmate.db") as ours, Store(profile_dir / "focusmate.db") as theirs:
        document = CrdtDocument(ours, "room-1", kind="room", now=1.0)
        author = Peer()
        first = author.set("p0", "first")
        for i, update in enumerate([author.set(f"p{i}", "later") for i in range(1, 4)]):
            document.apply_remote(update, origin="peer:bob", now=2.0 + i)
        other = CrdtDocument(theirs, "room-1", kind="room", now=6.0)
        with other.edit(now=7.0):
            other.map("board")["cli"] = "edit"

        assert document.refresh() is True
        assert board(document)["cli"] == "edit"
        document.apply_remote(first, origin="peer:bob", now=8.0)
        assert board(document) == {"p0": "first", "p1": "later", "p2": "later", "p3": "later"} | {
            "cli": "edit"
        }


# Two updates for client 2^31 (tests/unit/test_fuzz_decoders.py): both decode alone and start
# past any state vector (they only wait), but Yrs panics merging the second with the first.
EQUIVOCATION_BASE = bytes.fromhex("010280808080081e2701016d017a02040080808080081e027a7a00")
EQUIVOCATION = bytes.fromhex(
    "01028080808008808080801e2701016d017a0204808080808080801080c08080081e027a7a00"
)


def test_an_update_left_waiting_is_still_tried_before_it_is_persisted(
    store: Store, document: CrdtDocument
) -> None:
    """Leaving an update for a later rebuild must not let a poisonous one onto the disk: it
    would make every rebuild after it panic, and the document could never close its gap."""
    author = Peer()
    author.set("p0", "first")
    document.apply_remote(EQUIVOCATION_BASE, origin="peer:mallory", now=2.0)  # opens a gap
    document.apply_remote(author.set("p1", "later"), origin="peer:bob", now=3.0)  # rebuilds
    log_before = store.read_log("room-1").updates

    with pytest.raises(ValidationError, match="could not be applied"):
        document.apply_remote(EQUIVOCATION, origin="peer:mallory", now=4.0)

    assert store.read_log("room-1").updates == log_before
    document.apply_remote(author.set("p2", "still syncing"), origin="peer:bob", now=5.0)
    assert store.pending_update_count("room-1") == len(log_before) + 1


def test_pycrdt_still_loses_entries_applied_into_a_gapped_document() -> None:
    """Why a gapped document is rebuilt from its merged log instead of applying updates into
    it: Yrs drops entries integrating updates into a document that holds pending ones. Should
    this start failing, pycrdt fixed it and the rebuilds may go."""
    author = Peer()
    updates = [author.set(f"k{i % 2}", str(i)) for i in range(5)]
    one_by_one: Doc[Any] = Doc()
    for update in reversed(updates):
        one_by_one.apply_update(update)
    assert one_by_one.get("board", type=Map).to_py() != author.board.to_py()
