"""The doctor's local checks: each problem a user can have is named, with a next step, and the
profile is left exactly as it was found."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from focusmate import keyfile
from focusmate.clock import FakeClock
from focusmate.doctor import check_profile
from focusmate.doctor_report import Check, Status, exit_code, render_text, report_dict
from focusmate.migrations import SCHEMA_VERSION
from focusmate.workspace import DB_NAME, KEY_NAME, Workspace

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def make_profile(path: Path) -> Path:
    with Workspace(path, clock=FakeClock(1_780_000_000.0)) as ws:
        ws.create_room("Deep Work")
    return path


def files(path: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``path``: mode and content hash (what 'unchanged' means here)."""
    return {
        str(p.relative_to(path)): (
            stat.S_IMODE(p.stat().st_mode),
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
        )
        for p in [path, *sorted(path.rglob("*"))]
    }


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_healthy_profile_passes_every_check_and_is_left_untouched(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    before = files(profile)
    report = check_profile(profile)
    checks = by_name(report.checks)
    assert [c.name for c in report.checks] == [
        "profile",
        "identity",
        "database",
        "schema",
        "profile card",
        "settings",
        "disk space",
    ]
    assert all(c.status is Status.OK and not c.next_step for c in report.checks), report.checks
    assert checks["schema"].data["version"] == SCHEMA_VERSION
    assert report.user_id is not None and report.user_id in checks["identity"].detail
    assert report.settings is not None and report.settings.lan_enabled
    assert exit_code(report.checks) == 0
    assert files(profile) == before  # no -wal or -shm either


def test_a_profile_in_use_is_checked_through_its_wal(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    with Workspace(profile, clock=FakeClock(1_780_000_000.0)) as ws:  # as the running app
        ws.create_room("Second")
        assert (profile / (DB_NAME + "-wal")).exists()
        before = sorted(p.name for p in profile.iterdir())
        report = check_profile(profile)
        assert all(c.status is Status.OK for c in report.checks), report.checks
        assert sorted(p.name for p in profile.iterdir()) == before


def test_a_missing_profile_is_reported_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "profile"
    report = check_profile(missing)
    (check,) = report.checks
    assert check.status is Status.FAIL
    assert "run `focusmate` once" in check.next_step.lower()
    assert not missing.exists() and not missing.parent.exists()
    assert exit_code(report.checks) == 1


def test_a_file_where_the_profile_should_be_fails(tmp_path: Path) -> None:
    path = tmp_path / "profile"
    path.write_text("not a folder")
    (check,) = check_profile(path).checks
    assert check.status is Status.FAIL and "file" in check.detail


def test_an_empty_profile_folder_says_focusmate_never_ran_and_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "profile"
    path.mkdir(mode=0o700)
    checks = by_name(check_profile(path).checks)
    assert checks["database"].status is Status.WARN
    assert "run `focusmate` once" in checks["database"].next_step.lower()
    assert list(path.iterdir()) == []


@posix_only
def test_a_folder_others_can_open_is_a_warning_and_keeps_its_mode(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    profile.chmod(0o755)
    check = by_name(check_profile(profile).checks)["profile"]
    assert check.status is Status.WARN and "chmod 700" in check.next_step
    assert stat.S_IMODE(profile.stat().st_mode) == 0o755


@posix_only
def test_a_key_others_can_read_is_still_verified_and_its_mode_is_not_changed(
    tmp_path: Path,
) -> None:
    profile = make_profile(tmp_path / "profile")
    key = profile / KEY_NAME
    key.chmod(0o644)
    check = by_name(check_profile(profile).checks)["identity"]
    assert check.status is Status.WARN
    assert "the key loads" in check.detail and "chmod 600" in check.next_step
    assert stat.S_IMODE(key.stat().st_mode) == 0o644


def test_a_sealed_key_warns_without_a_passphrase_and_is_checked_with_one(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    keyfile.change_passphrase(profile / KEY_NAME, old=None, new="correct horse")
    unchecked = by_name(check_profile(profile).checks)
    assert unchecked["identity"].status is Status.WARN
    assert "FOCUSMATE_PASSPHRASE" in unchecked["identity"].next_step
    assert unchecked["profile card"].status is Status.OK  # the user id is in the file's header
    ok = by_name(check_profile(profile, passphrase="correct horse").checks)["identity"]
    assert ok.status is Status.OK and "passphrase opens it" in ok.detail
    wrong = by_name(check_profile(profile, passphrase="wrong").checks)["identity"]
    assert wrong.status is Status.FAIL and "does not open" in wrong.detail


def test_a_lost_key_fails_and_warns_against_running_focusmate(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    (profile / KEY_NAME).unlink()
    report = check_profile(profile)
    check = by_name(report.checks)["identity"]
    assert check.status is Status.FAIL
    assert "new identity" in check.next_step and "--with-identity" in check.next_step
    assert not (profile / KEY_NAME).exists()


def test_a_damaged_key_fails(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    (profile / KEY_NAME).write_text("{not json")
    check = by_name(check_profile(profile).checks)["identity"]
    assert check.status is Status.FAIL and "not JSON" in check.detail
    assert "backup" in check.next_step


def test_a_lost_database_fails(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    (profile / DB_NAME).unlink()
    check = by_name(check_profile(profile).checks)["database"]
    assert check.status is Status.FAIL and "import" in check.next_step
    assert not (profile / DB_NAME).exists()


def _sql(profile: Path, statement: str) -> None:
    conn = sqlite3.connect(profile / DB_NAME, isolation_level=None)
    try:
        conn.execute(statement)
    finally:
        conn.close()


def test_settings_that_do_not_parse_fail_with_how_to_reset_them(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    bad = json.dumps({"focus_min": 999})
    _sql(profile, f"INSERT OR REPLACE INTO settings(key, value) VALUES ('settings', '{bad}')")
    report = check_profile(profile)
    check = by_name(report.checks)["settings"]
    assert check.status is Status.FAIL and "focus_min" in check.detail
    assert "DELETE FROM settings" in check.next_step
    assert report.settings is None


def test_relays_in_the_settings_are_reported(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    with Workspace(profile, clock=FakeClock(1_780_000_000.0)) as ws:
        ws.save_settings(ws.settings.replace(relay_urls=("ws://relay.test:8765",)))
    report = check_profile(profile)
    assert report.settings is not None
    assert report.settings.relay_urls == ("ws://relay.test:8765",)
    assert "1 relay," in by_name(report.checks)["settings"].detail


def test_a_newer_schema_fails_and_an_older_one_warns(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    _sql(profile, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer = by_name(check_profile(profile).checks)["schema"]
    assert newer.status is Status.FAIL and "Upgrade FocusMate" in newer.next_step
    _sql(profile, f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    older = by_name(check_profile(profile).checks)["schema"]
    assert older.status is Status.WARN


def test_another_applications_database_fails(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    (profile / DB_NAME).unlink()
    _sql(profile, "CREATE TABLE notes(text)")
    check = by_name(check_profile(profile).checks)["database"]
    assert check.status is Status.FAIL and "another application" in check.detail


def test_a_file_that_is_not_sqlite_fails_with_how_to_recover(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    (profile / DB_NAME).write_bytes(b"garbage" * 1000)
    check = by_name(check_profile(profile).checks)["database"]
    assert check.status is Status.FAIL
    assert "restore" in check.next_step and "focusmate export" in check.next_step


def test_the_text_report_has_one_line_per_check_and_the_next_steps() -> None:
    checks = [
        Check("profile", Status.OK, "fine"),
        Check("identity", Status.WARN, "sealed", "set the passphrase"),
        Check("relay ws://x", Status.FAIL, "down", "start it"),
    ]
    text = render_text(Path("/p"), checks)
    assert "OK    profile: fine" in text
    assert "WARN  identity: sealed\n      next: set the passphrase" in text
    assert "FAIL  relay ws://x: down\n      next: start it" in text
    assert text.endswith("1 failed, 1 warning(s), 1 OK.")
    report = report_dict(Path("/p"), checks)
    assert report["ok"] is False and report["summary"] == {"ok": 1, "warn": 1, "fail": 1}
    assert exit_code(checks[:2]) == 0 and exit_code(checks) == 1
