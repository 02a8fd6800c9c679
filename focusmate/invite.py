"""Room secrets and invites: a link and a short, human-typable code that carry the secret.

The room secret is 12 random bytes (96 bits). Everything else is derived from it one way, so the
code alone is a complete invite and the secret itself never has to cross the wire:

* relays get a token that is a hash of it (``relay_token``);
* the room id (shown everywhere, used as the document id) is a hash of that token, so a relay
  checks ``room_id_for_token(token) == doc_id`` without ever seeing the secret;
* LAN peers prove knowledge of the secret with an HMAC over a fresh nonce (``membership_proof``).

A code looks like ``7KQ2M9X-4TRVB0C-H8PZWEN`` (the last character is a check character that
catches typos). A link is ``focusmate://join/<code>?name=<room name>&relay=<url>``; the name and
relays are hints for the joiner's UI, never trusted for anything.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlsplit

from focusmate.codes import make_code, parse_code
from focusmate.errors import ValidationError

SECRET_BYTES = 12
CODE_GROUP = 7
LINK_SCHEME = "focusmate"
MAX_INVITE_TEXT = 2048
NAME_HINT_MAX = 100
MAX_RELAY_HINTS = 8
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def new_room_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def relay_token(secret: bytes) -> str:
    """What a relay checks to admit a client to the room's document (64 hex characters).

    A one-way hash of the secret: holding it opens the room's document on a relay and nothing
    else, and it cannot be turned back into the secret (which would let its holder pass the LAN
    membership proof or read the invite code).
    """
    return hashlib.sha256(b"focusmate/relay-token/v1" + secret).hexdigest()


def room_id_for(secret: bytes) -> str:
    """The public id of the room a secret opens (32 hex characters)."""
    return room_id_for_token(relay_token(secret))


def room_id_for_token(token: str) -> str:
    """The room id a relay token opens, so a relay can check a token without knowing the secret."""
    return hashlib.sha256(b"focusmate/room-id/v1" + token.encode("ascii", "replace")).hexdigest()[
        :32
    ]


def membership_proof(secret: bytes, *, nonce: bytes, context: bytes) -> bytes:
    """An HMAC a LAN peer sends to prove it knows the secret without revealing it.

    The context is length-prefixed, so no (context, nonce) pair can pass for another one whose
    concatenation happens to be the same bytes.
    """
    message = b"focusmate/lan-proof/v1" + len(context).to_bytes(4, "big") + context + nonce
    return hmac.new(secret, message, "sha256").digest()


def doc_url(relay_url: str, secret: bytes) -> str:
    """Where any Yjs client (y-websocket) syncs the room's document through ``relay_url``."""
    return f"{relay_url.rstrip('/')}/doc/{room_id_for(secret)}?token={relay_token(secret)}"


def invite_code(secret: bytes) -> str:
    return make_code(secret, group_size=CODE_GROUP)


@dataclass(frozen=True)
class Invite:
    """A parsed invite: the secret plus the hints a link may carry."""

    secret: bytes
    name_hint: str | None = None
    relays: tuple[str, ...] = field(default=())

    @property
    def room_id(self) -> str:
        return room_id_for(self.secret)

    @property
    def code(self) -> str:
        return invite_code(self.secret)

    def doc_urls(self) -> list[str]:
        return [doc_url(relay, self.secret) for relay in self.relays]

    def link(self) -> str:
        query = []
        if self.name_hint:
            query.append("name=" + quote(self.name_hint, safe=""))
        query.extend("relay=" + quote(url, safe="") for url in self.relays)
        suffix = ("?" + "&".join(query)) if query else ""
        return f"{LINK_SCHEME}://join/{self.code}{suffix}"


def parse_invite(text: str) -> Invite:
    """Accept a link or a bare code as pasted or typed; a clear error for anything else."""
    text = text.strip()
    if not text:
        raise ValidationError("The invite is empty: paste a link or type the code.")
    if len(text) > MAX_INVITE_TEXT:
        raise ValidationError("That invite is far too long to be a FocusMate invite.")
    if "://" not in text:
        return Invite(secret=parse_code(text, nbytes=SECRET_BYTES, what="invite code"))
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. "Invalid IPv6 URL" for a stray "["
        raise ValidationError("That is not a FocusMate invite link.") from None
    if parts.scheme != LINK_SCHEME or parts.netloc.lower() != "join":
        raise ValidationError(
            f"That is not a FocusMate invite link (it should start with {LINK_SCHEME}://join/)."
        )
    code = parts.path.strip("/")
    secret = parse_code(code, nbytes=SECRET_BYTES, what="invite code")
    query = parse_qs(parts.query)
    names = query.get("name", [])
    name = _clean_name_hint(names[0]) if names else None
    relays: list[str] = []
    for url in query.get("relay", []):
        if _is_relay_url(url) and url not in relays and len(relays) < MAX_RELAY_HINTS:
            relays.append(url)
    invite = Invite(secret=secret, name_hint=name or None, relays=tuple(relays))
    # Hints are re-quoted when shared on, which can make them longer ("%" becomes "%25"): drop
    # trailing ones until the link this invite is shared as would itself be accepted.
    while len(invite.link()) > MAX_INVITE_TEXT and invite.relays:
        invite = Invite(invite.secret, invite.name_hint, invite.relays[:-1])
    return invite


# Control and format characters (terminal escapes, bidi overrides) can disguise text; a lone
# surrogate (a pasted half of a pair) cannot be written as UTF-8, so the link could not be shared.
_HIDDEN = frozenset({"Cc", "Cf", "Cs"})


def _clean_name_hint(text: str) -> str:
    """One line of printable text: hidden characters are dropped and whitespace is collapsed, so
    a hint cannot disguise itself."""
    kept = "".join(c for c in text if unicodedata.category(c) not in _HIDDEN or c.isspace())
    return " ".join(kept.split())[:NAME_HINT_MAX]


def _is_relay_url(url: str) -> bool:
    """A ws:// or wss:// URL with a host, and nothing that could hide in a log or a prompt."""
    if any(c.isspace() or unicodedata.category(c) in _HIDDEN for c in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in {"ws", "wss"} and host is not None and _is_host(host)


def _is_host(host: str) -> bool:
    """A DNS name or an IP address, as a relay's host must be ("%" and the like are not)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and _HOST.fullmatch(host) is not None
    return True
