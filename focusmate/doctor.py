"""``focusmate doctor``, the checks that need no network: is this profile sound, and if not, what
to do about it. The network checks (relays, LAN) live in ``sync/doctor.py`` and add their own
checks to the same report (:mod:`focusmate.doctor_report`).

The doctor only looks: it never creates a profile that does not exist, and writes nothing into
one that does (:mod:`focusmate.doctor_identity`, :mod:`focusmate.doctor_store` say how).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from focusmate.doctor_identity import check_identity
from focusmate.doctor_report import CREATE_PROFILE, Check, Status, format_size, quote_path
from focusmate.doctor_store import check_store
from focusmate.settings import Settings
from focusmate.workspace import DB_NAME, KEY_NAME

MIN_FREE_BYTES = 10 * 1024 * 1024
"""Below this, SQLite may fail to commit at all."""
LOW_FREE_BYTES = 100 * 1024 * 1024
"""Below this (or twice the database's size), compaction and backups soon run out of room."""


@dataclass(frozen=True)
class ProfileReport:
    """The local checks, and what the network checks need from the profile."""

    checks: list[Check]
    settings: Settings | None  # None when the profile or its settings could not be read
    user_id: str | None  # from the key file, None when there is none


def check_profile(profile_dir: Path, *, passphrase: str | None = None) -> ProfileReport:
    """Every local check of the profile at ``profile_dir``; writes nothing, anywhere in it."""
    folder = _check_folder(profile_dir)
    if folder.status is Status.FAIL:
        return ProfileReport([folder], settings=None, user_id=None)
    db_path, key_path = profile_dir / DB_NAME, profile_dir / KEY_NAME
    if not db_path.exists() and not os.path.lexists(key_path):
        never_ran = Check(
            "database",
            Status.WARN,
            f"the profile folder holds no {DB_NAME} yet (FocusMate never ran on it)",
            CREATE_PROFILE,
        )
        checks = [folder, never_ran, _check_disk(profile_dir, db_bytes=0)]
        return ProfileReport(checks, settings=None, user_id=None)
    identity, user_id = check_identity(key_path, passphrase=passphrase)
    checks = [folder, identity]
    settings: Settings | None = None
    if db_path.exists():
        store_checks, settings = check_store(db_path, user_id=user_id)
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
            f"Make it private: `chmod 700 {quote_path(profile_dir)}`.",
            {"mode": f"{mode:04o}"},
        )
    return Check(
        "profile",
        Status.OK,
        f"{profile_dir} exists and only you can open it",
        data={"mode": f"{mode:04o}"},
    )


def _check_disk(profile_dir: Path, *, db_bytes: int) -> Check:
    free = shutil.disk_usage(profile_dir).free
    data = {"free_bytes": free}
    step = f"Free some space on the drive that holds {profile_dir}."
    if free < MIN_FREE_BYTES:
        return Check(
            "disk space",
            Status.FAIL,
            f"only {format_size(free)} free: FocusMate may be unable to save anything",
            step,
            data,
        )
    if free < max(LOW_FREE_BYTES, 2 * db_bytes):
        return Check("disk space", Status.WARN, f"only {format_size(free)} free", step, data)
    return Check("disk space", Status.OK, f"{format_size(free)} free", data=data)
