"""A user's identity: an Ed25519 key to sign and an X25519 key to encrypt.

There are no accounts. The user id is a hash of the signing public key (like a Syncthing device
id), so anyone holding a record, the author's public key and the author's user id can check
authorship without asking a server. Rules:

- ``user_id_for`` is the only way a user id is made; ``PublicIdentity`` cannot hold a user id
  that does not match its key.
- Verification functions return ``False`` for anything malformed and never raise: their input
  comes from the network.
- Records are signed over :func:`canonical_json` behind a context prefix, so the bytes are the same
  after a round trip through pycrdt (where every number is a float) and a record signature can
  never be replayed as a signature over some other protocol message.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from focusmate import codes
from focusmate.errors import ValidationError

KEY_BYTES = 32
SIGNATURE_BYTES = 64
USER_ID_BYTES = 15  # 120 bits: 24 base32 characters + 1 check character = 5 groups of 5
_USER_ID_DOMAIN = b"focusmate/user-id/v1"
_RECORD_DOMAIN = b"focusmate/record/v1\x00"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def user_id_for(sign_public: bytes) -> str:
    """The user id for a signing public key, e.g. ``"ABCDE-FGHJK-MNPQR-STVWX-YZ01C"``."""
    return _user_id_for(bytes(sign_public))


@functools.lru_cache(maxsize=4096)  # a board names the same few authors thousands of times
def _user_id_for(sign_public: bytes) -> str:
    if len(sign_public) != KEY_BYTES:
        raise ValidationError(
            f"A signing public key has {KEY_BYTES} bytes, not {len(sign_public)}."
        )
    digest = hashlib.sha256(_USER_ID_DOMAIN + bytes(sign_public)).digest()
    return codes.make_code(digest[:USER_ID_BYTES], group_size=5)


def parse_user_id(text: str) -> str:
    """Normalise a typed or pasted user id to its canonical form; a typo is a ValidationError."""
    if not isinstance(text, str):
        raise ValidationError(f"A user id is text, not {type(text).__name__}.")
    return _parse_user_id(text)


@functools.lru_cache(maxsize=4096)
def _parse_user_id(text: str) -> str:
    return codes.make_code(
        codes.parse_code(text, nbytes=USER_ID_BYTES, what="user id"), group_size=5
    )


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 without padding: fits in JSON, URLs and CRDT strings unchanged."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, what: str = "value") -> bytes:
    """Strictly decode :func:`b64url_encode` output; anything else is a ValidationError.

    The standard library silently skips stray characters; here only the one canonical spelling is
    accepted, so signatures and keys are not malleable.
    """
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValidationError(f"The {what} is not valid URL-safe base64.")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValidationError(f"The {what} is not valid URL-safe base64.") from None
    if b64url_encode(data) != text:
        raise ValidationError(f"The {what} is not valid URL-safe base64.")
    return data


@dataclass(frozen=True)
class PublicIdentity:
    """What others know about a user; construction checks that the user id matches the key."""

    user_id: str
    sign_public: bytes
    box_public: bytes

    def __post_init__(self) -> None:
        for name, key in (("signing", self.sign_public), ("encryption", self.box_public)):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValidationError(f"The {name} public key must be {KEY_BYTES} bytes.")
        if self.user_id != user_id_for(self.sign_public):
            raise ValidationError(f"The user id {self.user_id!r} does not match its signing key.")

    def to_dict(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "sign_public": b64url_encode(self.sign_public),
            "box_public": b64url_encode(self.box_public),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PublicIdentity:
        """Parse :meth:`to_dict` output from an untrusted source; problems are ValidationErrors."""
        values: dict[str, str] = {}
        for key in ("user_id", "sign_public", "box_public"):
            value = data.get(key)
            if not isinstance(value, str):
                raise ValidationError(f"A public identity needs {key!r} as a string.")
            values[key] = value
        return cls(
            user_id=values["user_id"],
            sign_public=b64url_decode(values["sign_public"], what="signing public key"),
            box_public=b64url_decode(values["box_public"], what="encryption public key"),
        )


class Identity:
    """The local user's private keys. ``repr`` shows only the user id, never key material."""

    def __init__(self, *, sign_key: Ed25519PrivateKey, box_key: X25519PrivateKey) -> None:
        self._sign_key = sign_key
        self._box_key = box_key
        sign_public = sign_key.public_key().public_bytes_raw()
        self._public = PublicIdentity(
            user_id=user_id_for(sign_public),
            sign_public=sign_public,
            box_public=box_key.public_key().public_bytes_raw(),
        )

    @classmethod
    def generate(cls) -> Identity:
        return cls(sign_key=Ed25519PrivateKey.generate(), box_key=X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, sign_private: bytes, box_private: bytes) -> Identity:
        """Rebuild from :meth:`private_bytes` output (raw 32-byte keys)."""
        if len(sign_private) != KEY_BYTES or len(box_private) != KEY_BYTES:
            raise ValidationError(f"Private keys must be {KEY_BYTES} bytes each.")
        return cls(
            sign_key=Ed25519PrivateKey.from_private_bytes(bytes(sign_private)),
            box_key=X25519PrivateKey.from_private_bytes(bytes(box_private)),
        )

    def private_bytes(self) -> tuple[bytes, bytes]:
        """The raw (signing, encryption) private keys, for the key file only."""
        return self._sign_key.private_bytes_raw(), self._box_key.private_bytes_raw()

    @property
    def user_id(self) -> str:
        return self._public.user_id

    @property
    def public(self) -> PublicIdentity:
        return self._public

    @property
    def box_private_key(self) -> X25519PrivateKey:
        """For X25519 key agreement (DMs); the caller derives keys with HKDF."""
        return self._box_key

    def sign(self, data: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``data``."""
        return self._sign_key.sign(data)

    def __repr__(self) -> str:
        return f"Identity(user_id={self.user_id!r})"


def verify(sign_public: bytes, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``sign_public``'s signature over ``data``; never raises."""
    try:
        if len(sign_public) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
            return False
        key = Ed25519PublicKey.from_public_bytes(bytes(sign_public))
        key.verify(bytes(signature), bytes(data))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """One byte string per value: sorted keys, compact, UTF-8, integral floats written as ints.

    pycrdt hands every number back as a float, so ``3`` written and ``3.0`` read must give the
    same bytes. NaN and infinities have no JSON spelling and are rejected, as are non-string keys
    (``{1: x}`` and ``{"1": x}`` would otherwise collide).
    """
    try:
        return json.dumps(
            _canonical_value(obj),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise ValidationError(f"This record cannot be written as canonical JSON: {err}") from None


def sign_record(identity: Identity, *, kind: str, fields: Mapping[str, object]) -> str:
    """Sign ``{"kind": kind, **fields}``; returns the signature as URL-safe base64."""
    return b64url_encode(identity.sign(_record_payload(kind=kind, fields=fields)))


def verify_record(
    *,
    user_id: str,
    sign_public_b64: str,
    kind: str,
    fields: Mapping[str, object],
    signature_b64: str,
) -> bool:
    """True only if the key hashes to ``user_id`` and signs the record; never raises."""
    try:
        payload = _record_payload(kind=kind, fields=fields)
        sign_public = b64url_decode(sign_public_b64)
        verdict = user_id_for(sign_public) == parse_user_id(user_id) and verify(
            sign_public, payload, b64url_decode(signature_b64)
        )
    except (ValueError, TypeError, AttributeError, RecursionError):
        return False
    return verdict


def _record_payload(*, kind: str, fields: Mapping[str, object]) -> bytes:
    if not isinstance(kind, str):
        raise ValidationError("A record kind must be a string.")
    if "kind" in fields:
        # {"kind": kind, **fields} would let a field override the kind that was asked for.
        raise ValidationError("A record's fields cannot contain 'kind'.")
    return _RECORD_DOMAIN + canonical_json({"kind": kind, **fields})


def _canonical_value(value: object) -> object:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity are not allowed")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, not {type(key).__name__}")
            out[key] = _canonical_value(item)
        return out
    if isinstance(value, list | tuple):
        return [_canonical_value(item) for item in value]
    return value
