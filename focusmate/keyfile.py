"""The identity's private keys on disk, optionally sealed with a passphrase.

The file is JSON so a user can see what it is::

    {"format": "focusmate-identity", "version": 1, "user_id": "...", "sealed": false,
     "sign_private": "<b64url>", "box_private": "<b64url>"}

or, sealed, the two keys encrypted with ChaCha20-Poly1305 under a scrypt-derived key::

    {..., "sealed": true, "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "..."},
     "cipher": "chacha20-poly1305", "nonce": "...", "ciphertext": "..."}

Rules: the file is only ever replaced whole (temp file, fsync, ``os.replace``), so a crash leaves
the old or the new key, never half of one; it is mode 0600; an existing file is never overwritten
by first-run creation, because losing the key loses the user id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import unicodedata
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from focusmate.errors import IdentityError, ValidationError
from focusmate.identity import (
    KEY_BYTES,
    Identity,
    b64url_decode,
    b64url_encode,
    canonical_json,
)

PASSPHRASE_ENV = "FOCUSMATE_PASSPHRASE"
"""Where a non-interactive process (CLI, daemon, doctor) finds the passphrase of a sealed key."""
FORMAT = "focusmate-identity"
VERSION = 1
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
# A file could ask for any cost; refuse ones that would take gigabytes of memory to open.
_SCRYPT_N_RANGE = (2**14, 2**18)
_SALT_BYTES = 16
_NONCE_BYTES = 12
_MAX_FILE_BYTES = 64 * 1024

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class PassphraseRequiredError(IdentityError):
    """The identity file is sealed and no passphrase was given: ask the user for one."""


class WrongPassphraseError(IdentityError):
    """The passphrase does not open the identity file."""


def save_identity(path: Path, identity: Identity, *, passphrase: str | None = None) -> None:
    """Write the identity atomically with mode 0600, sealed if a passphrase is given."""
    _write_atomically(path, _encode(identity, passphrase=passphrase), replace=True)


def load_identity(path: Path, *, passphrase: str | None = None) -> Identity:
    """Read the identity; every failure is an :class:`IdentityError` with a message to show.

    A sealed file whose user id was edited reports a wrong passphrase: the user id is
    authenticated data, so the two cases cannot be told apart.
    """
    document = _read_document(path)
    _tighten_permissions(path)
    user_id = _field(document, "user_id", str, path)
    if _field(document, "sealed", bool, path):
        if passphrase is None:
            raise PassphraseRequiredError(
                "Your identity is protected by a passphrase; enter it to continue."
            )
        secret = _unseal(document, passphrase=passphrase, user_id=user_id, path=path)
        sign_private, box_private = secret[:KEY_BYTES], secret[KEY_BYTES:]
    else:
        sign_private = _key_field(document, "sign_private", path)
        box_private = _key_field(document, "box_private", path)
    try:
        identity = Identity.from_private_bytes(sign_private, box_private)
    except (ValidationError, ValueError):
        raise _corrupt(path, "its keys are not valid") from None
    if identity.user_id != user_id:
        raise _corrupt(path, "its user id does not match its keys")
    return identity


def is_sealed(path: Path) -> bool:
    """Whether opening the file needs a passphrase, so the app knows to ask before loading."""
    return _field(_read_document(path), "sealed", bool, path)


def change_passphrase(path: Path, *, old: str | None, new: str | None) -> None:
    """Seal, reseal or (with ``new=None``) unseal the file; ``old`` is ignored if unsealed."""
    identity = load_identity(path, passphrase=old)
    save_identity(path, identity, passphrase=new)


def load_or_create(path: Path, *, passphrase: str | None = None) -> tuple[Identity, bool]:
    """Load the identity, or make and save one on first run; the bool says it was created.

    Only a missing file means first run: a corrupt one raises rather than being replaced, and if
    another process creates the file at the same moment, its identity wins.
    """
    if not os.path.lexists(path):
        identity = Identity.generate()
        try:
            _write_atomically(path, _encode(identity, passphrase=passphrase), replace=False)
        except FileExistsError:
            pass
        else:
            return identity, True
    return load_identity(path, passphrase=passphrase), False


def _encode(identity: Identity, *, passphrase: str | None) -> bytes:
    document: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "user_id": identity.user_id,
        "sealed": passphrase is not None,
    }
    sign_private, box_private = identity.private_bytes()
    if passphrase is None:
        document["sign_private"] = b64url_encode(sign_private)
        document["box_private"] = b64url_encode(box_private)
    else:
        if not passphrase:
            raise ValidationError("A passphrase cannot be empty; leave it out to not use one.")
        salt = os.urandom(_SALT_BYTES)
        nonce = os.urandom(_NONCE_BYTES)
        key = _derive_key(passphrase, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        ciphertext = ChaCha20Poly1305(key).encrypt(
            nonce, sign_private + box_private, _aad(identity.user_id)
        )
        document["kdf"] = {
            "name": "scrypt",
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": b64url_encode(salt),
        }
        document["cipher"] = "chacha20-poly1305"
        document["nonce"] = b64url_encode(nonce)
        document["ciphertext"] = b64url_encode(ciphertext)
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _write_atomically(path: Path, data: bytes, *, replace: bool) -> None:
    """Write a 0600 temp file beside ``path``, fsync it, then move it into place.

    With ``replace=False`` the move is a hard link, which fails with FileExistsError instead of
    overwriting a file that appeared meanwhile.
    """
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, exist_ok=True)
        if os.name == "posix":
            os.chmod(parent, 0o700)
    fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        if replace:
            os.replace(tmp_name, path)
        else:
            _link_new(tmp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    _fsync_dir(parent)


def _link_new(tmp_name: str, path: Path) -> None:
    try:
        os.link(tmp_name, path)
    except FileExistsError:
        raise
    except OSError:
        # No hard links on this file system: check, then rename (a narrow race, but no worse).
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp_name, path)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; only POSIX can open a directory for this."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_document(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as file:
            raw = file.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise IdentityError(f"There is no identity file at {path}.") from None
    except IsADirectoryError:
        raise IdentityError(f"{path} is a folder, not a FocusMate identity file.") from None
    except OSError as err:
        raise IdentityError(f"Cannot read the identity file {path}: {err.strerror}.") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise IdentityError(f"{path} is not a FocusMate identity file (it is far too large).")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IdentityError(f"{path} is not a FocusMate identity file (it is not JSON).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise IdentityError(f"{path} is not a FocusMate identity file.")
    version = document.get("version")
    if version != VERSION or isinstance(version, bool):
        raise IdentityError(
            f"The identity file {path} has version {version!r}, which this FocusMate cannot "
            "read; it may have been written by a newer version."
        )
    return document


def _tighten_permissions(path: Path) -> None:
    """A key others can read is not fatal (it may be a restored backup), but fix it and say so."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            _log.warning(
                "identity file %s was accessible to others (mode %03o); setting it to 0600",
                path,
                mode,
            )
            os.chmod(path, 0o600)
    except OSError as err:
        _log.warning("could not restrict the permissions of %s: %s", path, err)


def _unseal(document: dict[str, object], *, passphrase: str, user_id: str, path: Path) -> bytes:
    kdf = _field(document, "kdf", dict, path)
    if _field(document, "cipher", str, path) != "chacha20-poly1305" or kdf.get("name") != "scrypt":
        raise _corrupt(path, "it uses an unknown cipher")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not (
        type(n) is int
        and _SCRYPT_N_RANGE[0] <= n <= _SCRYPT_N_RANGE[1]
        and n & (n - 1) == 0
        and r == SCRYPT_R
        and p == SCRYPT_P
    ):
        raise _corrupt(path, "its key derivation settings are out of range")
    salt = _b64_field(kdf, "salt", path)
    nonce = _b64_field(document, "nonce", path)
    ciphertext = _b64_field(document, "ciphertext", path)
    if len(salt) != _SALT_BYTES or len(nonce) != _NONCE_BYTES:
        raise _corrupt(path, "its salt or nonce has the wrong length")
    key = _derive_key(passphrase, salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P)
    try:
        secret = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, _aad(user_id))
    except InvalidTag:
        raise WrongPassphraseError("The passphrase is wrong.") from None
    if len(secret) != 2 * KEY_BYTES:
        raise _corrupt(path, "its sealed keys have the wrong length")
    return secret


def _derive_key(passphrase: str, *, salt: bytes, n: int, r: int, p: int) -> bytes:
    # NFC, so the same passphrase typed on systems that compose accents differently still opens.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def _aad(user_id: str) -> bytes:
    """Binds the ciphertext to this file's header, so it cannot be moved under another user id."""
    return canonical_json({"format": FORMAT, "version": VERSION, "user_id": user_id})


def _field(document: dict[str, object], name: str, kind: type[_T], path: Path) -> _T:
    value = document.get(name)
    if not isinstance(value, kind):
        raise _corrupt(path, f"{name!r} is missing or has the wrong type")
    return value


def _b64_field(document: dict[str, object], name: str, path: Path) -> bytes:
    try:
        return b64url_decode(_field(document, name, str, path), what=name)
    except ValidationError:
        raise _corrupt(path, f"{name!r} is not valid base64") from None


def _key_field(document: dict[str, object], name: str, path: Path) -> bytes:
    value = _b64_field(document, name, path)
    if len(value) != KEY_BYTES:
        raise _corrupt(path, f"{name!r} has the wrong length")
    return value


def _corrupt(path: Path, reason: str) -> IdentityError:
    return IdentityError(f"The identity file {path} is damaged ({reason}).")
