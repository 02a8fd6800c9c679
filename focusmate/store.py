"""The local store: one SQLite file per profile holding CRDT update logs and local-only tables.

Rules this module keeps:

* WAL mode and ``synchronous=FULL``: a committed write survives ``kill -9`` and power loss, and
  readers in other processes (the app and a CLI command on one profile) never block the writer.
* One transaction per write. Appending an update and compacting a log are each atomic, so a
  crash never leaves half an update behind.
* A document is its snapshot (``doc_snapshots``) followed by every update with a larger ``seq``.
  Compaction replaces the snapshot and deletes the updates it absorbed in one transaction;
  readers that knew only older sequence numbers re-apply the snapshot (CRDT updates are
  idempotent), so no process ever misses an edit.
* The file is recognised by ``PRAGMA application_id``; a corrupt file, a foreign SQLite file or one
  written by a newer FocusMate raises :class:`StoreError` and is left untouched — never reset.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pycrdt import Doc, get_update, merge_updates

from focusmate.errors import StoreError
from focusmate.lib0 import Reader
from focusmate.migrations import MIGRATIONS, SCHEMA_VERSION

APPLICATION_ID = 0x466D5431  # "FmT1"
BUSY_TIMEOUT_S = 15.0
COMPACT_AFTER_UPDATES = 200


@dataclass(frozen=True)
class DocLog:
    """What the store holds for one document from some point on."""

    snapshot: bytes | None
    updates: list[bytes]
    last_seq: int
    snapshot_complete: bool = False  # nothing in it waits for a dependency: apply it as it is


class Store:
    """A profile database. Not thread-safe: one instance per thread (or per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn, self.read_only = _connect(path)
        try:
            self._check_and_migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock up front so two writers queue cleanly."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise _store_error(self.path, err) from err
        try:
            yield self._conn
        except sqlite3.Error as err:
            # A statement failed (a read-only file, a full disk...): callers see StoreError.
            self._rollback()
            raise _store_error(self.path, err) from err
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise _store_error(self.path, err) from err

    def _rollback(self) -> None:
        """Roll back if a transaction is still open; SQLite rolls back by itself after some
        errors (I/O, full disk), and a second ROLLBACK would hide the error that matters."""
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """A read for modules that own their own local tables (``focusmate.inbox``)."""
        return self._read(sql, params)

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise _store_error(self.path, err) from err

    # -- schema ---------------------------------------------------------------------------------

    def _check_and_migrate(self) -> None:
        try:
            app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"{self.path} is not a FocusMate profile database (it is corrupt or another "
                "kind of file). It was left untouched: move it aside or restore a backup."
            ) from err
        if app_id == 0 and tables == 0 and version == 0:
            self._initialise()
        elif app_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path} is an SQLite database of another application, not a FocusMate "
                "profile. It was left untouched: use another --profile directory."
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer FocusMate (schema {version}, this version "
                f"knows {SCHEMA_VERSION}). Upgrade FocusMate to open it."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as conn:
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current >= target:  # another process migrated first
                    continue
                for statement in _statements(MIGRATIONS[target - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
        self._ensure_wal()

    def _initialise(self) -> None:
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            with self.transaction() as conn:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.Error as err:
            raise _store_error(self.path, err) from err

    def _ensure_wal(self) -> None:
        """A FocusMate file restored or copied without its WAL flag is switched back to WAL.

        Only ever runs on a file recognised as ours, and writes nothing when it is already WAL (so
        a read-only profile still opens for reading). On a read-only filesystem the file is
        opened immutable, which SQLite reports as ``delete`` mode: nothing to switch there.
        """
        if self.read_only:
            return
        try:
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                self._conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as err:
            raise _store_error(self.path, err) from err

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def integrity_problems(self) -> list[str]:
        """``PRAGMA integrity_check`` as a list of problems (empty when the file is sound)."""
        rows = self._read("PRAGMA integrity_check")
        return [str(r[0]) for r in rows if r[0] != "ok"]

    # -- documents ------------------------------------------------------------------------------

    def ensure_document(self, doc_id: str, *, kind: str, now: float) -> None:
        if self.has_document(doc_id):  # no write: a read-only profile still opens its documents
            return
        if self.read_only:  # on a read-only filesystem a missing document reads as empty
            return
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO documents(doc_id, kind, created_at) VALUES (?, ?, ?)",
                (doc_id, kind, now),
            )

    def has_document(self, doc_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)))

    def document_ids(self, *, kind: str | None = None) -> list[str]:
        if kind is None:
            rows = self._read("SELECT doc_id FROM documents ORDER BY doc_id")
        else:
            rows = self._read(
                "SELECT doc_id FROM documents WHERE kind = ? ORDER BY doc_id", (kind,)
            )
        return [str(r[0]) for r in rows]

    def append_update(self, doc_id: str, update: bytes, *, origin: str, now: float) -> int:
        """Commit one update to the document's log; returns its sequence number."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO doc_updates(doc_id, data, origin, created_at) VALUES (?, ?, ?, ?)",
                (doc_id, update, origin, now),
            )
            seq = cur.lastrowid
        assert seq is not None
        return seq

    def read_log(self, doc_id: str, *, after_seq: int = 0) -> DocLog:
        """The snapshot (when it absorbed anything past ``after_seq``) and the newer updates.

        Read in one transaction so a concurrent compaction cannot slip between the two queries.
        """
        try:
            self._conn.execute("BEGIN")
            try:
                snap = self._conn.execute(
                    "SELECT data, upto_seq, complete FROM doc_snapshots WHERE doc_id = ?",
                    (doc_id,),
                ).fetchone()
                snapshot: bytes | None = None
                complete = False
                start = after_seq
                if snap is not None and snap[1] > after_seq:
                    snapshot, start, complete = bytes(snap[0]), int(snap[1]), bool(snap[2])
                rows = self._conn.execute(
                    "SELECT seq, data FROM doc_updates WHERE doc_id = ? AND seq > ? ORDER BY seq",
                    (doc_id, start),
                ).fetchall()
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise _store_error(self.path, err) from err
        last = int(rows[-1][0]) if rows else start
        return DocLog(
            snapshot=snapshot,
            updates=[bytes(r[1]) for r in rows],
            last_seq=last,
            snapshot_complete=complete,
        )

    def pending_update_count(self, doc_id: str) -> int:
        row = self._read("SELECT count(*) FROM doc_updates WHERE doc_id = ?", (doc_id,))
        return int(row[0][0])

    def updates_between(self, doc_id: str, after_seq: int, before_seq: int) -> bool:
        """Whether the log holds an update with ``after_seq < seq < before_seq``."""
        return bool(
            self._read(
                "SELECT 1 FROM doc_updates WHERE doc_id = ? AND seq > ? AND seq < ? LIMIT 1",
                (doc_id, after_seq, before_seq),
            )
        )

    def compact(self, doc_id: str, *, now: float, live: tuple[bytes, int] | None = None) -> int:
        """Fold the document's log into its snapshot; returns how many updates were absorbed.

        ``live`` is ``(state, seq)``: the encoded state of a document that holds every update up
        to ``seq`` and nothing pending. When ``seq`` is still the last update, that state is the
        snapshot, which saves re-folding the whole log (half a second for a 10k-post room).
        Otherwise the log is folded inside the write transaction, so updates committed meanwhile
        by another process wait for it and land after the new snapshot.
        """
        with self.transaction() as conn:
            seqs = conn.execute(
                "SELECT seq FROM doc_updates WHERE doc_id = ? ORDER BY seq", (doc_id,)
            ).fetchall()
            if not seqs:
                return 0
            upto = int(seqs[-1][0])
            if live is not None and live[1] == upto:
                folded, complete = live[0], True
            else:
                snap = conn.execute(
                    "SELECT data FROM doc_snapshots WHERE doc_id = ?", (doc_id,)
                ).fetchone()
                rows = conn.execute(
                    "SELECT data FROM doc_updates WHERE doc_id = ? AND seq <= ? ORDER BY seq",
                    (doc_id, upto),
                ).fetchall()
                parts = [bytes(r[0]) for r in ([snap] if snap is not None else []) + rows]
                folded, complete = fold(parts)
            conn.execute(
                "INSERT INTO doc_snapshots(doc_id, data, upto_seq, compacted_at, complete)"
                " VALUES (?,?,?,?,?) ON CONFLICT(doc_id) DO UPDATE SET data = excluded.data,"
                " upto_seq = excluded.upto_seq, compacted_at = excluded.compacted_at,"
                " complete = excluded.complete",
                (doc_id, folded, upto, now, int(complete)),
            )
            conn.execute("DELETE FROM doc_updates WHERE doc_id = ? AND seq <= ?", (doc_id, upto))
        return len(seqs)

    def delete_document(self, doc_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM doc_updates WHERE doc_id = ?", (doc_id,))
            conn.execute("DELETE FROM doc_snapshots WHERE doc_id = ?", (doc_id,))
            conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    def last_seq(self) -> int:
        """The newest update sequence number in the whole store (a cheap change detector)."""
        row = self._read("SELECT max(seq) FROM doc_updates")
        return int(row[0][0] or 0)

    def data_version(self) -> int:
        """Changes whenever another connection commits: poll it to notice other processes."""
        return int(self._read("PRAGMA data_version")[0][0])

    # -- local tables ---------------------------------------------------------------------------

    def get_setting(self, key: str) -> object | None:
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(str(rows[0][0])) if rows else None

    def put_setting(self, key: str, value: object) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, sort_keys=True)),
            )

    def add_room(self, room_id: str, *, secret: bytes, now: float) -> None:
        """Remember a room's secret; rejoining a room one left clears ``left_at``."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO rooms(room_id, secret, joined_at, left_at) VALUES (?, ?, ?, NULL)"
                " ON CONFLICT(room_id) DO UPDATE SET left_at = NULL",
                (room_id, secret, now),
            )

    def mark_room_left(self, room_id: str, *, now: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE rooms SET left_at = ? WHERE room_id = ?", (now, room_id))

    def room_secret(self, room_id: str) -> bytes | None:
        rows = self._read("SELECT secret FROM rooms WHERE room_id = ?", (room_id,))
        return bytes(rows[0][0]) if rows else None

    def active_room_ids(self) -> list[str]:
        rows = self._read("SELECT room_id FROM rooms WHERE left_at IS NULL ORDER BY joined_at")
        return [str(r[0]) for r in rows]

    def get_focus_watch(self, room_id: str) -> tuple[str, float] | None:
        rows = self._read("SELECT state, checked_at FROM focus_watch WHERE room_id = ?", (room_id,))
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    def put_focus_watch(self, room_id: str, *, state: str, checked_at: float) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO focus_watch(room_id, state, checked_at) VALUES (?, ?, ?)"
                " ON CONFLICT(room_id) DO UPDATE SET state = excluded.state,"
                " checked_at = excluded.checked_at",
                (room_id, state, checked_at),
            )


def fold_updates(parts: list[bytes]) -> bytes:
    """One update equivalent to applying ``parts`` in order: the snapshot a compaction stores."""
    return fold(parts)[0]


def fold(parts: list[bytes]) -> tuple[bytes, bool]:
    """:func:`fold_updates`, and whether the result is complete (holds nothing pending).

    Normally the parts are integrated into a document and its (garbage-collected) state is
    encoded. But a log can hold updates whose dependencies have not arrived yet (a peer sent
    them out of order): a document keeps those *pending*, and ``get_update()`` leaves pending
    structs and pending deletions out, so folding them that way would lose them for good. In that
    case the parts are merged byte-wise instead, which keeps everything for a later compaction.
    """
    doc: Doc[Any] = Doc()
    for part in parts:
        doc.apply_update(part)
    merged = merge_updates(*parts)
    state = doc.get_state()
    # What the merged log holds beyond the document: structs the document does not have, then the
    # log's whole delete set. The document's own delete set, encoded the same way, for comparison.
    beyond = get_update(merged, state)
    own = doc.get_update(state)
    if beyond[:1] == b"\x00" and _id_ranges_within(_delete_set(beyond), _delete_set(own)):
        return doc.get_update(), True
    return merged, False


def _delete_set(update: bytes) -> dict[int, list[tuple[int, int]]]:
    """The delete set of a v1 update whose struct section is empty: client -> [(start, end)]."""
    reader = Reader(update, pos=1)  # past the empty struct section
    ranges: dict[int, list[tuple[int, int]]] = {}
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        spans = ranges.setdefault(client, [])
        for _ in range(reader.var_uint()):
            clock = reader.var_uint()
            spans.append((clock, clock + reader.var_uint()))
    return ranges


def _id_ranges_within(
    inner: dict[int, list[tuple[int, int]]], outer: dict[int, list[tuple[int, int]]]
) -> bool:
    """Whether every id range of ``inner`` is covered by the ranges of ``outer``."""
    for client, spans in inner.items():
        cover = sorted(outer.get(client, []))
        for start, end in spans:
            at = start
            for c_start, c_end in cover:
                if c_start <= at < c_end:
                    at = c_end
                if at >= end:
                    break
            if at < end:
                return False
    return True


def _connect(path: Path) -> tuple[sqlite3.Connection, bool]:
    """The connection, and whether it is read-only because the filesystem is."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a profile database.")
    read_only = on_read_only_filesystem(path)
    try:
        if read_only:
            conn = _connect_read_only(path)
        else:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as err:
        raise _store_error(path, err) from err
    return conn, read_only


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A profile on a read-only filesystem (a read-only mount, a locked-down backup disk).

    SQLite cannot create the ``-shm`` file a WAL database needs, so a plain open fails with
    "unable to open database file". When no ``-wal`` file holds edits (FocusMate closed the
    profile cleanly), nothing can change the file, so it is opened *immutable*. When one does,
    reading past it would hide those edits: that is refused, saying what to do.
    """
    if not path.exists():
        raise StoreError(f"Cannot create the profile database {path}: the filesystem is read-only.")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None
            )
            conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error:
            raise StoreError(
                f"Cannot open the profile database {path}: it is on a read-only filesystem and "
                f"its journal {wal.name} holds edits not yet in the database file. Make the "
                "filesystem writable once, open the profile, and they are folded in."
            ) from None
        return conn
    return sqlite3.connect(
        f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, isolation_level=None
    )


def on_read_only_filesystem(path: Path) -> bool:
    """Whether ``path`` (or the nearest existing directory above it) is on a read-only mount."""
    for place in (path, *path.parents):
        try:
            return bool(os.statvfs(place).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _store_error(path: Path, err: sqlite3.Error) -> StoreError:
    text = str(err)
    if on_read_only_filesystem(path):
        hint = "the profile is on a read-only filesystem; nothing was changed"
    elif "readonly" in text or "read-only" in text:
        hint = "the profile is read-only; check the directory's permissions"
    elif "disk is full" in text or "database or disk is full" in text:
        hint = "the disk is full; free some space and try again"
    elif "locked" in text or "busy" in text:
        hint = "another FocusMate process holds the profile for too long; try again"
    elif "not a database" in text or "malformed" in text:
        hint = "the file is corrupt; it was left untouched: restore a backup"
    else:
        hint = text
    return StoreError(f"Cannot use the profile database {path}: {hint}.")
