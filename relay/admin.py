"""``focusmate-relay admin``: look after a relay's data directory from the shell.

``stats`` and ``docs`` read; ``backup`` copies the database through SQLite's online backup (safe
while the relay runs); ``compact`` folds update logs into snapshots; ``purge`` deletes old mail
and documents idle for long; ``restore`` replaces the database with a backup and refuses while a
relay holds the data directory.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from relay.config import DATABASE_NAME
from relay.storage import APPLICATION_ID, RelayStorage, StorageError

ADMIN_COMMANDS = frozenset({"stats", "docs", "backup", "restore", "compact", "purge"})
DAY = 86_400.0


def add_admin_parsers(sub: Any) -> None:
    admin = sub.add_parser("admin", help="inspect and maintain the data directory")
    commands = admin.add_subparsers(dest="command", required=True)
    commands.add_parser("stats", help="counts and sizes")
    docs = commands.add_parser("docs", help="documents, most recently written first")
    docs.add_argument("--limit", type=int, default=100)
    backup = commands.add_parser("backup", help="consistent copy of the database")
    backup.add_argument("target", type=Path)
    restore = commands.add_parser("restore", help="replace the database with a backup")
    restore.add_argument("source", type=Path)
    compact = commands.add_parser("compact", help="fold update logs into snapshots")
    compact.add_argument("doc_id", nargs="?", help="one document (default: all)")
    purge = commands.add_parser("purge", help="delete old mail and long-idle documents")
    purge.add_argument("--mail-older-than-days", type=float, default=30.0)
    purge.add_argument(
        "--docs-idle-days", type=float, help="also delete documents not written for this long"
    )
    purge.add_argument("--doc", action="append", default=[], help="delete this document")
    purge.add_argument("--vacuum", action="store_true", help="give freed space back to the disk")


def run_admin(
    args: argparse.Namespace, *, lock: Callable[[Path], AbstractContextManager[None]]
) -> dict[str, Any]:
    database = args.data_dir / DATABASE_NAME
    if args.command == "restore":
        return _restore(args.source, database, lock=lock(args.data_dir))
    if not database.exists():
        raise StorageError(f"no relay database in {args.data_dir}")
    deletes_documents = args.command == "purge" and (args.doc or args.docs_idle_days is not None)
    # a running relay keeps documents in memory and would write a deleted one back
    guard = lock(args.data_dir) if deletes_documents else contextlib.nullcontext()
    with guard:
        storage = RelayStorage(database)
        try:
            return _run(storage, args)
        finally:
            storage.close()


def _run(storage: RelayStorage, args: argparse.Namespace) -> dict[str, Any]:
    now = time.time()
    if args.command == "stats":
        return storage.stats()
    if args.command == "docs":
        return {"docs": [asdict(info) for info in storage.docs()[: args.limit]]}
    if args.command == "backup":
        if args.target.exists():
            raise StorageError(f"{args.target} exists; choose a new file name")
        storage.backup_to(args.target)
        return {"backup": str(args.target), "bytes": args.target.stat().st_size}
    if args.command == "compact":
        ids = [args.doc_id] if args.doc_id else storage.doc_ids()
        folded = 0
        for doc_id in ids:
            storage.begin()
            try:
                folded += storage.compact_doc(doc_id, now=now)
                storage.commit()
            except BaseException:
                storage.rollback()
                raise
        return {"documents": len(ids), "updates_folded": folded}
    # purge
    storage.begin()
    try:
        mail = storage.expire_mail(now - args.mail_older_than_days * DAY)
        doomed = list(args.doc)
        if args.docs_idle_days is not None:
            doomed += storage.docs_idle_since(now - args.docs_idle_days * DAY)
        for doc_id in doomed:
            storage.delete_doc(doc_id)
        storage.commit()
    except BaseException:
        storage.rollback()
        raise
    if args.vacuum:
        storage.conn.execute("VACUUM")
    return {"mail_deleted": mail, "documents_deleted": len(doomed)}


def _application_id(path: Path) -> int:
    """The SQLite header's application id (bytes 68-71), read without opening a database."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return 0
    return int.from_bytes(header[68:72], "big")


def _restore(source: Path, database: Path, *, lock: AbstractContextManager[None]) -> dict[str, Any]:
    """Copy the backup next to the database, check the copy (never the backup itself, which may
    be read-only or checksummed), then rename it into place."""
    if not source.is_file():
        raise StorageError(f"no backup at {source}")
    with lock:
        tmp = database.with_suffix(".restoring")
        shutil.copyfile(source, tmp)
        try:
            if _application_id(tmp) != APPLICATION_ID:
                raise StorageError(f"{source} is not a FocusMate relay backup")
            check = RelayStorage(tmp)
            try:
                problems = check.integrity_problems()
                check.conn.execute("PRAGMA journal_mode = DELETE")  # fold any WAL into the file
            finally:
                check.close()
            if problems:
                raise StorageError(f"the backup is damaged: {problems[0]}")
            for suffix in ("-wal", "-shm"):
                Path(str(database) + suffix).unlink(missing_ok=True)
            tmp.replace(database)
        finally:
            tmp.unlink(missing_ok=True)
            for suffix in ("-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
    return {"restored": str(source), "database": str(database)}
