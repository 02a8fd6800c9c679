"""``focusmate doctor``, the checks that need no network: is this profile sound, and if not, what
to do about it.

Each check is one :class:`Check`: OK, WARN or FAIL, what was found, and for anything not OK the
next step in plain words. The network checks (relays, LAN) live in ``sync/doctor.py`` and add
their own checks to the same report.

The doctor only looks. It never creates a profile that does not exist, and it opens the
database read-only: when no FocusMate process has the database open (there is no ``-wal``
file), it is opened *immutable*, so SQLite creates no ``-wal``/``-shm`` files either. It does not
load the key from the profile when the key file is readable by others, because loading it
would tighten its permissions; a private copy is checked instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map, merge_updates

from focusmate import keyfile
from focusmate.errors import FocusMateError, IdentityError, ValidationError
from focusmate.identity import Identity
from focusmate.migrations import SCHEMA_VERSION
from focusmate.profile import profile_doc_id, read_card
from focusmate.settings import Settings
from focusmate.store import APPLICATION_ID
from focusmate.workspace import DB_NAME, KEY_NAME

PASSPHRASE_ENV = "FOCUSMATE_PASSPHRASE"  # what the CLI reads; named in our advice
MIN_FREE_BYTES = 10 * 1024 * 1024
"""Below this, SQLite may fail to commit at all."""
LOW_FREE_BYTES = 100 * 1024 * 1024
"""Below this (or twice the database's size), compaction and backups soon run out of room."""
MAX_PROBLEMS = 20
"""``integrity_check`` stops after this many problems: enough to say it is damaged."""

CREATE_PROFILE = (
    "Run `focusmate` once to create it. If your profile is somewhere else, point at it with "
    "--profile DIR or the FOCUSMATE_PROFILE environment variable."
)
DAMAGED_DB = (
    "Close FocusMate and copy the whole profile folder somewhere safe before anything else. "
    "Then restore focusmate.db from a backup (see docs/user-data.md), or save what can still "
    "be read with `focusmate export rescue.json --with-identity` and import it into a fresh "
    "profile: `focusmate --profile NEW_DIR import rescue.json`. Your rooms also live with your "
    "teammates and relays: they sync back once you rejoin."
)


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One finding. ``data`` holds figures for ``--json`` (sizes, counts, offsets)."""

    name: str
    status: Status
    detail: str
    next_step: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "next_step": self.next_step,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class ProfileReport:
    """The local checks, and what the network checks need from the profile."""

    checks: list[Check]
    settings: Settings | None  # None when the profile or its settings could not be read
    user_id: str | None  # from the key file, None when there is none


def check_profile(profile_dir: Path, *, passphrase: str | None = None) -> ProfileReport:
    """Every local check of the profile at ``profile_dir``; writes nothing, anywhere in it."""
    checks: list[Check] = []
    folder = _check_folder(profile_dir)
    checks.append(folder)
    if folder.status is Status.FAIL:
        return ProfileReport(checks, settings=None, user_id=None)
    db_path, key_path = profile_dir / DB_NAME, profile_dir / KEY_NAME
    if not db_path.exists() and not os.path.lexists(key_path):
        checks.append(
            Check(
                "database",
                Status.WARN,
                f"the profile folder holds no {DB_NAME} yet (FocusMate never ran on it)",
                CREATE_PROFILE,
            )
        )
        checks.append(_check_disk(profile_dir, db_bytes=0))
        return ProfileReport(checks, settings=None, user_id=None)
    identity_check, user_id = _check_identity(key_path, passphrase=passphrase)
    checks.append(identity_check)
    settings: Settings | None = None
    if db_path.exists():
        store_checks, settings = _check_store(db_path, user_id=user_id)
        checks.extend(store_checks)
    else:
        checks.append(
            Check(
                "database",
                Status.FAIL,
                f"{db_path} is missing, though the identity key is there",
                "Your rooms, posts and stats are gone from this profile. Restore focusmate.db "
                "from a backup with FocusMate closed, or import an export: `focusmate import "
                "FILE`. Rooms you still have invites for can be joined again.",
            )
        )
    db_bytes = db_path.stat().st_size if db_path.is_file() else 0
    checks.append(_check_disk(profile_dir, db_bytes=db_bytes))
    return ProfileReport(checks, settings=settings, user_id=user_id)


# -- the folder ----------------------------------------------------------------------------------


def _check_folder(profile_dir: Path) -> Check:
    if not profile_dir.exists():
        return Check(
            "profile", Status.FAIL, f"there is no profile at {profile_dir}", CREATE_PROFILE
        )
    if not profile_dir.is_dir():
        return Check(
            "profile",
            Status.FAIL,
            f"{profile_dir} is a file, not a profile folder",
            "Move the file aside, or point at your profile with --profile DIR.",
        )
    if os.name != "posix":
        return Check("profile", Status.OK, f"{profile_dir} exists")
    mode = stat.S_IMODE(profile_dir.stat().st_mode)
    if mode & 0o077:
        return Check(
            "profile",
            Status.WARN,
            f"{profile_dir} can be opened by other users of this machine (mode {mode:04o})",
            f"Make it private: `chmod 700 {_quote(profile_dir)}`.",
            {"mode": f"{mode:04o}"},
        )
    return Check(
        "profile",
        Status.OK,
        f"{profile_dir} exists and only you can open it",
        data={"mode": f"{mode:04o}"},
    )


# -- the identity key ----------------------------------------------------------------------------


def _check_identity(key_path: Path, *, passphrase: str | None) -> tuple[Check, str | None]:
    """The key check, and the user id the key file names (None when it cannot be read).
    Called only when the database or the key exists, so a missing key means a lost one."""
    if not os.path.lexists(key_path):
        return (
            Check(
                "identity",
                Status.FAIL,
                f"{KEY_NAME} is missing, though the database is there",
                "Do not run FocusMate on this profile yet: it would make a new identity, and "
                "your rooms would not know you. Put identity.key back from a backup, or import "
                "an export made with --with-identity (`focusmate import FILE` restores the key "
                "first).",
            ),
            None,
        )
    restore = (
        "Put identity.key back from a backup, or import an export made with --with-identity "
        "into a fresh profile."
    )
    try:
        sealed = keyfile.is_sealed(key_path)  # reads and checks the file's envelope
        user_id = json.loads(key_path.read_text("utf-8")).get("user_id")
    except (OSError, ValueError, IdentityError) as err:
        return Check("identity", Status.FAIL, _reason(err), restore), None
    user_id = user_id if isinstance(user_id, str) else None
    loose = os.name == "posix" and bool(stat.S_IMODE(key_path.stat().st_mode) & 0o077)
    if sealed and passphrase is None:
        check = Check(
            "identity",
            Status.WARN,
            f"user {user_id}; the key is sealed with a passphrase, which was not checked",
            f"To check that your passphrase opens it, set {PASSPHRASE_ENV} and run "
            "`focusmate doctor` again.",
            {"user_id": user_id, "sealed": True},
        )
        return _with_permissions(check, key_path, loose), user_id
    try:
        identity = _load_untouched(key_path, passphrase=passphrase if sealed else None, loose=loose)
    except keyfile.WrongPassphraseError:
        return (
            Check(
                "identity",
                Status.FAIL,
                f"user {user_id}; the passphrase in {PASSPHRASE_ENV} does not open the key",
                f"Check the passphrase in {PASSPHRASE_ENV}. A forgotten passphrase cannot be "
                "recovered: then restore an unsealed identity.key from a backup.",
                {"user_id": user_id, "sealed": True},
            ),
            user_id,
        )
    except IdentityError as err:
        return Check("identity", Status.FAIL, _reason(err), restore), user_id
    how = "sealed, and the passphrase opens it" if sealed else "not sealed with a passphrase"
    check = Check(
        "identity",
        Status.OK,
        f"user {identity.user_id}; the key loads ({how})",
        data={"user_id": identity.user_id, "sealed": sealed},
    )
    return _with_permissions(check, key_path, loose), identity.user_id


def _load_untouched(key_path: Path, *, passphrase: str | None, loose: bool) -> Identity:
    """Load the key without changing its file: loading tightens loose permissions, so then a
    private copy (0600, in a 0700 folder, deleted at once) is loaded instead."""
    if not loose:
        return keyfile.load_identity(key_path, passphrase=passphrase)
    with tempfile.TemporaryDirectory(prefix="focusmate-doctor-") as scratch:
        copy = Path(scratch) / KEY_NAME
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_path.read_bytes())
        return keyfile.load_identity(copy, passphrase=passphrase)


def _with_permissions(check: Check, key_path: Path, loose: bool) -> Check:
    if not loose:
        return check
    mode = stat.S_IMODE(key_path.stat().st_mode)
    return Check(
        check.name,
        Status.WARN if check.status is Status.OK else check.status,
        f"{check.detail}; but other users of this machine can read the key file (mode {mode:04o})",
        " ".join(
            s for s in (check.next_step, f"Make it private: `chmod 600 {_quote(key_path)}`.") if s
        ),
        check.data,
    )


# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoreView:
    """What the doctor reads from the database, all in one read-only pass."""

    application_id: int
    user_version: int
    tables: int
    problems: list[str]
    settings: str | None  # the stored JSON text
    card: object  # the profile card as stored, None when absent, an exception when unreadable


def _check_store(db_path: Path, *, user_id: str | None) -> tuple[list[Check], Settings | None]:
    size = db_path.stat().st_size
    try:
        view = _read_store(db_path, user_id=user_id)
    except sqlite3.Error as err:
        return [
            Check(
                "database",
                Status.FAIL,
                f"{DB_NAME} cannot be read: {err} — it is corrupt, or not an SQLite database",
                DAMAGED_DB,
                {"bytes": size},
            )
        ], None
    if view.tables == 0 and view.application_id == 0:
        return [
            Check(
                "database",
                Status.WARN,
                f"{DB_NAME} is empty (FocusMate sets it up the next time it starts)",
                CREATE_PROFILE,
                {"bytes": size},
            )
        ], None
    if view.application_id != APPLICATION_ID:
        return [
            Check(
                "database",
                Status.FAIL,
                f"{DB_NAME} is an SQLite database of another application",
                "Move it out of the profile folder, then restore your focusmate.db from a backup "
                "or import an export.",
                {"bytes": size},
            )
        ], None
    checks: list[Check] = []
    if view.problems:
        shown = "; ".join(view.problems[:3])
        more = f" (and {len(view.problems) - 3} more)" if len(view.problems) > 3 else ""
        checks.append(
            Check(
                "database",
                Status.FAIL,
                f"{DB_NAME} failed SQLite's integrity check: {shown}{more}",
                DAMAGED_DB,
                {"bytes": size, "problems": view.problems},
            )
        )
    else:
        checks.append(
            Check(
                "database",
                Status.OK,
                f"{DB_NAME} passed SQLite's integrity check ({_size(size)})",
                data={"bytes": size},
            )
        )
    checks.append(_check_schema(view.user_version))
    if view.problems:
        return checks, None  # what the damaged file says about cards and settings is no verdict
    checks.append(_check_card(view.card, user_id))
    settings_check, settings = _check_settings(view.settings, db_path)
    checks.append(settings_check)
    return checks, settings


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
        f"{_quote(db_path)} \"DELETE FROM settings WHERE key = 'settings'\"`, then set what you "
        "need again with `focusmate settings set KEY VALUE`."
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


# -- the disk ------------------------------------------------------------------------------------


def _check_disk(profile_dir: Path, *, db_bytes: int) -> Check:
    free = shutil.disk_usage(profile_dir).free
    data = {"free_bytes": free}
    step = f"Free some space on the drive that holds {profile_dir}."
    if free < MIN_FREE_BYTES:
        return Check(
            "disk space",
            Status.FAIL,
            f"only {_size(free)} free: FocusMate may be unable to save anything",
            step,
            data,
        )
    if free < max(LOW_FREE_BYTES, 2 * db_bytes):
        return Check("disk space", Status.WARN, f"only {_size(free)} free", step, data)
    return Check("disk space", Status.OK, f"{_size(free)} free", data=data)


# -- the report ----------------------------------------------------------------------------------


def exit_code(checks: Sequence[Check]) -> int:
    """0 when everything is OK or only warned about, 1 when anything failed."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {s.value.lower(): sum(c.status is s for c in checks) for s in Status}


def report_dict(profile_dir: Path, checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "profile": str(profile_dir),
        "ok": exit_code(checks) == 0,
        "summary": summary(checks),
        "checks": [c.to_dict() for c in checks],
    }


def render_text(profile_dir: Path, checks: Sequence[Check]) -> str:
    """One line per check, then its next step indented below when it is not OK."""
    lines = [f"FocusMate doctor: {profile_dir}"]
    for check in checks:
        lines.append(f"{check.status.value:<4}  {check.name}: {check.detail}")
        if check.next_step:
            lines.append(f"      next: {check.next_step}")
    counts = summary(checks)
    if counts["fail"]:
        verdict = f"{counts['fail']} failed, {counts['warn']} warning(s), {counts['ok']} OK."
    elif counts["warn"]:
        verdict = f"No failures; {counts['warn']} warning(s), {counts['ok']} OK."
    else:
        verdict = f"All {counts['ok']} checks passed."
    lines.append(verdict)
    return "\n".join(lines)


def _reason(err: BaseException) -> str:
    text = str(err).rstrip(".")
    return text[:1].lower() + text[1:] if text else type(err).__name__


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def _quote(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c in text for c in " '\"$`\\") else text
