"""Identity: user ids derived from keys, signatures, and signed records that survive pycrdt."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusmate import codes
from focusmate.errors import ValidationError
from focusmate.identity import (
    Identity,
    PublicIdentity,
    b64url_decode,
    b64url_encode,
    canonical_json,
    parse_user_id,
    sign_record,
    user_id_for,
    verify,
    verify_record,
)


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def bob() -> Identity:
    return Identity.generate()


def _record_args(identity: Identity, **fields: object) -> dict[str, object]:
    return {
        "user_id": identity.user_id,
        "sign_public_b64": b64url_encode(identity.public.sign_public),
        "kind": "post",
        "fields": fields,
        "signature_b64": sign_record(identity, kind="post", fields=fields),
    }


def test_user_id_is_five_groups_of_five_with_valid_check(alice: Identity) -> None:
    groups = alice.user_id.split("-")
    assert [len(g) for g in groups] == [5, 5, 5, 5, 5]
    assert parse_user_id(alice.user_id) == alice.user_id


def test_user_id_is_first_120_bits_of_domain_separated_sha256() -> None:
    key = bytes(range(32))
    digest = hashlib.sha256(b"focusmate/user-id/v1" + key).digest()
    assert user_id_for(key) == codes.make_code(digest[:15], group_size=5)


def test_user_id_for_rejects_wrong_key_length() -> None:
    with pytest.raises(ValidationError):
        user_id_for(b"short")


def test_parse_user_id_canonicalises_messy_input(alice: Identity) -> None:
    messy = alice.user_id.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert parse_user_id(f"  {messy} ") == alice.user_id


def test_parse_user_id_reports_typo(alice: Identity) -> None:
    uid = alice.user_id
    typo = ("X" if uid[0] != "X" else "Y") + uid[1:]
    with pytest.raises(ValidationError, match="user id has a typo"):
        parse_user_id(typo)


def test_identity_round_trips_through_private_bytes(alice: Identity) -> None:
    sign_private, box_private = alice.private_bytes()
    again = Identity.from_private_bytes(sign_private, box_private)
    assert again.public == alice.public
    assert again.private_bytes() == (sign_private, box_private)


def test_from_private_bytes_rejects_wrong_length() -> None:
    with pytest.raises(ValidationError):
        Identity.from_private_bytes(b"\x01" * 31, b"\x02" * 32)


def test_repr_does_not_leak_private_keys(alice: Identity) -> None:
    sign_private, box_private = alice.private_bytes()
    text = repr(alice)
    assert alice.user_id in text
    for secret in (sign_private, box_private):
        assert secret.hex() not in text
        assert b64url_encode(secret) not in text


def test_box_private_key_matches_public(alice: Identity) -> None:
    assert alice.box_private_key.public_key().public_bytes_raw() == alice.public.box_public


def test_box_keys_agree_between_two_users(alice: Identity, bob: Identity) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    shared_a = alice.box_private_key.exchange(
        X25519PublicKey.from_public_bytes(bob.public.box_public)
    )
    shared_b = bob.box_private_key.exchange(
        X25519PublicKey.from_public_bytes(alice.public.box_public)
    )
    assert shared_a == shared_b


def test_public_identity_dict_round_trip(alice: Identity) -> None:
    data = alice.public.to_dict()
    assert set(data) == {"user_id", "sign_public", "box_public"}
    assert "=" not in data["sign_public"]
    assert PublicIdentity.from_dict(data) == alice.public


def test_public_identity_from_dict_rejects_mismatched_user_id(
    alice: Identity, bob: Identity
) -> None:
    data = alice.public.to_dict() | {"user_id": bob.user_id}
    with pytest.raises(ValidationError, match="does not match"):
        PublicIdentity.from_dict(data)


@pytest.mark.parametrize(
    "change",
    [
        {"sign_public": b64url_encode(b"\x01" * 31)},
        {"box_public": b64url_encode(b"\x01" * 33)},
        {"box_public": "not base64!"},
        {"sign_public": None},
        {"user_id": 42},
    ],
)
def test_public_identity_from_dict_rejects_malformed(
    alice: Identity, change: dict[str, object]
) -> None:
    data: dict[str, object] = {**alice.public.to_dict(), **change}
    with pytest.raises(ValidationError):
        PublicIdentity.from_dict(data)


def test_b64url_is_strict() -> None:
    assert b64url_decode(b64url_encode(b"\xfb\xff")) == b"\xfb\xff"
    for bad in ["+/8", "-_8=", "a", "ab c", "-_9"]:  # std alphabet, padding, length, space, bits
        with pytest.raises(ValidationError):
            b64url_decode(bad)


def test_sign_and_verify(alice: Identity, bob: Identity) -> None:
    signature = alice.sign(b"hello")
    assert len(signature) == 64
    assert verify(alice.public.sign_public, b"hello", signature)
    assert not verify(alice.public.sign_public, b"hellO", signature)
    assert not verify(bob.public.sign_public, b"hello", signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify(alice.public.sign_public, b"hello", tampered)


@pytest.mark.parametrize(
    ("key", "signature"),
    [(b"", b"\x00" * 64), (b"\x00" * 32, b""), (b"\x00" * 33, b"\x00" * 64), ("str", "str")],
)
def test_verify_never_raises_on_malformed_input(key: object, signature: object) -> None:
    assert verify(key, b"data", signature) is False  # type: ignore[arg-type]


def test_signed_record_verifies(alice: Identity) -> None:
    assert verify_record(**_record_args(alice, room="r1", body="hi", at=1700000000))  # type: ignore[arg-type]


def test_tampered_record_fails(alice: Identity) -> None:
    args = _record_args(alice, room="r1", body="hi")
    args["fields"] = {"room": "r1", "body": "hi!"}
    assert not verify_record(**args)  # type: ignore[arg-type]


def test_tampered_kind_fails(alice: Identity) -> None:
    args = _record_args(alice, room="r1", body="hi") | {"kind": "comment"}
    assert not verify_record(**args)  # type: ignore[arg-type]


def test_tampered_signature_fails(alice: Identity) -> None:
    args = _record_args(alice, body="hi")
    signature = bytearray(b64url_decode(str(args["signature_b64"])))
    signature[10] ^= 0x40
    args["signature_b64"] = b64url_encode(bytes(signature))
    assert not verify_record(**args)  # type: ignore[arg-type]


def test_key_that_does_not_hash_to_user_id_fails(alice: Identity, bob: Identity) -> None:
    # Bob signs a record correctly with his own key but claims to be Alice.
    args = _record_args(bob, body="I am alice") | {"user_id": alice.user_id}
    assert not verify_record(**args)  # type: ignore[arg-type]


def test_swapped_key_fails(alice: Identity, bob: Identity) -> None:
    args = _record_args(alice, body="hi") | {
        "sign_public_b64": b64url_encode(bob.public.sign_public)
    }
    assert not verify_record(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "not a user id"},
        {"user_id": None},
        {"sign_public_b64": "!!"},
        {"sign_public_b64": b64url_encode(b"\x00" * 5)},
        {"signature_b64": "%%%"},
        {"signature_b64": ""},
        {"fields": {"x": math.nan}},
        {"fields": {1: "non-string key"}},
        {"fields": {"kind": "dm"}},
        {"fields": None},
        {"kind": 7},
    ],
)
def test_verify_record_never_raises(alice: Identity, change: dict[str, object]) -> None:
    args = _record_args(alice, body="hi") | change
    assert verify_record(**args) is False  # type: ignore[arg-type]


def test_verify_record_accepts_messy_user_id(alice: Identity) -> None:
    args = _record_args(alice, body="hi") | {"user_id": alice.user_id.lower().replace("-", "")}
    assert verify_record(**args)  # type: ignore[arg-type]


def test_fields_cannot_override_kind(alice: Identity) -> None:
    with pytest.raises(ValidationError, match="kind"):
        sign_record(alice, kind="post", fields={"kind": "dm"})


def test_record_signature_is_not_a_signature_over_bare_json(alice: Identity) -> None:
    # The context prefix stops a signature over some other message being replayed as a record.
    fields = {"body": "hi"}
    bare = alice.sign(canonical_json({"kind": "post", **fields}))
    args = _record_args(alice, **fields) | {"signature_b64": b64url_encode(bare)}
    assert not verify_record(**args)  # type: ignore[arg-type]


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, "é", None, True]}) == (
        '{"a":[1,"é",null,true],"b":1}'.encode()
    )


def test_canonical_json_writes_integral_floats_as_ints() -> None:
    as_written = {"n": 3, "nested": {"at": 1700000000, "list": [1, 2.5]}, "z": -0.0}
    as_read_back = {"n": 3.0, "nested": {"at": 1700000000.0, "list": [1.0, 2.5]}, "z": 0}
    assert canonical_json(as_written) == canonical_json(as_read_back)
    assert canonical_json({"x": 2.5}) == b'{"x":2.5}'


def test_record_signed_with_ints_verifies_after_float_round_trip(alice: Identity) -> None:
    signature = sign_record(alice, kind="timer", fields={"seconds": 1500, "round": 2})
    assert verify_record(
        user_id=alice.user_id,
        sign_public_b64=b64url_encode(alice.public.sign_public),
        kind="timer",
        fields={"seconds": 1500.0, "round": 2.0},
        signature_b64=signature,
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_rejects_nan_and_infinity(bad: float) -> None:
    with pytest.raises(ValidationError):
        canonical_json({"x": [bad]})


def test_canonical_json_rejects_non_string_keys_and_unknown_types() -> None:
    with pytest.raises(ValidationError):
        canonical_json({"x": {1: "a"}})
    with pytest.raises(ValidationError):
        canonical_json({"x": object()})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _floatify(value: object) -> object:
    """What pycrdt gives back: every number a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_floatify(item) for item in value]
    assert isinstance(value, dict)
    return {key: _floatify(item) for key, item in value.items()}


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_canonical_json_is_stable_under_float_round_trip(obj: dict[str, object]) -> None:
    floated = _floatify(obj)
    assert isinstance(floated, dict)
    assert canonical_json(obj) == canonical_json(floated)
