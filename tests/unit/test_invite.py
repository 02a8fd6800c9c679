"""Invites: the code and link a user pastes, and the values derived from the room secret."""

from __future__ import annotations

import pytest

from focusmate.errors import ValidationError
from focusmate.invite import (
    MAX_INVITE_TEXT,
    SECRET_BYTES,
    Invite,
    invite_code,
    membership_proof,
    new_room_secret,
    parse_invite,
    relay_token,
    room_id_for,
    room_id_for_token,
)

SECRET = bytes(range(SECRET_BYTES))
OTHER_SECRET = bytes(range(1, SECRET_BYTES + 1))


def test_code_round_trip() -> None:
    code = invite_code(SECRET)

    invite = parse_invite(code)

    assert invite.secret == SECRET
    assert invite.room_id == room_id_for(SECRET)
    assert invite.name_hint is None
    assert invite.relays == ()


def test_code_is_three_groups_of_seven() -> None:
    groups = invite_code(SECRET).split("-")

    assert [len(g) for g in groups] == [7, 7, 7]


def test_code_tolerates_case_spaces_and_read_alikes() -> None:
    code = invite_code(SECRET)
    typed = "  " + code.lower().replace("-", " ").replace("0", "o").replace("1", "l") + "\n"

    assert parse_invite(typed).secret == SECRET


def test_link_round_trip_with_name_and_relays() -> None:
    invite = Invite(
        secret=SECRET,
        name_hint="Deep work & friends?",
        relays=("wss://relay.example.org/ws?x=1&y=2", "ws://192.168.1.5:8765"),
    )

    parsed = parse_invite(invite.link())

    assert parsed == invite
    assert invite.link().startswith("focusmate://join/" + invite.code)


def test_link_without_hints_round_trips() -> None:
    invite = Invite(secret=SECRET)

    assert invite.link() == f"focusmate://join/{invite.code}"
    assert parse_invite(invite.link()) == invite


def test_link_drops_relays_that_are_not_websockets() -> None:
    code = invite_code(SECRET)
    link = (
        f"focusmate://join/{code}?relay=https%3A%2F%2Fevil.example"
        "&relay=file%3A%2F%2F%2Fetc%2Fpasswd&relay=javascript%3Aalert(1)"
        "&relay=ws%3A%2F%2F&relay=ws%3A%2F%2Fa%25b.example&relay=wss%3A%2F%2Fok.example"
    )

    assert parse_invite(link).relays == ("wss://ok.example",)


def test_an_accepted_link_can_always_be_shared_on() -> None:
    # Unquoted hints grow when the link is written out again ("/" becomes "%2F"), so a link near
    # the length limit keeps only the hints that fit and stays acceptable once shared.
    relays = [f"ws://relay{i}.example/" + "p/" * 100 for i in range(8)]
    link = f"focusmate://join/{invite_code(SECRET)}?" + "&".join(f"relay={r}" for r in relays)
    assert len(link) <= MAX_INVITE_TEXT

    invite = parse_invite(link)

    assert 0 < len(invite.relays) < len(relays)
    assert invite.relays == tuple(relays[: len(invite.relays)])
    assert len(invite.link()) <= MAX_INVITE_TEXT
    assert parse_invite(invite.link()) == invite


def test_link_name_hint_cannot_carry_terminal_escapes() -> None:
    code = invite_code(SECRET)
    link = f"focusmate://join/{code}?name=%1B%5B2JDeep%0A%0Awork%E2%80%AE"

    assert parse_invite(link).name_hint == "[2JDeep work"


def test_link_name_hint_is_capped() -> None:
    link = f"focusmate://join/{invite_code(SECRET)}?name=" + "a" * 500

    hint = parse_invite(link).name_hint

    assert hint is not None
    assert len(hint) == 100


def test_single_typo_is_reported_as_a_typo() -> None:
    code = invite_code(SECRET)
    first = code[0]
    typo = ("1" if first != "1" else "2") + code[1:]

    with pytest.raises(ValidationError, match="typo"):
        parse_invite(typo)


def test_typo_in_a_link_is_reported_as_a_typo() -> None:
    code = invite_code(SECRET)
    swapped = code[:3] + ("Z" if code[3] != "Z" else "Y") + code[4:]

    with pytest.raises(ValidationError, match="typo"):
        parse_invite(f"focusmate://join/{swapped}")


def test_missing_character_says_too_short() -> None:
    with pytest.raises(ValidationError, match="too short"):
        parse_invite(invite_code(SECRET)[:-1])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "hello there",
        "!!!!!!!-!!!!!!!-!!!!!!!",
        "https://join/" + "0" * 21,
        "focusmate://leave/" + "0" * 21,
        "focusmate://join/",
        "focusmate://[join/abc",
        "focusmate://join/ABC/DEF",
        "A" * (MAX_INVITE_TEXT + 1),
        "focusmate://join/" + "0" * 5000,
        "0" * 10_000_000,
    ],
    ids=[
        "empty",
        "whitespace",
        "words",
        "punctuation",
        "wrong-scheme",
        "wrong-action",
        "link-without-code",
        "broken-url",
        "path-with-slash",
        "just-too-long",
        "huge-link",
        "huge-code",
    ],
)
def test_garbage_is_rejected_with_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_invite(text)

    assert str(err.value)  # a message the user can read


def test_empty_invite_message_says_what_to_do() -> None:
    with pytest.raises(ValidationError, match="empty"):
        parse_invite("  ")


def test_wrong_scheme_message_names_the_expected_prefix() -> None:
    with pytest.raises(ValidationError, match="focusmate://join/"):
        parse_invite(f"https://join/{invite_code(SECRET)}")


def test_room_id_is_stable_and_differs_per_secret() -> None:
    assert room_id_for(SECRET) == room_id_for(bytes(SECRET))
    assert room_id_for(SECRET) != room_id_for(OTHER_SECRET)
    assert len(room_id_for(SECRET)) == 32
    assert int(room_id_for(SECRET), 16) >= 0  # plain hex


def test_new_secrets_are_distinct_and_sized() -> None:
    secrets = {new_room_secret() for _ in range(50)}

    assert len(secrets) == 50
    assert {len(s) for s in secrets} == {SECRET_BYTES}


def test_relay_token_differs_per_secret_and_hides_it() -> None:
    token = relay_token(SECRET)

    assert token == relay_token(SECRET)
    assert token != relay_token(OTHER_SECRET)
    assert SECRET.hex() not in token
    assert invite_code(SECRET).replace("-", "") not in token.upper()


def test_relay_can_check_a_token_against_the_room_id_without_the_secret() -> None:
    assert room_id_for_token(relay_token(SECRET)) == room_id_for(SECRET)
    assert room_id_for_token(relay_token(OTHER_SECRET)) != room_id_for(SECRET)
    assert room_id_for_token("not-a-token") != room_id_for(SECRET)


def test_membership_proof_differs_per_secret_nonce_and_context() -> None:
    proof = membership_proof(SECRET, nonce=b"n" * 16, context=b"peer-a")

    assert proof == membership_proof(SECRET, nonce=b"n" * 16, context=b"peer-a")
    assert proof != membership_proof(OTHER_SECRET, nonce=b"n" * 16, context=b"peer-a")
    assert proof != membership_proof(SECRET, nonce=b"m" * 16, context=b"peer-a")
    assert proof != membership_proof(SECRET, nonce=b"n" * 16, context=b"peer-b")
    assert SECRET not in proof


def test_membership_proof_context_and_nonce_cannot_be_reshuffled() -> None:
    # Same concatenated bytes, different split: a proof for one must not serve for the other.
    one = membership_proof(SECRET, nonce=b"cdef", context=b"ab")
    other = membership_proof(SECRET, nonce=b"def", context=b"abc")

    assert one != other
