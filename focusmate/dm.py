"""Direct messages: end-to-end-encrypted envelopes, signed so a relay can check them blind.

An :class:`Envelope` is what travels (through a relay or a LAN peer); only its recipient can read
it. Rules:

- Encryption is ephemeral-static X25519: a fresh key per message agrees a secret with the
  recipient's ``box_public``; HKDF-SHA256 (salt = ephemeral || recipient key; info = a context
  string and both user ids, NUL-separated so no two id pairs can give the same bytes) makes a
  one-time ChaCha20-Poly1305 key. The header (every field but nonce, ciphertext and signature) is
  the associated data, so no header field can change without decryption failing.
- The sender signs, with Ed25519, a context prefix plus the canonical JSON of every other wire
  field, ciphertext included (sign after encrypting). Anyone can run :func:`verify_envelope`
  without a private key. As the sender id is in the key derivation and the associated data,
  stripping the signature and re-signing as someone else gives an envelope that does not decrypt.
- One API per job: ``Envelope(...)``, ``Envelope.from_dict`` and ``Envelope.from_json_bytes``
  raise ValidationError for anything malformed (an ``Envelope`` in hand is always well-formed,
  though not necessarily authentic); :func:`verify_envelope` returns a bool and never raises, as in
  :mod:`focusmate.identity`; :func:`open_envelope` raises ValidationError for every failure and
  never lets a ``cryptography`` exception out.
- Text is stripped, line endings become ``\\n``, and it must be 1..MAX_TEXT_CHARS characters with
  no control characters but newline and tab (the same rule on open as on seal). That caps a
  character at 4 UTF-8 bytes in the payload, so MAX_ENVELOPE_BYTES is 32 KiB rather than 16:
  4000 emoji alone are 21 KiB of base64.
- Not provided: forward secrecy if the recipient's box key leaks later, hiding the message length,
  or replay protection (a recipient should ignore a (sender, id) pair it has already seen). The
  sender cannot open its own envelopes (the ephemeral key is discarded); it keeps its own copy.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from focusmate.errors import ValidationError
from focusmate.identity import (
    KEY_BYTES,
    SIGNATURE_BYTES,
    Identity,
    PublicIdentity,
    b64url_decode,
    b64url_encode,
    canonical_json,
    parse_user_id,
    user_id_for,
    verify,
)

VERSION = 1
KINDS = frozenset({"message"})
MAX_TEXT_CHARS = 4000
MAX_ENVELOPE_BYTES = 32 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_CIPHERTEXT_BYTES = 4 * MAX_TEXT_CHARS + 64 + TAG_BYTES  # UTF-8 worst case + JSON framing
_ID = re.compile(r"[0-9a-f]{32}")
_KEY_INFO = b"focusmate/dm/v1"
_SIGN_DOMAIN = b"focusmate/dm-envelope/v1\x00"
_FIELDS = (
    *("v", "id", "kind", "sender", "sender_sign", "recipient", "sent_at", "ephemeral"),
    *("nonce", "ciphertext", "signature"),
)
_HEADER = _FIELDS[:8]
_BINARY = {"sender_sign": KEY_BYTES, "ephemeral": KEY_BYTES, "nonce": NONCE_BYTES}
_BINARY |= {"signature": SIGNATURE_BYTES, "ciphertext": 0}  # 0: length checked separately
_ALLOWED_CONTROLS = frozenset("\n\t")


@dataclass(frozen=True)
class Envelope:
    """One signed, encrypted direct message; binary fields hold raw bytes (base64 on the wire)."""

    v: int
    id: str
    kind: str
    sender: str
    sender_sign: bytes
    recipient: str
    sent_at: float
    ephemeral: bytes
    nonce: bytes
    ciphertext: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if type(self.v) is not int or self.v != VERSION:
            raise ValidationError(f"Unsupported direct-message version {self.v!r}.")
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ValidationError("A message id must be 32 lowercase hex characters.")
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ValidationError(f"Unknown direct-message kind {self.kind!r}.")
        for name in ("sender", "recipient"):
            value = getattr(self, name)
            if not isinstance(value, str) or parse_user_id(value) != value:
                raise ValidationError(f"The {name} must be a user id in canonical form.")
        sent_at = self.sent_at
        try:
            ok = not isinstance(sent_at, bool) and math.isfinite(sent_at) and sent_at >= 0
        except (TypeError, OverflowError):
            ok = False
        if not ok:
            raise ValidationError("The sending time must be a finite, non-negative number.")
        object.__setattr__(self, "sent_at", float(sent_at))
        for name, size in _BINARY.items():
            value = getattr(self, name)
            if not isinstance(value, bytes) or (size and len(value) != size):
                raise ValidationError(f"The {name} must be {size} bytes.")
        if not TAG_BYTES < len(self.ciphertext) <= MAX_CIPHERTEXT_BYTES:
            raise ValidationError("The ciphertext is empty or too large for a direct message.")

    def to_dict(self) -> dict[str, object]:
        """The wire form: JSON-able, binary fields as URL-safe base64."""
        return {
            name: b64url_encode(getattr(self, name)) if name in _BINARY else getattr(self, name)
            for name in _FIELDS
        }

    def to_json_bytes(self) -> bytes:
        """Canonical JSON; its length is what MAX_ENVELOPE_BYTES limits."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object) -> Envelope:
        """Parse an untrusted wire dict strictly (exact keys, types, lengths, canonical ids)."""
        if not isinstance(obj, Mapping):
            raise ValidationError("A direct message must be a JSON object.")
        if set(obj) != set(_FIELDS):
            missing = sorted(set(_FIELDS) - set(obj))
            extra = sorted(repr(k)[:40] for k in set(obj) - set(_FIELDS))[:5]
            raise ValidationError(
                f"A direct message has the wrong fields (missing: {missing}, unexpected: {extra})."
            )
        values: dict[str, object] = {}
        for name in _FIELDS:
            value = obj[name]
            if name in _BINARY:
                if not isinstance(value, str) or len(value) > 2 * MAX_CIPHERTEXT_BYTES:
                    raise ValidationError(f"The {name} must be a base64 string of sane length.")
                value = b64url_decode(value, what=name)
            elif name != "sent_at" and not isinstance(value, str if name != "v" else int):
                raise ValidationError(f"The direct message field {name!r} has the wrong type.")
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]  # __post_init__ checks every type

    @classmethod
    def from_json_bytes(cls, data: bytes) -> Envelope:
        """Enforce MAX_ENVELOPE_BYTES before parsing, then :meth:`from_dict`."""
        if not isinstance(data, bytes | bytearray) or len(data) > MAX_ENVELOPE_BYTES:
            raise ValidationError(f"A direct message must be at most {MAX_ENVELOPE_BYTES} bytes.")
        try:
            obj = json.loads(data, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError):
            raise ValidationError("A direct message must be valid JSON.") from None
        return cls.from_dict(obj)


@dataclass(frozen=True)
class Message:
    """An opened, authenticated direct message."""

    id: str
    sender: str
    recipient: str
    sent_at: float
    text: str


def normalize_text(text: str) -> str:
    """The text as it will be sent; a ValidationError says what is wrong with it."""
    if not isinstance(text, str):
        raise ValidationError("A message must be text.")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValidationError("A message cannot be empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError(
            f"A message has at most {MAX_TEXT_CHARS} characters, not {len(text)}."
        )
    if any(unicodedata.category(c) in {"Cc", "Cs"} and c not in _ALLOWED_CONTROLS for c in text):
        raise ValidationError("A message cannot contain control characters or broken characters.")
    return text


def seal(
    identity: Identity,
    recipient: PublicIdentity,
    text: str,
    *,
    now: float,
    message_id: str | None = None,
) -> Envelope:
    """Encrypt ``text`` for ``recipient`` and sign it as ``identity``."""
    content = canonical_json({"text": normalize_text(text)})
    ephemeral = X25519PrivateKey.generate()
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.box_public))
    except ValueError:
        raise ValidationError("The recipient's encryption key cannot be used.") from None
    # Placeholder ciphertext and signature: constructing the draft validates every header field.
    draft = Envelope(
        v=VERSION,
        id=secrets.token_hex(16) if message_id is None else message_id,
        kind="message",
        sender=identity.user_id,
        sender_sign=identity.public.sign_public,
        recipient=recipient.user_id,
        sent_at=now,
        ephemeral=ephemeral.public_key().public_bytes_raw(),
        nonce=secrets.token_bytes(NONCE_BYTES),
        ciphertext=bytes(TAG_BYTES + 1),
        signature=bytes(SIGNATURE_BYTES),
    )
    key = _derive_key(shared, draft, recipient.box_public)
    unsigned = replace(
        draft, ciphertext=ChaCha20Poly1305(key).encrypt(draft.nonce, content, _aad(draft))
    )
    return replace(unsigned, signature=identity.sign(_signed_payload(unsigned)))


def verify_envelope(env: Envelope) -> bool:
    """Whether the sender key hashes to ``sender`` and signed everything; never raises."""
    try:
        if user_id_for(env.sender_sign) != env.sender:
            return False
        return verify(env.sender_sign, _signed_payload(env), env.signature)
    except (ValueError, TypeError, AttributeError):
        return False


def open_envelope(identity: Identity, env: Envelope) -> Message:
    """Check, decrypt and parse an envelope addressed to ``identity``."""
    if env.recipient != identity.user_id:
        raise ValidationError("This message is addressed to someone else and cannot be opened.")
    if not verify_envelope(env):
        raise ValidationError("This message's signature is invalid: it was forged or altered.")
    try:
        shared = identity.box_private_key.exchange(X25519PublicKey.from_public_bytes(env.ephemeral))
        key = _derive_key(shared, env, identity.public.box_public)
        content = ChaCha20Poly1305(key).decrypt(env.nonce, env.ciphertext, _aad(env))
    except (InvalidTag, ValueError):
        raise ValidationError(
            "This message cannot be decrypted: it is damaged or was not encrypted for you."
        ) from None
    try:
        obj = json.loads(content.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        obj = None
    text = obj.get("text") if isinstance(obj, dict) and set(obj) == {"text"} else None
    try:
        valid = isinstance(text, str) and normalize_text(text) == text
    except ValidationError:
        valid = False
    if not valid or not isinstance(text, str):
        raise ValidationError("This message's content is not valid text.")
    return Message(
        id=env.id, sender=env.sender, recipient=env.recipient, sent_at=env.sent_at, text=text
    )


def _derive_key(shared: bytes, env: Envelope, recipient_box: bytes) -> bytes:
    info = b"\x00".join((_KEY_INFO, env.sender.encode(), env.recipient.encode()))
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=env.ephemeral + recipient_box, info=info)
    return hkdf.derive(shared)


def _aad(env: Envelope) -> bytes:
    wire = env.to_dict()
    return canonical_json({name: wire[name] for name in _HEADER})


def _signed_payload(env: Envelope) -> bytes:
    wire = env.to_dict()
    del wire["signature"]
    return _SIGN_DOMAIN + canonical_json(wire)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result
