"""The user's public profile: display name, bio, avatar and public keys, as a signed card.

The card lives in the user's own profile document (``profile:<user id>``), which peers sync so
they can show names and avatars and find the encryption key for direct messages. The card is one
signed value: peers show it only if it verifies against the user id it claims.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pycrdt import Map

from focusmate.document import CrdtDocument
from focusmate.errors import ValidationError
from focusmate.identity import Identity, PublicIdentity, sign_record, verify_record

DOC_KIND = "profile"
NAME_MAX = 40
BIO_MAX = 280
EMOJI_MAX = 8
DEFAULT_EMOJI = "🍅"
DEFAULT_COLOR = "#E4572E"
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def profile_doc_id(user_id: str) -> str:
    return f"profile:{user_id}"


@dataclass(frozen=True)
class ProfileCard:
    user_id: str
    display_name: str
    bio: str = ""
    avatar_emoji: str = DEFAULT_EMOJI
    avatar_color: str = DEFAULT_COLOR
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        for name in ("display_name", "bio", "avatar_emoji", "avatar_color"):
            if not isinstance(getattr(self, name), str):
                raise ValidationError(f"The profile's {name} must be text.")
        name = " ".join(self.display_name.split())
        if not 1 <= len(name) <= NAME_MAX:
            raise ValidationError(f"A display name must be 1–{NAME_MAX} characters long.")
        if _has_controls(name):
            raise ValidationError("A display name cannot contain control characters.")
        object.__setattr__(self, "display_name", name)
        bio = self.bio.strip()
        if len(bio) > BIO_MAX:
            raise ValidationError(f"A bio can be at most {BIO_MAX} characters (got {len(bio)}).")
        if _has_controls(bio.replace("\n", "")):
            raise ValidationError("A bio cannot contain control characters other than new lines.")
        object.__setattr__(self, "bio", bio)
        emoji = self.avatar_emoji.strip()
        if not 1 <= len(emoji) <= EMOJI_MAX or not _looks_like_emoji(emoji):
            raise ValidationError("The avatar must be a single emoji.")
        object.__setattr__(self, "avatar_emoji", emoji)
        if not _COLOR.fullmatch(self.avatar_color):
            raise ValidationError("The avatar colour must look like #RRGGBB.")
        object.__setattr__(self, "avatar_color", self.avatar_color.upper())


def _has_controls(text: str) -> bool:
    """Control characters (terminal escapes, NUL...): never part of a name shown to others."""
    return any(unicodedata.category(c) == "Cc" for c in text)


# Joiners, variation selectors, keycap marks and the tag characters of subdivision flags.
_EMOJI_PARTS = frozenset({"Mn", "Me", "Sk"})


def _looks_like_emoji(text: str) -> bool:
    """At least one symbol, and otherwise only what emoji sequences are built from."""
    has_symbol = False
    for char in text:
        category = unicodedata.category(char)
        if category == "So":
            has_symbol = True
        elif not (
            category in _EMOJI_PARTS or char == "\u200d" or "\U000e0020" <= char <= "\U000e007f"
        ):
            return False
    return has_symbol


@dataclass(frozen=True)
class VerifiedProfile:
    card: ProfileCard
    keys: PublicIdentity


class ProfileDocument:
    """Reads any user's profile document; writes only the local user's own."""

    def __init__(self, document: CrdtDocument) -> None:
        self.document = document

    def _map(self) -> Map[Any]:
        return self.document.map("profile")

    def publish(self, identity: Identity, card: ProfileCard) -> None:
        if card.user_id != identity.user_id:
            raise ValidationError("A profile card can only be published by its own user.")
        keys = identity.public.to_dict()
        fields = {**asdict(card), **keys}
        record = {**fields, "sig": sign_record(identity, kind="profile", fields=fields)}
        with self.document.edit(now=card.updated_at):
            self._map()["card"] = record

    def update(self, identity: Identity, *, now: float, **changes: Any) -> ProfileCard:
        unknown = set(changes) - {f.name for f in fields(ProfileCard)} | (
            set(changes) & {"user_id", "updated_at"}
        )
        if unknown:
            raise ValidationError(f"Unknown profile field(s): {', '.join(sorted(unknown))}.")
        current = self.read()
        base = current.card if current else ProfileCard(identity.user_id, "Me")
        card = replace(base, **changes, updated_at=now)
        self.publish(identity, card)
        return card

    def read(self) -> VerifiedProfile | None:
        """The card if present and genuinely signed by the key its user id names."""
        raw = self._map().get("card")
        if not isinstance(raw, Mapping):
            return None
        profile = read_card(raw)
        # A genuine card of someone else copied into this document must not pass for its owner
        # (it would lend them another user's name and, worse, encryption key for DMs).
        if profile is None or profile_doc_id(profile.card.user_id) != self.document.doc_id:
            return None
        return profile


def read_card(raw: Mapping[str, Any]) -> VerifiedProfile | None:
    try:
        keys = PublicIdentity.from_dict(raw)
        card = ProfileCard(
            user_id=str(raw["user_id"]),
            display_name=str(raw["display_name"]),
            bio=str(raw.get("bio", "")),
            avatar_emoji=str(raw.get("avatar_emoji", DEFAULT_EMOJI)),
            avatar_color=str(raw.get("avatar_color", DEFAULT_COLOR)),
            updated_at=float(raw.get("updated_at", 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None
    fields = {**asdict(card), **keys.to_dict()}
    ok = verify_record(
        user_id=card.user_id,
        sign_public_b64=str(raw.get("sign_public", "")),
        kind="profile",
        fields=fields,
        signature_b64=str(raw.get("sig", "")),
    )
    return VerifiedProfile(card=card, keys=keys) if ok else None
