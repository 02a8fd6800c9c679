"""The doctor's identity-key check: is the key there, does it load, is it private.

Loading a key tightens its file's permissions, and the doctor changes nothing: so when the key
file is readable by others, a private copy of it is loaded instead.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from focusmate import keyfile
from focusmate.doctor_report import Check, Status, quote_path
from focusmate.errors import IdentityError
from focusmate.identity import Identity
from focusmate.keyfile import PASSPHRASE_ENV
from focusmate.workspace import KEY_NAME

RESTORE = (
    "Put identity.key back from a backup, or import an export made with --with-identity "
    "into a fresh profile."
)


def check_identity(key_path: Path, *, passphrase: str | None) -> tuple[Check, str | None]:
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
    try:
        sealed = keyfile.is_sealed(key_path)  # reads and checks the file's envelope
        user_id = json.loads(key_path.read_text("utf-8")).get("user_id")
    except (OSError, ValueError, IdentityError) as err:
        return Check("identity", Status.FAIL, _reason(err), RESTORE), None
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
        return Check("identity", Status.FAIL, _reason(err), RESTORE), user_id
    how = "sealed, and the passphrase opens it" if sealed else "not sealed with a passphrase"
    check = Check(
        "identity",
        Status.OK,
        f"user {identity.user_id}; the key loads ({how})",
        data={"user_id": identity.user_id, "sealed": sealed},
    )
    return _with_permissions(check, key_path, loose), identity.user_id


def _load_untouched(key_path: Path, *, passphrase: str | None, loose: bool) -> Identity:
    """Load the key without changing its file: a loose one through a private copy (0600, in a
    0700 folder, deleted at once)."""
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
    chmod = f"Make it private: `chmod 600 {quote_path(key_path)}`."
    return Check(
        check.name,
        Status.WARN if check.status is Status.OK else check.status,
        f"{check.detail}; but other users of this machine can read the key file (mode {mode:04o})",
        f"{check.next_step} {chmod}" if check.next_step else chmod,
        check.data,
    )


def _reason(err: BaseException) -> str:
    text = str(err).rstrip(".")
    return text[:1].lower() + text[1:] if text else type(err).__name__
