"""Identity handshake: Ed25519 challenge–response bound to the address that was dialled.

The server sends a fresh random nonce; the client signs ``(address, nonce, user_id)`` under a
domain-separation prefix. Binding the address means a signature made for one relay (or LAN peer)
cannot be replayed by it to another: the other checks the address against its own.
"""

from __future__ import annotations

import secrets

from focusmate.errors import ValidationError
from focusmate.identity import (
    Identity,
    PublicIdentity,
    b64url_encode,
    canonical_json,
    verify,
)
from sync.control import Challenge, Hello

NONCE_BYTES = 32
_DOMAIN = b"focusmate/handshake/v1\x00"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _payload(*, address: str, nonce: bytes, user_id: str) -> bytes:
    fields = {"address": address, "nonce": b64url_encode(nonce), "user_id": user_id}
    return _DOMAIN + canonical_json(fields)


def answer(identity: Identity, challenge: Challenge, *, address: str) -> Hello:
    public = identity.public
    signature = identity.sign(
        _payload(address=address, nonce=challenge.nonce, user_id=public.user_id)
    )
    return Hello(
        user_id=public.user_id,
        sign_public=public.sign_public,
        box_public=public.box_public,
        address=address,
        signature=signature,
    )


def check(hello: Hello, *, nonce: bytes, addresses: frozenset[str]) -> PublicIdentity:
    """The proven identity, or ValidationError saying why the handshake failed."""
    if normalise_address(hello.address) not in addresses:
        raise ValidationError(f"the signed address {hello.address!r} is not this server")
    public = PublicIdentity(  # checks that the user id matches the signing key
        user_id=hello.user_id, sign_public=hello.sign_public, box_public=hello.box_public
    )
    payload = _payload(address=hello.address, nonce=nonce, user_id=hello.user_id)
    if not verify(hello.sign_public, payload, hello.signature):
        raise ValidationError("the handshake signature does not verify")
    return public


def normalise_address(address: str) -> str:
    """``wss://Relay.Example.org/`` and ``wss://relay.example.org`` are the same address."""
    return address.strip().rstrip("/").lower()
