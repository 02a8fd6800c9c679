"""Human-typable codes: base32 round trips, forgiving input, and typo detection."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusmate import codes
from focusmate.errors import ValidationError

CROCKFORD_FROM_RFC4648 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


@given(st.binary(max_size=40))
def test_base32_round_trips(data: bytes) -> None:
    text = codes.encode_base32(data)
    assert set(text) <= set(codes.ALPHABET)
    assert codes.decode_base32(text, nbytes=len(data)) == data


@given(st.binary(max_size=40))
def test_base32_matches_rfc4648_bit_order(data: bytes) -> None:
    expected = base64.b32encode(data).decode().rstrip("=").translate(CROCKFORD_FROM_RFC4648)
    assert codes.encode_base32(data) == expected


def test_encode_base32_known_value() -> None:
    assert codes.encode_base32(b"\x00") == "00"
    assert codes.encode_base32(b"\xff\xff\xff\xff\xff") == "ZZZZZZZZ"
    assert codes.encode_base32(b"") == ""


def test_decode_base32_rejects_wrong_length() -> None:
    with pytest.raises(ValidationError, match="characters"):
        codes.decode_base32("ZZZ", nbytes=5)


def test_decode_base32_rejects_nonzero_fill_bits() -> None:
    # One byte is 8 bits in two characters (10 bits): the last 2 bits must be zero.
    assert codes.decode_base32("ZW", nbytes=1) == b"\xff"
    with pytest.raises(ValidationError):
        codes.decode_base32("ZZ", nbytes=1)


def test_normalize_forgives_case_separators_and_read_alikes() -> None:
    assert codes.normalize(" abc-def ghj\t") == "ABCDEFGHJ"
    assert codes.normalize("iIlLoO") == "111100"
    assert codes.normalize("ab\u2013cd") == "ABCD"  # en dash pasted from a chat app


@pytest.mark.parametrize("bad", ["U", "u", "!", "é", "ß", "_"])
def test_normalize_names_the_bad_character(bad: str) -> None:
    with pytest.raises(ValidationError, match=repr(bad)) as excinfo:
        codes.normalize(f"ABC{bad}DEF", what="invite code")
    assert "invite code" in str(excinfo.value)


def test_group_inserts_dashes() -> None:
    assert codes.group("ABCDEFGHJKM") == "ABCDE-FGHJK-M"
    assert codes.group("ABCDEF", 3) == "ABC-DEF"
    assert codes.group("") == ""


def _luhn_valid(code: str) -> bool:
    """An independent Luhn mod 32 validator: the check character sits at factor 1."""
    total = 0
    for position, char in enumerate(reversed(code)):
        addend = codes.ALPHABET.index(char) * (2 if position % 2 else 1)
        total += addend // 32 + addend % 32
    return total % 32 == 0


def test_check_char_known_values() -> None:
    assert codes.check_char("") == "0"
    assert codes.check_char("1") == "Y"  # 1 doubled is 2, and 2 + 30 = 32


@given(st.text(alphabet=codes.ALPHABET, max_size=40))
def test_check_char_satisfies_luhn_mod_32(body: str) -> None:
    assert _luhn_valid(body + codes.check_char(body))


def test_check_char_rejects_non_canonical_body() -> None:
    with pytest.raises(ValidationError):
        codes.check_char("abc")


@given(st.binary(min_size=1, max_size=32), st.sampled_from([4, 5, 6]))
def test_make_code_round_trips_through_parse_code(data: bytes, size: int) -> None:
    code = codes.make_code(data, group_size=size)
    assert all(len(chunk) <= size for chunk in code.split("-"))
    assert codes.parse_code(code, nbytes=len(data), what="code") == data
    messy = code.lower().replace("-", " ").replace("1", "l").replace("0", "o")
    assert codes.parse_code(messy, nbytes=len(data), what="code") == data


def test_make_code_for_a_user_id_is_five_groups_of_five() -> None:
    code = codes.make_code(bytes(range(15)), group_size=5)
    assert [len(chunk) for chunk in code.split("-")] == [5, 5, 5, 5, 5]


@given(
    data=st.binary(min_size=1, max_size=32),
    position=st.integers(min_value=0),
    replacement=st.sampled_from(codes.ALPHABET),
)
def test_every_single_character_substitution_is_detected(
    data: bytes, position: int, replacement: str
) -> None:
    body = codes.encode_base32(data)
    code = body + codes.check_char(body)
    position %= len(code)
    if code[position] == replacement:
        replacement = codes.ALPHABET[(codes.ALPHABET.index(replacement) + 1) % 32]
    typo = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(ValidationError):
        codes.parse_code(codes.group(typo), nbytes=len(data), what="user id")


def test_exhaustive_substitutions_in_one_code() -> None:
    body = codes.encode_base32(bytes(range(100, 115)))
    code = body + codes.check_char(body)
    for position in range(len(code)):
        for replacement in codes.ALPHABET.replace(code[position], ""):
            typo = code[:position] + replacement + code[position + 1 :]
            assert codes.check_char(typo[:-1]) != typo[-1]


def test_parse_code_typo_message_names_the_thing() -> None:
    code = codes.make_code(b"\x01" * 15, group_size=5)
    typo = ("2" if code[0] != "2" else "3") + code[1:]
    with pytest.raises(ValidationError) as excinfo:
        codes.parse_code(typo, nbytes=15, what="user id")
    assert str(excinfo.value) == "That user id has a typo (the check character does not match)."


def test_parse_code_too_short_and_too_long() -> None:
    code = codes.make_code(b"\x01" * 15, group_size=5)
    with pytest.raises(ValidationError, match="That invite code is too short"):
        codes.parse_code(code[:-3], nbytes=15, what="invite code")
    with pytest.raises(ValidationError, match="That invite code is too long"):
        codes.parse_code(code + "A", nbytes=15, what="invite code")
    with pytest.raises(ValidationError, match="That invite code is empty"):
        codes.parse_code(" - ", nbytes=15, what="invite code")


def test_parse_code_rejects_bad_character_naming_it() -> None:
    with pytest.raises(ValidationError, match="That invite code contains 'U'"):
        codes.parse_code("ABCDU", nbytes=3, what="invite code")
