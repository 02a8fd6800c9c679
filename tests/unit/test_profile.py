"""Profile cards: what others see of a user, shown only when it is genuinely theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from focusmate.document import CrdtDocument
from focusmate.errors import ValidationError
from focusmate.identity import Identity
from focusmate.profile import (
    BIO_MAX,
    DEFAULT_COLOR,
    DEFAULT_EMOJI,
    NAME_MAX,
    ProfileCard,
    ProfileDocument,
    profile_doc_id,
)
from focusmate.store import Store

T0 = 1_700_000_000.0


def profile_of(tmp_path: Path, identity: Identity, *, db: str = "a.db") -> ProfileDocument:
    store = Store(tmp_path / db)
    return ProfileDocument(
        CrdtDocument(store, profile_doc_id(identity.user_id), kind="profile", now=T0)
    )


def deliver(source: ProfileDocument, target: ProfileDocument) -> None:
    target.document.apply_remote(source.document.encode_update(), origin="peer", now=T0)


def card(identity: Identity, **changes: Any) -> ProfileCard:
    return ProfileCard(identity.user_id, changes.pop("display_name", "Alice"), **changes)


# -- publish and read ------------------------------------------------------------------------


def test_published_card_reads_back_on_a_peer(tmp_path: Path) -> None:
    alice = Identity.generate()
    mine = profile_of(tmp_path, alice)
    theirs = profile_of(tmp_path, alice, db="b.db")

    mine.publish(
        alice,
        card(
            alice, bio="Writing a thesis", avatar_emoji="📚", avatar_color="#1a2b3c", updated_at=T0
        ),
    )
    deliver(mine, theirs)

    profile = theirs.read()
    assert profile is not None
    assert profile.card.display_name == "Alice"
    assert profile.card.bio == "Writing a thesis"
    assert profile.card.avatar_emoji == "📚"
    assert profile.card.avatar_color == "#1A2B3C"
    assert profile.keys == alice.public


def test_empty_profile_reads_as_none(tmp_path: Path) -> None:
    assert profile_of(tmp_path, Identity.generate()).read() is None


def test_update_changes_only_the_given_fields(tmp_path: Path) -> None:
    alice = Identity.generate()
    doc = profile_of(tmp_path, alice)
    doc.publish(alice, card(alice, bio="bio", updated_at=T0))

    doc.update(alice, now=T0 + 10, avatar_emoji="🦊")

    profile = doc.read()
    assert profile is not None
    assert profile.card.display_name == "Alice"
    assert profile.card.bio == "bio"
    assert profile.card.avatar_emoji == "🦊"
    assert profile.card.updated_at == T0 + 10


def test_update_refuses_unknown_or_fixed_fields(tmp_path: Path) -> None:
    alice = Identity.generate()
    doc = profile_of(tmp_path, alice)

    with pytest.raises(ValidationError, match="Unknown profile field"):
        doc.update(alice, now=T0, nickname="Al")
    with pytest.raises(ValidationError, match="Unknown profile field"):
        doc.update(alice, now=T0, user_id=Identity.generate().user_id)


def test_cannot_publish_someone_elses_card(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()

    with pytest.raises(ValidationError, match="its own user"):
        profile_of(tmp_path, alice).publish(alice, card(bob))


def test_defaults(tmp_path: Path) -> None:
    alice = Identity.generate()

    plain = card(alice)

    assert plain.avatar_emoji == DEFAULT_EMOJI
    assert plain.avatar_color == DEFAULT_COLOR
    assert plain.bio == ""


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [("A", "A"), ("n" * NAME_MAX, "n" * NAME_MAX), ("  Ada   Lovelace ", "Ada Lovelace")],
)
def test_valid_display_names(name: str, shown: str) -> None:
    assert card(Identity.generate(), display_name=name).display_name == shown


@pytest.mark.parametrize("name", ["", "   ", "n" * (NAME_MAX + 1), "Evil\x1b[2J", "nul\x00"])
def test_invalid_display_names(name: str) -> None:
    with pytest.raises(ValidationError):
        card(Identity.generate(), display_name=name)


def test_bio_limits() -> None:
    alice = Identity.generate()

    assert card(alice, bio="b" * BIO_MAX).bio == "b" * BIO_MAX
    assert card(alice, bio="  line one\nline two  ").bio == "line one\nline two"
    with pytest.raises(ValidationError, match=f"at most {BIO_MAX}"):
        card(alice, bio="b" * (BIO_MAX + 1))
    with pytest.raises(ValidationError, match="control characters"):
        card(alice, bio="hi\x1b[31m")


@pytest.mark.parametrize("emoji", ["🍅", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", " ☕ "])
def test_valid_avatar_emoji(emoji: str) -> None:
    assert card(Identity.generate(), avatar_emoji=emoji).avatar_emoji == emoji.strip()


@pytest.mark.parametrize("emoji", ["", "a", "7", "!!", "\x1b", "🍅" * 9, "🍅a", " "])
def test_invalid_avatar_emoji(emoji: str) -> None:
    with pytest.raises(ValidationError, match="single emoji"):
        card(Identity.generate(), avatar_emoji=emoji)


@pytest.mark.parametrize("colour", ["#aabbcc", "#AABBCC", "#012345"])
def test_valid_colours_are_upper_cased(colour: str) -> None:
    assert card(Identity.generate(), avatar_color=colour).avatar_color == colour.upper()


@pytest.mark.parametrize(
    "colour", ["", "red", "#abc", "#aabbccd", "aabbcc", "#gggggg", "#AABBCC\n", " #AABBCC"]
)
def test_invalid_colours(colour: str) -> None:
    with pytest.raises(ValidationError, match="#RRGGBB"):
        card(Identity.generate(), avatar_color=colour)


def test_non_text_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        card(Identity.generate(), bio=None)


# -- tampering -------------------------------------------------------------------------------


def published(tmp_path: Path) -> tuple[Identity, ProfileDocument]:
    alice = Identity.generate()
    doc = profile_of(tmp_path, alice)
    doc.publish(alice, card(alice, bio="honest", updated_at=T0))
    return alice, doc


def overwrite(doc: ProfileDocument, record: Any) -> None:
    with doc.document.edit(now=T0 + 1):
        doc.document.map("profile")["card"] = record


@pytest.mark.parametrize(
    "change",
    [
        {"display_name": "Mallory"},
        {"bio": "dishonest"},
        {"avatar_color": "#000000"},
        {"updated_at": T0 + 99},
        {"box_public": "A" * 43},
        {"sig": "A" * 86},
        {"sig": 12},
        {"display_name": None},
    ],
    ids=repr,
)
def test_tampered_card_reads_as_none(tmp_path: Path, change: dict[str, Any]) -> None:
    _alice, doc = published(tmp_path)
    raw = dict(doc.document.map("profile")["card"])

    overwrite(doc, {**raw, **change})

    assert doc.read() is None


def test_card_missing_fields_reads_as_none(tmp_path: Path) -> None:
    _alice, doc = published(tmp_path)
    raw = dict(doc.document.map("profile")["card"])
    del raw["user_id"]

    overwrite(doc, raw)

    assert doc.read() is None


@pytest.mark.parametrize("junk", ["card", 1, None, []], ids=repr)
def test_junk_card_reads_as_none(tmp_path: Path, junk: object) -> None:
    _alice, doc = published(tmp_path)

    overwrite(doc, junk)

    assert doc.read() is None


def test_card_resigned_by_another_key_reads_as_none(tmp_path: Path) -> None:
    alice, doc = published(tmp_path)
    mallory = Identity.generate()
    raw = dict(doc.document.map("profile")["card"])
    keys = mallory.public.to_dict()
    # Mallory's keys, Alice's user id: the id no longer matches the key.
    overwrite(doc, {**raw, "sign_public": keys["sign_public"], "box_public": keys["box_public"]})

    assert doc.read() is None
    assert alice.user_id == raw["user_id"]


def test_genuine_card_of_another_user_in_this_profile_reads_as_none(tmp_path: Path) -> None:
    # Mallory copies her own valid card into Alice's profile document: it must not pass for
    # Alice's (it would give DMs to "Alice" Mallory's encryption key).
    alice = Identity.generate()
    mallory = Identity.generate()
    mallory_doc = profile_of(tmp_path, mallory, db="m.db")
    mallory_doc.publish(mallory, card(mallory, display_name="Alice", updated_at=T0))
    alice_doc = profile_of(tmp_path, alice)

    overwrite(alice_doc, dict(mallory_doc.document.map("profile")["card"]))

    assert alice_doc.read() is None
    assert mallory_doc.read() is not None
