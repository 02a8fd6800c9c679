"""The doctor's database checks: integrity, schema, profile card and settings.

The database is opened read-only, and *immutable* when no FocusMate process has it open (there
is no ``-wal`` file), so that SQLite creates no ``-wal``/``-shm`` files beside it either.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map, merge_updates

from focusmate.doctor_report import CREATE_PROFILE, Check, Status, format_size, quote_path
from focusmate.errors import FocusMateError, ValidationError
from focusmate.migrations import SCHEMA_VERSION
from focusmate.profile import profile_doc_id, read_card
from focusmate.settings import Settings
from focusmate.store import APPLICATION_ID
from focusmate.workspace import DB_NAME

MAX_PROBLEMS = 20
"""``integrity_check`` stops after this many problems: enough to say it is damaged."""

DAMAGED_DB = (
    "Close FocusMate and copy the whole profile folder somewhere safe before anything else. "
    "Then restore focusmate.db from a backup (see docs/user-data.md), or save what can still "
    "be read with `focusmate export rescue.json --with-identity` and import it into a fresh "
    "profile: `focusmate --profile NEW_DIR import rescue.json`. Your rooms also live with your "
    "teammates and relays: they sync back once you rejoin."
)


@dataclass(frozen=True)
class _StoreView:
    """What the doctor reads from the database, all in one read-only pass."""

    application_id: int
    user_version: int
    tables: int
    problems: list[str]
    settings: str | None  # the stored JSON text
    card: object  # the profile card as stored, None when absent, an exception when unreadable


def check_store(db_path: Path, *, user_id: str | None) -> tuple[list[Check], Settings | None]:
    """The database checks, and the settings when they could be read."""
    size = db_path.stat().st_size

    def database(status: Status, detail: str, next_step: str = "", **data: Any) -> Check:
        return Check("database", status, detail, next_step, {"bytes": size, **data})

    try:
        view = _read_store(db_path, user_id=user_id)
    except sqlite3.Error as err:
        return [
            database(
                Status.FAIL,
                f"{DB_NAME} cannot be read: {err} — it is corrupt, or not an SQLite database",
                DAMAGED_DB,
            )
        ], None
    if view.tables == 0 and view.application_id == 0:
        return [
            database(
                Status.WARN,
                f"{DB_NAME} is empty (FocusMate sets it up the next time it starts)",
                CREATE_PROFILE,
            )
        ], None
    if view.application_id != APPLICATION_ID:
        return [
            database(
                Status.FAIL,
                f"{DB_NAME} is an SQLite database of another application",
                "Move it out of the profile folder, then restore your focusmate.db from a backup "
                "or import an export.",
            )
        ], None
    if view.problems:
        shown = "; ".join(view.problems[:3])
        more = f" (and {len(view.problems) - 3} more)" if len(view.problems) > 3 else ""
        integrity = database(
            Status.FAIL,
            f"{DB_NAME} failed SQLite's integrity check: {shown}{more}",
            DAMAGED_DB,
            problems=view.problems,
        )
        # What the damaged file says about cards and settings is no verdict.
        return [integrity, _check_schema(view.user_version)], None
    integrity = database(
        Status.OK, f"{DB_NAME} passed SQLite's integrity check ({format_size(size)})"
    )
    checks = [integrity, _check_schema(view.user_version), _check_card(view.card, user_id)]
    settings_check, settings = _check_settings(view.settings, db_path)
    return [*checks, settings_check], settings


def _read_store(db_path: Path, *, user_id: str | None) -> _StoreView:
    """One read-only pass. Immutable when no process has the file open (no WAL), so nothing is
    created beside it; if one starts meanwhile and the pass found problems, read again through
    the WAL, so a write in progress is not mistaken for damage."""
    wal = db_path.with_name(db_path.name + "-wal")
    had_wal = wal.exists()
    view = _read_store_once(db_path, user_id=user_id, immutable=not had_wal)
    if not had_wal and wal.exists() and view.problems:
        view = _read_store_once(db_path, user_id=user_id, immutable=False)
    return view


def _read_store_once(db_path: Path, *, user_id: str | None, immutable: bool) -> _StoreView:
    with _read_only(db_path, immutable=immutable) as conn:
        application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if application_id != APPLICATION_ID:
            return _StoreView(application_id, user_version, tables, [], None, None)
        try:
            rows = conn.execute(f"PRAGMA integrity_check({MAX_PROBLEMS})").fetchall()
            problems = [str(r[0]) for r in rows if r[0] != "ok"]
        except sqlite3.DatabaseError as err:  # damage bad enough to stop the check itself
            problems = [str(err)]
        settings: str | None = None
        card: object = None
        if not problems:
            row = conn.execute("SELECT value FROM settings WHERE key = 'settings'").fetchone()
            settings = None if row is None else str(row[0])
            if user_id is not None:
                try:
                    card = _read_card(conn, profile_doc_id(user_id))
                except Exception as err:  # pycrdt raises its own errors on bad updates
                    card = err
        return _StoreView(application_id, user_version, tables, problems, settings, card)


@contextmanager
def _read_only(db_path: Path, *, immutable: bool) -> Iterator[sqlite3.Connection]:
    uri = db_path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _read_card(conn: sqlite3.Connection, doc_id: str) -> object:
    """The raw ``card`` of a profile document, read the way the store reads a document."""
    snap = conn.execute(
        "SELECT data, upto_seq FROM doc_snapshots WHERE doc_id = ?", (doc_id,)
    ).fetchone()
    after = int(snap[1]) if snap is not None else 0
    rows = conn.execute(
        "SELECT data FROM doc_updates WHERE doc_id = ? AND seq > ? ORDER BY seq", (doc_id, after)
    ).fetchall()
    parts = ([bytes(snap[0])] if snap is not None else []) + [bytes(r[0]) for r in rows]
    if not parts:
        return None
    doc: Doc[Any] = Doc()
    doc.apply_update(parts[0] if len(parts) == 1 else merge_updates(*parts))
    card = doc.get("profile", type=Map).get("card")
    return card.to_py() if isinstance(card, Map) else card


def _check_schema(version: int) -> Check:
    data = {"version": version, "current": SCHEMA_VERSION}
    if version == SCHEMA_VERSION:
        return Check("schema", Status.OK, f"version {version}, current", data=data)
    if version > SCHEMA_VERSION:
        return Check(
            "schema",
            Status.FAIL,
            f"version {version}, written by a newer FocusMate (this one knows {SCHEMA_VERSION})",
            "Upgrade FocusMate to open this profile.",
            data,
        )
    return Check(
        "schema",
        Status.WARN,
        f"version {version}; this FocusMate upgrades it to {SCHEMA_VERSION} when it next opens "
        "the profile",
        "Nothing to do, unless you want to keep a copy for an older FocusMate: then back up the "
        "profile folder before you next run `focusmate`.",
        data,
    )


def _check_card(raw: object, user_id: str | None) -> Check:
    republish = (
        "FocusMate publishes it again when it next opens the profile; or run "
        "`focusmate profile set --name NAME` now."
    )
    if user_id is None:
        return Check(
            "profile card",
            Status.WARN,
            "not checked: the identity key could not be read",
            "Fix the identity first (above).",
        )
    if isinstance(raw, Exception):
        return Check(
            "profile card", Status.FAIL, f"the profile document cannot be read: {raw}", DAMAGED_DB
        )
    if raw is None:
        return Check("profile card", Status.WARN, "you have no profile card yet", republish)
    profile = read_card(raw) if isinstance(raw, Mapping) else None
    if profile is None or profile.card.user_id != user_id:
        return Check(
            "profile card",
            Status.WARN,
            "your profile card does not verify against your key, so peers will not show it",
            republish,
        )
    return Check(
        "profile card",
        Status.OK,
        f"{profile.card.display_name!r}, signed by your key",
        data={"display_name": profile.card.display_name},
    )


def _check_settings(raw: str | None, db_path: Path) -> tuple[Check, Settings | None]:
    reset = (
        "Reset them with FocusMate closed: `sqlite3 "
        f"{quote_path(db_path)} \"DELETE FROM settings WHERE key = 'settings'\"`, then set "
        "what you need again with `focusmate settings set KEY VALUE`."
    )
    if raw is None:
        settings = Settings()
        how = "the defaults"
    else:
        try:
            stored = json.loads(raw)
            if not isinstance(stored, dict):
                raise ValidationError("they are not a JSON object")
            settings = Settings.from_dict(stored)
        except (ValueError, FocusMateError) as err:
            return Check(
                "settings", Status.FAIL, f"your settings cannot be read: {err}", reset
            ), None
        how = "your settings"
    relays = len(settings.relay_urls)
    detail = (
        f"{how} parse: {relays} relay{'' if relays == 1 else 's'}, "
        f"LAN discovery {'on' if settings.lan_enabled else 'off'}"
    )
    data = {"relay_urls": list(settings.relay_urls), "lan_enabled": settings.lan_enabled}
    return Check("settings", Status.OK, detail, data=data), settings
