"""The profile database on disk: recognised or refused (never reset), shared by two processes, and
intact after the writer is killed mid-write."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import focusmate.store as store_module
from focusmate.document import CrdtDocument
from focusmate.errors import StoreError
from focusmate.migrations import SCHEMA_VERSION
from focusmate.store import APPLICATION_ID, Store

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(profile_dir: Path) -> Path:
    return profile_dir / "focusmate.db"


def pragma(path: Path, name: str) -> Any:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def board(document: CrdtDocument) -> dict[str, Any]:
    return dict(document.map("board").to_py() or {})


def write_profile(path: Path, entries: dict[str, str]) -> None:
    with Store(path) as store:
        document = CrdtDocument(store, "room-1", kind="room", now=1.0)
        for key, value in entries.items():
            with document.edit(now=2.0):
                document.map("board")[key] = value


# -- opening --------------------------------------------------------------------------------------


def test_new_profile_is_wal_tagged_and_at_the_current_schema(db_path: Path) -> None:
    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.put_setting("theme", "dark")

    assert pragma(db_path, "journal_mode") == "wal"
    assert pragma(db_path, "application_id") == APPLICATION_ID
    assert pragma(db_path, "user_version") == SCHEMA_VERSION


def test_reopening_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    write_profile(db_path, {"a": "1"})
    with Store(db_path) as store:
        store.put_setting("theme", "dark")

    with Store(db_path) as store:
        assert store.get_setting("theme") == "dark"
        assert board(CrdtDocument(store, "room-1", kind="room", now=3.0)) == {"a": "1"}
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_problems() == []


def test_tagged_file_without_tables_is_migrated(db_path: Path) -> None:
    """A crash between tagging a new file and its first migration leaves exactly this."""
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.commit()
    conn.close()

    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.put_setting("theme", "dark")
        assert store.get_setting("theme") == "dark"
    assert pragma(db_path, "journal_mode") == "wal"


def test_profile_copied_without_wal_is_switched_back_to_wal(db_path: Path) -> None:
    write_profile(db_path, {"a": "1"})
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()

    with Store(db_path):
        pass

    assert pragma(db_path, "journal_mode") == "wal"


# -- files that must be refused, untouched --------------------------------------------------------


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _truncated_profile(path: Path) -> None:
    write_profile(path, {f"k{i}": "x" * 500 for i in range(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '555-0100')")
    conn.commit()
    conn.close()


def _foreign_database_without_tables(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()


def _newer_profile(path: Path) -> None:
    write_profile(path, {"a": "1"})
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        pytest.param(_random_bytes, "corrupt", id="random-bytes"),
        pytest.param(_truncated_profile, "corrupt", id="truncated"),
        pytest.param(_foreign_database, "another application", id="foreign"),
        pytest.param(_foreign_database_without_tables, "another application", id="foreign-empty"),
        pytest.param(_newer_profile, "newer FocusMate", id="newer-schema"),
    ],
)
def test_unusable_file_is_refused_and_left_untouched(
    db_path: Path, make_file: Any, message: str
) -> None:
    make_file(db_path)
    before = db_path.read_bytes()

    with pytest.raises(StoreError, match=message) as raised:
        Store(db_path)

    assert str(db_path) in str(raised.value)
    assert db_path.read_bytes() == before


# -- a read-only profile --------------------------------------------------------------------------


@pytest.fixture
def make_read_only(monkeypatch: pytest.MonkeyPatch, db_path: Path) -> Callable[[], None]:
    """From the call on, the store opens the profile the way SQLite opens a file it may not write.

    The tests run as root, and root ignores ``chmod`` (CAP_DAC_OVERRIDE), so a chmod-ed profile
    would still be writable. When SQLite cannot open a file for writing it opens it read-only and
    every write fails with SQLITE_READONLY; a ``mode=ro`` URI puts the connection in exactly that
    state, independent of who runs the tests.
    """
    real_connect = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if Path(database) == db_path:
            return real_connect(f"file:{db_path}?mode=ro", *args, uri=True, **kwargs)
        return real_connect(database, *args, **kwargs)

    def make() -> None:
        monkeypatch.setattr(store_module.sqlite3, "connect", connect)

    return make


def test_read_only_profile_reads_but_refuses_edits(
    db_path: Path, make_read_only: Callable[[], None]
) -> None:
    write_profile(db_path, {"a": "1"})
    make_read_only()

    with Store(db_path) as store:
        document = CrdtDocument(store, "room-1", kind="room", now=3.0)
        assert board(document) == {"a": "1"}

        with pytest.raises(StoreError, match="read-only"), document.edit(now=4.0):
            document.map("board")["b"] = "2"

        assert board(document) == {"a": "1"}  # the unsaved edit is gone from memory too
        with pytest.raises(StoreError, match="read-only"):
            store.put_setting("theme", "dark")


def test_new_profile_in_read_only_place_is_refused(
    db_path: Path, make_read_only: Callable[[], None]
) -> None:
    db_path.write_bytes(b"")  # an empty file is a new database to SQLite
    make_read_only()

    with pytest.raises(StoreError, match="read-only"):
        Store(db_path)

    assert db_path.read_bytes() == b""


# -- compaction -----------------------------------------------------------------------------------


def test_compaction_folds_the_log_and_other_readers_miss_nothing(db_path: Path) -> None:
    with Store(db_path) as writer_store, Store(db_path) as reader_store:
        writer = CrdtDocument(writer_store, "room-1", kind="room", now=1.0)
        for i in range(20):
            with writer.edit(now=2.0):
                writer.map("board")[f"early-{i}"] = str(i)
        reader = CrdtDocument(reader_store, "room-1", kind="room", now=3.0)
        # Edits the reader has not seen yet, then folded away before it looks.
        for i in range(100):
            with writer.edit(now=4.0):
                writer.map("board")[f"middle-{i}"] = str(i)
                if i % 10 == 0:
                    del writer.map("board")[f"early-{i // 10}"]

        assert writer_store.compact("room-1", now=5.0) == 120
        assert writer_store.pending_update_count("room-1") == 0

        for i in range(5):
            with writer.edit(now=6.0):
                writer.map("board")[f"late-{i}"] = str(i)

        assert reader.refresh() is True
        assert board(reader) == board(writer)
        assert board(CrdtDocument(reader_store, "room-1", kind="room", now=7.0)) == board(writer)
        assert len(board(writer)) == 20 - 10 + 100 + 5


def test_log_is_compacted_automatically_and_reloads_identically(db_path: Path) -> None:
    with Store(db_path) as store:
        document = CrdtDocument(store, "room-1", kind="room", now=1.0)
        for i in range(store_module.COMPACT_AFTER_UPDATES + 10):
            with document.edit(now=2.0):
                document.map("board")[f"k{i % 50}"] = str(i)
        expected = board(document)
        assert store.pending_update_count("room-1") < store_module.COMPACT_AFTER_UPDATES

    with Store(db_path) as store:
        assert board(CrdtDocument(store, "room-1", kind="room", now=3.0)) == expected


# -- two processes on one profile -----------------------------------------------------------------


def run_python(script: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


OTHER_PROCESS = """
    import json, sys
    from pathlib import Path
    from focusmate.document import CrdtDocument
    from focusmate.store import Store

    store = Store(Path({path!r}))
    document = CrdtDocument(store, "room-1", kind="room", now=1.0)
    print("ready", flush=True)
    for i in range({count}):
        with document.edit(now=2.0):
            document.map("board")[f"child-{{i}}"] = str(i)
        document.refresh()
    print("done", flush=True)
    sys.stdin.readline()  # wait until the parent has finished its edits
    document.refresh()
    print(json.dumps(sorted(document.map("board").to_py())), flush=True)
"""


@pytest.mark.timeout(60)
def test_two_processes_edit_one_document(db_path: Path) -> None:
    count = 150
    with Store(db_path) as store:
        document = CrdtDocument(store, "room-1", kind="room", now=1.0)
        child = run_python(OTHER_PROCESS.format(path=str(db_path), count=count))
        assert child.stdout is not None and child.stdin is not None
        try:
            assert child.stdout.readline() == "ready\n"
            for i in range(count):
                with document.edit(now=2.0):
                    document.map("board")[f"parent-{i}"] = str(i)
                document.refresh()
            assert child.stdout.readline() == "done\n"
            child.stdin.write("go\n")
            child.stdin.flush()
            seen_by_child = json.loads(child.stdout.readline())
        finally:
            child.stdin.close()
            child.wait(timeout=30)
        assert child.returncode == 0

        document.refresh()
        every_key = sorted(
            [f"parent-{i}" for i in range(count)] + [f"child-{i}" for i in range(count)]
        )
        assert sorted(board(document)) == every_key
        assert seen_by_child == every_key
        assert store.integrity_problems() == []


# -- the crash test -------------------------------------------------------------------------------


WRITER = """
    import sys
    from pathlib import Path
    from focusmate.document import CrdtDocument
    from focusmate.store import Store

    store = Store(Path({path!r}))
    document = CrdtDocument(store, "room-1", kind="room", now=1.0)
    i = 0
    while True:
        with document.edit(now=float(i)):
            document.map("board")[f"k{{i}}"] = f"{{i}}:" + "x" * 300 + ":end"
        print(f"k{{i}}", flush=True)  # only once the commit has returned
        i += 1
"""


def expected_value(key: str) -> str:
    return f"{key[1:]}:" + "x" * 300 + ":end"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kill_after", [57, 200, 333])
def test_killed_writer_loses_no_committed_edit_and_leaves_nothing_half_written(
    db_path: Path, kill_after: int
) -> None:
    # 200 is where the writer compacts its log (COMPACT_AFTER_UPDATES).
    writer = run_python(WRITER.format(path=str(db_path)))
    assert writer.stdout is not None
    committed: list[str] = []
    try:
        while len(committed) < kill_after:
            line = writer.stdout.readline()
            assert line, f"writer exited early with {writer.poll()}"
            committed.append(line.strip())
        os.kill(writer.pid, signal.SIGKILL)
        # Lines already in the pipe were printed after their commit too.
        committed += [line.strip() for line in writer.stdout if line.endswith("\n")]
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    with Store(db_path) as store:
        assert store.integrity_problems() == []
        document = CrdtDocument(store, "room-1", kind="room", now=1.0)
        entries = board(document)
    # Every printed edit is there; at most the one in flight besides; each value whole.
    assert set(committed) <= set(entries)
    assert len(entries) - len(committed) in (0, 1)
    assert set(entries) == {f"k{i}" for i in range(len(entries))}
    assert all(value == expected_value(key) for key, value in entries.items())
