"""The key file: plain and sealed round trips, permissions, and clear errors for bad files."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from focusmate.errors import IdentityError, ValidationError
from focusmate.identity import Identity, b64url_encode
from focusmate.keyfile import (
    PassphraseRequiredError,
    WrongPassphraseError,
    change_passphrase,
    is_sealed,
    load_identity,
    load_or_create,
    save_identity,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def key_path(profile_dir: Path) -> Path:
    return profile_dir / "identity.json"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _same(a: Identity, b: Identity) -> bool:
    return a.private_bytes() == b.private_bytes() and a.public == b.public


def _secret_spellings(identity: Identity) -> list[bytes]:
    spellings = []
    for secret in identity.private_bytes():
        spellings += [
            secret,
            secret.hex().encode(),
            b64url_encode(secret).encode(),
            base64.b64encode(secret).rstrip(b"="),
        ]
    return spellings


def test_plain_round_trip(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity)
    assert not is_sealed(key_path)
    assert _same(load_identity(key_path), identity)
    document = json.loads(key_path.read_text())
    assert document["format"] == "focusmate-identity"
    assert document["version"] == 1
    assert document["user_id"] == identity.user_id
    assert document["sealed"] is False


def test_sealed_round_trip(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity, passphrase="correct horse")
    assert is_sealed(key_path)
    assert _same(load_identity(key_path, passphrase="correct horse"), identity)


def test_sealed_file_contains_no_private_key_bytes(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity, passphrase="correct horse")
    raw = key_path.read_bytes()
    for spelling in _secret_spellings(identity):
        assert spelling not in raw


def test_plain_file_does_contain_the_keys(key_path: Path, identity: Identity) -> None:
    # Guards the test above: the spellings it looks for are the ones a plain file uses.
    save_identity(key_path, identity)
    raw = key_path.read_bytes()
    assert any(spelling in raw for spelling in _secret_spellings(identity))


def test_sealed_without_passphrase_asks_for_one(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity, passphrase="pw")
    with pytest.raises(PassphraseRequiredError) as excinfo:
        load_identity(key_path)
    assert isinstance(excinfo.value, IdentityError)


def test_wrong_passphrase(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity, passphrase="pw")
    with pytest.raises(WrongPassphraseError, match=r"^The passphrase is wrong\.$") as excinfo:
        load_identity(key_path, passphrase="PW")
    assert isinstance(excinfo.value, IdentityError)


def test_passphrase_unicode_normalisation(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity, passphrase="caf\u00e9")  # precomposed é
    assert _same(load_identity(key_path, passphrase="cafe\u0301"), identity)  # e + accent


def test_empty_passphrase_is_rejected(key_path: Path, identity: Identity) -> None:
    with pytest.raises(ValidationError):
        save_identity(key_path, identity, passphrase="")
    assert not key_path.exists()


def test_change_passphrase_seal_reseal_unseal(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity)
    change_passphrase(key_path, old=None, new="first")
    assert is_sealed(key_path)
    change_passphrase(key_path, old="first", new="second")
    with pytest.raises(WrongPassphraseError):
        load_identity(key_path, passphrase="first")
    assert _same(load_identity(key_path, passphrase="second"), identity)
    change_passphrase(key_path, old="second", new=None)
    assert not is_sealed(key_path)
    assert _same(load_identity(key_path), identity)


def test_change_passphrase_with_wrong_old_leaves_file_alone(
    key_path: Path, identity: Identity
) -> None:
    save_identity(key_path, identity, passphrase="first")
    before = key_path.read_bytes()
    with pytest.raises(WrongPassphraseError):
        change_passphrase(key_path, old="nope", new="second")
    with pytest.raises(PassphraseRequiredError):
        change_passphrase(key_path, old=None, new="second")
    assert key_path.read_bytes() == before


@posix_only
def test_file_mode_is_0600_and_new_parent_is_0700(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "new-profile" / "identity.json"
    save_identity(path, identity)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    save_identity(path, identity, passphrase="pw")
    assert _mode(path) == 0o600


@posix_only
def test_existing_parent_mode_is_left_alone(profile_dir: Path, identity: Identity) -> None:
    profile_dir.chmod(0o755)
    save_identity(profile_dir / "identity.json", identity)
    assert _mode(profile_dir) == 0o755


def test_no_temp_files_left_behind(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity)
    save_identity(key_path, identity, passphrase="pw")
    load_or_create(key_path, passphrase="pw")
    assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]


@posix_only
def test_readable_file_is_tightened_with_a_warning(
    key_path: Path, identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    save_identity(key_path, identity)
    key_path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="focusmate.keyfile"):
        assert _same(load_identity(key_path), identity)
    assert _mode(key_path) == 0o600
    assert "0600" in caplog.text


def test_load_or_create_creates_then_loads(key_path: Path) -> None:
    first, created = load_or_create(key_path)
    assert created
    assert key_path.exists()
    second, created_again = load_or_create(key_path)
    assert not created_again
    assert _same(first, second)


def test_load_or_create_sealed(key_path: Path) -> None:
    first, created = load_or_create(key_path, passphrase="pw")
    assert created
    assert is_sealed(key_path)
    with pytest.raises(PassphraseRequiredError):
        load_or_create(key_path)
    second, _ = load_or_create(key_path, passphrase="pw")
    assert _same(first, second)


def test_load_or_create_never_replaces_a_corrupt_file(key_path: Path) -> None:
    key_path.write_text("{ half a file")
    with pytest.raises(IdentityError):
        load_or_create(key_path)
    assert key_path.read_text() == "{ half a file"


def test_missing_file(key_path: Path) -> None:
    with pytest.raises(IdentityError, match="no identity file"):
        load_identity(key_path)
    with pytest.raises(IdentityError, match="no identity file"):
        is_sealed(key_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"\xff\xfe\x00", b"[1, 2]", b'{"hello": "world"}', b"x" * 100_000],
)
def test_foreign_or_garbage_file(key_path: Path, content: bytes) -> None:
    key_path.write_bytes(content)
    with pytest.raises(IdentityError, match="is not a FocusMate identity file"):
        load_identity(key_path)


def test_directory_instead_of_file(key_path: Path) -> None:
    key_path.mkdir()
    with pytest.raises(IdentityError, match="not a FocusMate identity file"):
        load_identity(key_path)


def test_newer_version(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity)
    document = json.loads(key_path.read_text()) | {"version": 2}
    key_path.write_text(json.dumps(document))
    with pytest.raises(IdentityError, match="newer version"):
        load_identity(key_path)


def _edit(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "changes",
    [
        {"sign_private": None},
        {"sign_private": "!!not base64!!"},
        {"box_private": b64url_encode(b"\x01" * 16)},
        {"sealed": "no"},
        {"user_id": None},
    ],
)
def test_corrupt_plain_file(key_path: Path, identity: Identity, changes: dict[str, object]) -> None:
    save_identity(key_path, identity)
    _edit(key_path, **changes)
    with pytest.raises(IdentityError, match="is damaged"):
        load_identity(key_path)


def test_user_id_that_does_not_match_the_keys(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity)
    _edit(key_path, user_id=Identity.generate().user_id)
    with pytest.raises(IdentityError, match="user id does not match its keys"):
        load_identity(key_path)


@pytest.mark.parametrize(
    "changes",
    [
        {"kdf": None},
        {"kdf": {"name": "scrypt", "n": 2**30, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA"}},
        {"kdf": {"name": "argon9", "n": 2**15, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA"}},
        {"cipher": "rot13"},
        {"nonce": "AAAA"},
        {"ciphertext": 17},
    ],
)
def test_corrupt_sealed_file(
    key_path: Path, identity: Identity, changes: dict[str, object]
) -> None:
    save_identity(key_path, identity, passphrase="pw")
    _edit(key_path, **changes)
    with pytest.raises(IdentityError, match="is damaged"):
        load_identity(key_path, passphrase="pw")


def test_sealed_keys_cannot_be_moved_under_another_user_id(
    key_path: Path, identity: Identity
) -> None:
    # The user id is authenticated data: editing it breaks decryption.
    save_identity(key_path, identity, passphrase="pw")
    _edit(key_path, user_id=Identity.generate().user_id)
    with pytest.raises(IdentityError):
        load_identity(key_path, passphrase="pw")


def test_tampered_ciphertext_is_detected(key_path: Path, identity: Identity) -> None:
    save_identity(key_path, identity, passphrase="pw")
    document = json.loads(key_path.read_text())
    ciphertext = document["ciphertext"]
    flipped = ("B" if ciphertext[0] != "B" else "C") + ciphertext[1:]
    _edit(key_path, ciphertext=flipped)
    with pytest.raises(IdentityError):
        load_identity(key_path, passphrase="pw")


def test_load_or_create_loses_a_first_run_race_gracefully(
    key_path: Path, identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process writes its identity while this one is generating: theirs must win.
    real_generate = Identity.generate

    def generate_while_another_process_saves() -> Identity:
        save_identity(key_path, identity)
        return real_generate()

    monkeypatch.setattr(Identity, "generate", generate_while_another_process_saves)
    loaded, created = load_or_create(key_path)
    assert not created
    assert _same(loaded, identity)
    assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]
