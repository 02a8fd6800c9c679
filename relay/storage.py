"""The relay's SQLite storage: document update logs with snapshots, and DM mailboxes.

Rules:

* One connection, used from one worker thread only (see :mod:`relay.committer`), so there is no
  locking in Python and SQLite sees one writer.
* WAL, and by default ``synchronous=NORMAL``: a commit that returned is in the WAL file, so a
  crashed or ``kill -9``-ed relay loses nothing committed and never leaves half a batch. Only
  an operating-system crash or power cut can lose the last commits — and clients, which are
  local-first, still hold those updates and send them again when they sync. ``full`` adds an
  fsync per group commit for operators who want the relay itself to survive power cuts.
* A document is ``snapshot (merged updates up to row id N) + updates with id > N``; compaction
  replaces a prefix of the log with a new snapshot in one transaction.
* Mailbox rows are ciphertext envelopes or receipts exactly as they will be delivered.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pycrdt import merge_updates

from focusmate.store import fold_updates
from relay.logs import fields
from sync.ysync import AwarenessEntry

APPLICATION_ID = 0x466D5452  # "FmTR"
SCHEMA_VERSION = 1
SYNCHRONOUS_MODES = frozenset({"normal", "full"})
TOUCH_EVERY_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    doc_id      TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS doc_updates (
    id          INTEGER PRIMARY KEY,
    doc_id      TEXT NOT NULL,
    data        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS doc_updates_by_doc ON doc_updates (doc_id, id);
CREATE TABLE IF NOT EXISTS doc_snapshots (
    doc_id      TEXT PRIMARY KEY,
    data        BLOB NOT NULL,
    upto        INTEGER NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mailbox (
    recipient   TEXT NOT NULL,
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    stored_at   REAL NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (recipient, id)
);
CREATE INDEX IF NOT EXISTS mailbox_by_age ON mailbox (stored_at);
"""


log = logging.getLogger("focusmate.relay")


class StorageError(Exception):
    """The data directory cannot be used (not a relay database, newer schema, unwritable)."""


class UnfoldableLog(Exception):
    """pycrdt cannot even merge a document's updates byte-wise (it panicked)."""


def fold_log(parts: list[bytes]) -> tuple[bytes, str | None]:
    """The snapshot for a document's log: folded (garbage-collected, see focusmate.store) when
    pycrdt can integrate it; else merged byte-wise, which keeps everything and is what the relay
    serves anyway, with the reason as the second item. A log can hold updates that panic
    together if it was written before the relay checked updates against the document.
    Raises UnfoldableLog when even the merge fails (the log must then stay as it is)."""
    try:
        merged = parts[0] if len(parts) == 1 else merge_updates(*parts)
    except BaseException as err:  # a Rust panic is a BaseException
        if isinstance(err, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
            raise
        raise UnfoldableLog(f"the updates cannot be merged: {err}") from None
    try:
        return fold_updates([merged]), None
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
            raise
        return merged, f"the updates cannot be integrated: {err}"


@dataclass(frozen=True)
class LoadedDoc:
    updates: list[bytes]  # snapshot first (if any), then the log, in commit order
    last_id: int  # highest update row id folded in; 0 for an empty document
    pending: int  # updates not yet folded into the snapshot
    # Each update was checked against the ones before it when it was stored (one writer). A
    # log several processes append to (relay/shared_log.py) is checked when it is loaded.
    trusted: bool = True
    presence: tuple[tuple[str, AwarenessEntry], ...] = ()  # (owner, entry), shared logs only


@dataclass(frozen=True)
class MailItem:
    recipient: str
    id: str
    kind: str
    body: str
    stored_at: float


@dataclass(frozen=True)
class DocInfo:
    doc_id: str
    created_at: float
    updated_at: float
    updates: int
    bytes: int


class RelayStorage:
    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = synchronous
        self._touched: dict[str, float] = {}  # doc id -> when its docs row was last updated
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 5000")
            self._check_identity()
            self.conn.execute("PRAGMA journal_mode = WAL")
            # Checkpoints (which fsync) run on their own connection and thread, off the commit
            # path: see Checkpointer.
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")
            if synchronous not in SYNCHRONOUS_MODES:
                raise StorageError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
            self.conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self.conn.executescript(_SCHEMA)
            # Written only when they differ: a relay restarted on a full disk then still opens
            # and serves what it holds (its writes fail until space is back).
            for pragma, value in (
                ("application_id", APPLICATION_ID),
                ("user_version", SCHEMA_VERSION),
            ):
                if self.conn.execute(f"PRAGMA {pragma}").fetchone()[0] != value:
                    self.conn.execute(f"PRAGMA {pragma} = {value}")
            self._next_id = (
                1
                + self.conn.execute(
                    "SELECT max(coalesce((SELECT max(id) FROM doc_updates), 0), "
                    "coalesce((SELECT max(upto) FROM doc_snapshots), 0))"
                ).fetchone()[0]
            )
        except (sqlite3.Error, OSError) as err:
            raise StorageError(f"cannot open the relay database {path}: {err}") from None

    def reader(self) -> RelayStorage:
        """A second, read-only connection to the same database, for another thread.

        In WAL mode it reads the last committed state while the writer carries on, so what it
        returns (a document to serve, mail to deliver) is always durable.
        """
        reader = object.__new__(RelayStorage)
        reader.path = self.path
        reader.synchronous = self.synchronous
        reader.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.conn.execute("PRAGMA busy_timeout = 5000")
        reader.conn.execute("PRAGMA query_only = 1")
        reader._next_id = 0
        reader._touched = {}
        return reader

    def _check_identity(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise StorageError(f"{self.path} is not a FocusMate relay database")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} was written by a newer relay (schema {version}); upgrade this one"
            )

    def close(self) -> None:
        self.conn.close()

    # -- transactions (the committer wraps a batch in one) ----------------------------------------

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # -- documents ------------------------------------------------------------------------------

    def append_updates(self, rows: list[tuple[str, bytes]], *, now: float) -> list[int]:
        """Append updates (doc id, update) in order; returns their row ids, ascending.

        Ids come from a counter kept in memory (one writer): one ``executemany`` for the whole
        group commit instead of a statement and a savepoint per update. A document's
        ``updated_at`` (for ``admin docs`` and purging idle documents) is refreshed at most once a
        minute, not on every commit.
        """
        first = self._next_id
        ids = list(range(first, first + len(rows)))
        self.conn.executemany(
            "INSERT INTO doc_updates (id, doc_id, data) VALUES (?, ?, ?)",
            [(row_id, doc_id, data) for row_id, (doc_id, data) in zip(ids, rows, strict=True)],
        )
        touched = [
            doc_id
            for doc_id in dict.fromkeys(doc_id for doc_id, _ in rows)
            if now - self._touched.get(doc_id, -TOUCH_EVERY_SECONDS) >= TOUCH_EVERY_SECONDS
        ]
        if touched:
            self.conn.executemany(
                "INSERT INTO docs (doc_id, created_at, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (doc_id) DO UPDATE SET updated_at = excluded.updated_at",
                [(doc_id, now, now) for doc_id in touched],
            )
        self._next_id += len(rows)
        for doc_id in touched:  # (a rolled-back batch only makes updated_at a minute staler)
            self._touched[doc_id] = now
        return ids

    def load_doc(self, doc_id: str) -> LoadedDoc:
        snapshot = self.conn.execute(
            "SELECT data, upto FROM doc_snapshots WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        upto = snapshot[1] if snapshot else 0
        rows = self.conn.execute(
            "SELECT id, data FROM doc_updates WHERE doc_id = ? AND id > ? ORDER BY id",
            (doc_id, upto),
        ).fetchall()
        updates = ([bytes(snapshot[0])] if snapshot else []) + [bytes(r[1]) for r in rows]
        last_id = rows[-1][0] if rows else upto
        return LoadedDoc(updates=updates, last_id=last_id, pending=len(rows))

    def save_snapshot(self, doc_id: str, merged: bytes, *, upto: int, now: float) -> None:
        """Fold the log up to row ``upto`` into ``merged`` (which must contain exactly that)."""
        self.conn.execute(
            "INSERT INTO doc_snapshots (doc_id, data, upto, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (doc_id) DO UPDATE SET data = excluded.data, upto = excluded.upto, "
            "updated_at = excluded.updated_at WHERE excluded.upto >= doc_snapshots.upto",
            (doc_id, merged, upto, now),
        )
        self.conn.execute("DELETE FROM doc_updates WHERE doc_id = ? AND id <= ?", (doc_id, upto))

    def compact_doc(self, doc_id: str, *, now: float) -> int:
        """Merge a document's whole log into its snapshot; returns the updates folded. A log
        pycrdt cannot integrate is merged byte-wise instead, and one it cannot even merge is
        left as it is (0): both are logged, and compacting the other documents goes on."""
        loaded = self.load_doc(doc_id)
        if loaded.pending == 0:
            return 0
        try:
            folded, problem = fold_log(loaded.updates)
        except UnfoldableLog as err:
            log.error("relay.document_unfoldable", extra=fields(doc_id=doc_id, error=str(err)))
            return 0
        if problem is not None:
            log.error("relay.document_unfoldable", extra=fields(doc_id=doc_id, error=problem))
        self.save_snapshot(doc_id, folded, upto=loaded.last_id, now=now)
        return loaded.pending

    def doc_ids(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT doc_id FROM docs ORDER BY doc_id")]

    def docs(self) -> list[DocInfo]:
        rows = self.conn.execute(
            """
            SELECT d.doc_id, d.created_at, d.updated_at,
                   (SELECT count(*) FROM doc_updates u WHERE u.doc_id = d.doc_id),
                   coalesce((SELECT sum(length(data)) FROM doc_updates u
                             WHERE u.doc_id = d.doc_id), 0)
                   + coalesce((SELECT length(data) FROM doc_snapshots s
                               WHERE s.doc_id = d.doc_id), 0)
            FROM docs d ORDER BY d.updated_at DESC
            """
        ).fetchall()
        return [DocInfo(*row) for row in rows]

    def delete_doc(self, doc_id: str) -> None:
        for table in ("doc_updates", "doc_snapshots", "docs"):
            self.conn.execute(f"DELETE FROM {table} WHERE doc_id = ?", (doc_id,))

    def docs_idle_since(self, before: float) -> list[str]:
        rows = self.conn.execute("SELECT doc_id FROM docs WHERE updated_at < ?", (before,))
        return [row[0] for row in rows]

    # -- mailboxes ------------------------------------------------------------------------------

    def mailbox_usage(self, recipient: str) -> tuple[int, int]:
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM mailbox WHERE recipient = ?",
            (recipient,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def put_mail(self, item: MailItem) -> bool:
        """Store an item; False if one with the same id is already there (a resend)."""
        seq = self.conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM mailbox").fetchone()[0]
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO mailbox (recipient, id, kind, body, size, stored_at, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item.recipient, item.id, item.kind, item.body, len(item.body), item.stored_at, seq),
        )
        return cursor.rowcount == 1

    def mail_for(self, recipient: str) -> list[MailItem]:
        rows = self.conn.execute(
            "SELECT recipient, id, kind, body, stored_at FROM mailbox WHERE recipient = ? "
            "ORDER BY seq",
            (recipient,),
        ).fetchall()
        return [MailItem(*row) for row in rows]

    def take_mail(self, recipient: str, ids: Iterable[str]) -> list[MailItem]:
        """Delete acknowledged items and return them (unknown ids are ignored)."""
        taken = []
        for item_id in ids:
            row = self.conn.execute(
                "DELETE FROM mailbox WHERE recipient = ? AND id = ? "
                "RETURNING recipient, id, kind, body, stored_at",
                (recipient, item_id),
            ).fetchone()
            if row is not None:
                taken.append(MailItem(*row))
        return taken

    def expire_mail(self, before: float) -> int:
        cursor = self.conn.execute("DELETE FROM mailbox WHERE stored_at < ?", (before,))
        return cursor.rowcount

    def mailbox_totals(self) -> tuple[int, int]:
        row = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM mailbox").fetchone()
        return int(row[0]), int(row[1])

    # -- operations -----------------------------------------------------------------------------

    def check(self) -> str | None:
        """None when the database answers a read through its indexes; else what is wrong.
        Cheap on purpose (health checks run often); ``admin`` runs the full integrity check."""
        try:
            self.conn.execute("SELECT doc_id FROM docs LIMIT 1").fetchall()
            self.conn.execute("SELECT id FROM mailbox LIMIT 1").fetchall()
        except sqlite3.Error as err:
            return str(err)
        return None

    def integrity_problems(self) -> list[str]:
        rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return [] if rows == [("ok",)] else [row[0] for row in rows]

    def backup_to(self, target: Path) -> None:
        """A consistent copy through SQLite's online backup, safe while the relay runs."""
        dest = sqlite3.connect(target)
        try:
            self.conn.backup(dest)
        finally:
            dest.close()

    def stats(self) -> dict[str, int]:
        one = self.conn.execute
        return {
            "documents": one("SELECT count(*) FROM docs").fetchone()[0],
            "updates": one("SELECT count(*) FROM doc_updates").fetchone()[0],
            "snapshots": one("SELECT count(*) FROM doc_snapshots").fetchone()[0],
            "mailbox_items": one("SELECT count(*) FROM mailbox").fetchone()[0],
            "mailbox_bytes": one("SELECT coalesce(sum(size), 0) FROM mailbox").fetchone()[0],
            "database_bytes": self.path.stat().st_size if self.path.exists() else 0,
        }


class Checkpointer:
    """Copies the WAL back into the database file from a second connection, on its own thread.

    With SQLite's automatic checkpoints the writer itself pauses every few hundred commits to
    copy and fsync (it showed as p99 fan-out latency: 15.6 ms instead of 3.7 at 500 updates/s).
    A PASSIVE checkpoint here never blocks the writer; the WAL is reused once a checkpoint has
    caught up.
    """

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 5000")

    def checkpoint(self, *, truncate: bool = False) -> tuple[int, int]:
        """(WAL frames, frames copied) — ``truncate`` at shutdown to leave one compact file."""
        mode = "TRUNCATE" if truncate else "PASSIVE"
        _, wal_frames, copied = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(wal_frames), int(copied)

    def close(self) -> None:
        self.conn.close()
