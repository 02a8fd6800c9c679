"""Direct messages: encrypted for one recipient, signed so anyone can check the sender."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from focusmate.dm import (
    MAX_ENVELOPE_BYTES,
    MAX_TEXT_CHARS,
    Envelope,
    Message,
    normalize_text,
    open_envelope,
    seal,
    verify_envelope,
)
from focusmate.errors import ValidationError
from focusmate.identity import Identity, PublicIdentity, b64url_decode, b64url_encode

NOW = 1_700_000_000.25
MSG_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def bob() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def carol() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def env(alice: Identity, bob: Identity) -> Envelope:
    return seal(alice, bob.public, "Want to pair on the 3pm block?", now=NOW, message_id=MSG_ID)


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def _reject(identity: Identity, envelope: Envelope) -> str:
    with pytest.raises(ValidationError) as info:
        open_envelope(identity, envelope)
    return str(info.value)


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_through_dict_and_json(alice: Identity, bob: Identity, env: Envelope) -> None:
    for received in (
        Envelope.from_dict(env.to_dict()),
        Envelope.from_json_bytes(env.to_json_bytes()),
    ):
        assert received == env
        assert open_envelope(bob, received) == Message(
            id=MSG_ID,
            sender=alice.user_id,
            recipient=bob.user_id,
            sent_at=NOW,
            text="Want to pair on the 3pm block?",
        )


def test_wire_dict_shape(alice: Identity, bob: Identity, env: Envelope) -> None:
    wire = env.to_dict()

    assert list(wire) == [
        *("v", "id", "kind", "sender", "sender_sign", "recipient", "sent_at", "ephemeral"),
        *("nonce", "ciphertext", "signature"),
    ]
    assert wire["v"] == 1
    assert wire["kind"] == "message"
    assert wire["sender"] == alice.user_id
    assert wire["recipient"] == bob.user_id
    assert wire["sender_sign"] == b64url_encode(alice.public.sign_public)
    assert json.loads(json.dumps(wire)) == wire


def test_random_message_id_is_32_lowercase_hex(alice: Identity, bob: Identity) -> None:
    ids = {seal(alice, bob.public, "hi", now=NOW).id for _ in range(3)}

    assert len(ids) == 3
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) >= 0 for i in ids)


def test_integral_sent_at_survives_canonical_json(alice: Identity, bob: Identity) -> None:
    sent = seal(alice, bob.public, "hi", now=1_700_000_000)
    received = Envelope.from_json_bytes(sent.to_json_bytes())  # sent_at travels as an int

    assert isinstance(received.sent_at, float)
    assert open_envelope(bob, received).sent_at == 1_700_000_000.0


def test_text_is_normalised(alice: Identity, bob: Identity) -> None:
    sent = seal(alice, bob.public, "  line one\r\nline\ttwo\r\n ", now=NOW)

    assert open_envelope(bob, sent).text == "line one\nline\ttwo"


# --- confidentiality -----------------------------------------------------------------------------


def test_third_identity_cannot_open(carol: Identity, env: Envelope) -> None:
    assert "addressed to someone else" in _reject(carol, env)


def test_wrong_box_key_fails_to_decrypt_with_clear_error(
    alice: Identity, bob: Identity, carol: Identity
) -> None:
    # A directory that pairs Bob's id with Carol's encryption key: signed fine, Bob cannot read it.
    wrong = PublicIdentity(bob.user_id, bob.public.sign_public, carol.public.box_public)
    sent = seal(alice, wrong, "hello", now=NOW)

    assert verify_envelope(sent)
    assert "cannot be decrypted" in _reject(bob, sent)


def test_ciphertext_hides_the_plaintext(alice: Identity, bob: Identity) -> None:
    secret = "the launch codes are 0000 0000"
    sent = seal(alice, bob.public, secret, now=NOW)

    assert secret.encode() not in sent.ciphertext
    assert secret.encode() not in sent.to_json_bytes()
    assert b"launch" not in sent.to_json_bytes()


def test_two_seals_of_the_same_text_differ(alice: Identity, bob: Identity) -> None:
    one = seal(alice, bob.public, "same", now=NOW, message_id=MSG_ID)
    two = seal(alice, bob.public, "same", now=NOW, message_id=MSG_ID)

    assert one.ephemeral != two.ephemeral
    assert one.nonce != two.nonce
    assert one.ciphertext != two.ciphertext
    assert open_envelope(bob, one).text == open_envelope(bob, two).text == "same"


# --- authenticity --------------------------------------------------------------------------------


def test_relay_verifies_without_any_private_key(env: Envelope) -> None:
    # Only the wire bytes: no Identity at all.
    assert verify_envelope(Envelope.from_json_bytes(env.to_json_bytes()))


@pytest.mark.parametrize(
    "field",
    ["ciphertext", "nonce", "ephemeral", "sent_at", "id", "sender", "recipient", "signature"],
)
def test_tampering_with_any_field_is_rejected(
    field: str, bob: Identity, carol: Identity, env: Envelope
) -> None:
    changes: dict[str, object] = {
        "ciphertext": _flip(env.ciphertext, len(env.ciphertext) // 2),
        "nonce": _flip(env.nonce),
        "ephemeral": Identity.generate().public.box_public,
        "sent_at": env.sent_at + 1,
        "id": "f" * 32,
        "sender": carol.user_id,
        "recipient": carol.user_id,
        "signature": _flip(env.signature, 5),
    }
    tampered = replace(env, **{field: changes[field]})  # type: ignore[arg-type]

    assert not verify_envelope(tampered)
    opener = carol if field == "recipient" else bob
    assert "signature is invalid" in _reject(opener, tampered)


def test_forged_sender_key_is_rejected(alice: Identity, carol: Identity, env: Envelope) -> None:
    # Claims to be Alice but carries (and is signed by) Carol's key.
    forged = replace(env, sender_sign=carol.public.sign_public)
    forged = replace(forged, signature=carol.sign(b"anything"))

    assert forged.sender == alice.user_id
    assert not verify_envelope(forged)


def test_re_signing_as_another_sender_does_not_decrypt(
    bob: Identity, carol: Identity, env: Envelope
) -> None:
    # Carol strips Alice's signature and claims the message as hers: authentic, but unreadable.
    from focusmate import dm

    claimed = replace(env, sender=carol.user_id, sender_sign=carol.public.sign_public)
    claimed = replace(claimed, signature=carol.sign(dm._signed_payload(claimed)))

    assert verify_envelope(claimed)
    assert "cannot be decrypted" in _reject(bob, claimed)


@pytest.mark.parametrize(
    "content", [b"not json", b'{"text":"\\u0000"}', b'{"text":"a","x":1}', b"[]"]
)
def test_authentic_but_malformed_content_is_rejected(
    alice: Identity, bob: Identity, env: Envelope, content: bytes
) -> None:
    # A buggy or hostile sender encrypts something that is not a valid payload.
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from focusmate import dm

    eph = X25519PrivateKey.generate()
    draft = replace(env, ephemeral=eph.public_key().public_bytes_raw())
    shared = eph.exchange(bob.box_private_key.public_key())
    key = dm._derive_key(shared, draft, bob.public.box_public)
    sealed = replace(
        draft, ciphertext=ChaCha20Poly1305(key).encrypt(draft.nonce, content, dm._aad(draft))
    )
    signed = replace(sealed, signature=alice.sign(dm._signed_payload(sealed)))

    assert verify_envelope(signed)
    assert "not valid text" in _reject(bob, signed)


def test_verify_envelope_never_raises_for_garbage(env: Envelope) -> None:
    broken = object.__new__(Envelope)  # bypasses validation, as a buggy caller might
    object.__setattr__(broken, "sender_sign", "not bytes")

    assert verify_envelope(broken) is False
    assert verify_envelope(env) is True


# --- parsing untrusted input ---------------------------------------------------------------------


def _wire(env: Envelope, **changes: object) -> dict[str, object]:
    wire = env.to_dict()
    wire.update(changes)
    return wire


def test_from_dict_rejects_missing_and_extra_keys(env: Envelope) -> None:
    missing = env.to_dict()
    del missing["nonce"]
    with pytest.raises(ValidationError, match="missing: \\['nonce'\\]"):
        Envelope.from_dict(missing)
    with pytest.raises(ValidationError, match="unexpected: \\[\"'extra'\"\\]"):
        Envelope.from_dict(_wire(env, extra=1))
    with pytest.raises(ValidationError, match="JSON object"):
        Envelope.from_dict([1, 2])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "version"),
        ({"v": True}, "version"),
        ({"v": "1"}, "wrong type"),
        ({"id": "0123456789ABCDEF0123456789ABCDEF"}, "32 lowercase hex"),
        ({"id": "abc"}, "32 lowercase hex"),
        ({"id": 5}, "wrong type"),
        ({"kind": "receipt"}, "kind"),
        ({"sender": "not an id"}, "user id"),
        ({"recipient": None}, "wrong type"),
        ({"sent_at": "now"}, "sending time"),
        ({"sent_at": True}, "sending time"),
        ({"sent_at": -1.0}, "sending time"),
        ({"sent_at": float("nan")}, "sending time"),
        ({"sent_at": 10**400}, "sending time"),
        ({"sender_sign": b64url_encode(bytes(31))}, "sender_sign must be 32 bytes"),
        ({"ephemeral": b64url_encode(bytes(33))}, "ephemeral must be 32 bytes"),
        ({"nonce": b64url_encode(bytes(24))}, "nonce must be 12 bytes"),
        ({"signature": b64url_encode(bytes(63))}, "signature must be 64 bytes"),
        ({"signature": 7}, "base64 string"),
        ({"nonce": "AAAAAAAAAAAAAAA="}, "not valid URL-safe base64"),
        ({"nonce": "AAAA+AAAAAAAAAAA"}, "not valid URL-safe base64"),
        ({"ciphertext": b64url_encode(bytes(16))}, "ciphertext"),
        ({"ciphertext": b64url_encode(bytes(17_000))}, "ciphertext"),
        ({"ciphertext": "A" * 100_000}, "sane length"),
    ],
)
def test_from_dict_rejects_bad_values(
    env: Envelope, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Envelope.from_dict(_wire(env, **changes))


def test_from_dict_requires_canonical_user_ids(env: Envelope) -> None:
    with pytest.raises(ValidationError, match="canonical"):
        Envelope.from_dict(_wire(env, sender=env.sender.lower()))


def test_from_json_bytes_rejects_oversize_and_bad_json(env: Envelope) -> None:
    padded = env.to_json_bytes() + b" " * (MAX_ENVELOPE_BYTES + 1 - len(env.to_json_bytes()))
    with pytest.raises(ValidationError, match="at most"):
        Envelope.from_json_bytes(padded)
    with pytest.raises(ValidationError, match="valid JSON"):
        Envelope.from_json_bytes(b"{not json")
    with pytest.raises(ValidationError, match="valid JSON"):
        Envelope.from_json_bytes(b"\xff\xfe")
    with pytest.raises(ValidationError, match="valid JSON"):
        Envelope.from_json_bytes(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(ValidationError, match="JSON object"):
        Envelope.from_json_bytes(b"[]")
    duplicated = env.to_json_bytes()[:-1] + b',"v":1}'
    with pytest.raises(ValidationError, match="valid JSON"):
        Envelope.from_json_bytes(duplicated)


def test_tampered_wire_ciphertext_is_rejected(bob: Identity, env: Envelope) -> None:
    wire = _wire(
        env, ciphertext=b64url_encode(_flip(b64url_decode(str(env.to_dict()["ciphertext"]))))
    )
    received = Envelope.from_dict(wire)

    assert not verify_envelope(received)
    assert "signature is invalid" in _reject(bob, received)


# --- text limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  \n\t ", "empty"),
        ("x" * (MAX_TEXT_CHARS + 1), "at most 4000"),
        ("nul\x00byte", "control"),
        ("escape\x1b[31m", "control"),
        ("lone \ud800 surrogate", "broken"),
    ],
)
def test_bad_text_is_rejected(alice: Identity, bob: Identity, text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        seal(alice, bob.public, text, now=NOW)


def test_text_length_is_counted_after_strip() -> None:
    assert normalize_text("  " + "x" * MAX_TEXT_CHARS + "  ") == "x" * MAX_TEXT_CHARS


def test_longest_widest_message_fits_the_envelope_limit(alice: Identity, bob: Identity) -> None:
    for text in ("\U0001f600" * MAX_TEXT_CHARS, '"\\' * (MAX_TEXT_CHARS // 2)):
        sent = seal(alice, bob.public, text, now=NOW)
        data = sent.to_json_bytes()

        assert len(data) <= MAX_ENVELOPE_BYTES
        assert open_envelope(bob, Envelope.from_json_bytes(data)).text == text


def test_bad_seal_arguments_are_validation_errors(alice: Identity, bob: Identity) -> None:
    with pytest.raises(ValidationError, match="32 lowercase hex"):
        seal(alice, bob.public, "hi", now=NOW, message_id="nope")
    with pytest.raises(ValidationError, match="sending time"):
        seal(alice, bob.public, "hi", now=float("inf"))
