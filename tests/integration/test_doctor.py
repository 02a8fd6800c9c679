"""``focusmate doctor`` end to end: real profiles on disk, a real relay on port 0, real output.

The LAN check sends multicast, so here it always runs with ``--no-lan``; tests/lan covers it in
network namespaces.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from focusmate import cli, keyfile
from focusmate.clock import FakeClock, SystemClock
from focusmate.workspace import DB_NAME, KEY_NAME, Workspace
from sync.doctor import DoctorExtension
from sync.engine_lock import EngineLock
from tests.integration.relaykit import REPO, base_url, running_relay
from tests.integration.synckit import SkewedClock, free_port


def doctor(profile: Path, *args: str) -> tuple[int, str]:
    """``focusmate --profile PROFILE doctor ARGS``, in-process: exit code and stdout."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["--profile", str(profile), "doctor", *args],
        stdout=out,
        stderr=err,
        extensions=[DoctorExtension()],
    )
    assert err.getvalue() == ""
    return code, out.getvalue()


def doctor_json(profile: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out = doctor(profile, "--json", *args)
    return code, json.loads(out)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report["checks"]}


def fingerprint(path: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``path`` with its mode and content hash: 'untouched' means equal."""
    return {
        str(p.relative_to(path)): (
            p.stat().st_mode,
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
        )
        for p in [path, *sorted(path.rglob("*"))]
    }


@pytest.fixture(autouse=True)
def no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOCUSMATE_PASSPHRASE", raising=False)


def make_profile(path: Path, *, relays: tuple[str, ...] = ()) -> Path:
    with Workspace(path, clock=SystemClock()) as ws:
        room, _ = ws.create_room("Deep Work")
        board = ws.board(room)
        for i in range(60):  # enough pages that "the middle of the file" is data
            board.post(f"post {i}: " + "words " * 40, now=ws.now())
        ws.save_settings(ws.settings.replace(relay_urls=relays))
    return path


async def test_a_healthy_profile_with_a_real_relay_passes_everything(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        url = base_url(relay)
        profile = make_profile(tmp_path / "profile", relays=(url,))
        before = fingerprint(profile)
        code, report = await asyncio.to_thread(doctor_json, profile, "--no-lan")
        text_code, text = await asyncio.to_thread(doctor, profile, "--no-lan")
    assert code == 0 and text_code == 0
    assert report["ok"] is True and report["summary"]["fail"] == report["summary"]["warn"] == 0
    found = checks(report)
    for name in ("profile", "identity", "database", "schema", "profile card", "settings"):
        assert found[name]["status"] == "OK", found[name]
    relay_check = found[f"relay {url}"]
    assert relay_check["status"] == "OK"
    assert relay_check["data"]["version"] and abs(relay_check["data"]["clock_offset_s"]) < 1
    assert not any(name.startswith("lan") for name in found)
    assert f"OK    relay {url}: healthy" in text
    assert text.rstrip().endswith("checks passed.")
    assert fingerprint(profile) == before


async def test_a_relay_with_a_skewed_clock_is_a_warning_about_this_machines_clock(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay", clock=SkewedClock(300.0)) as relay:
        profile = make_profile(tmp_path / "profile")
        code, report = await asyncio.to_thread(
            doctor_json, profile, "--no-lan", "--relay", base_url(relay)
        )
    assert code == 0
    check = checks(report)[f"relay {base_url(relay)}"]
    assert check["status"] == "WARN" and "+300" in check["detail"]
    assert "automatic date and time" in check["next_step"]


async def test_a_relay_that_knows_itself_by_another_address_fails_the_handshake(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay", public_urls=("wss://relay.example.org",)) as relay:
        profile = make_profile(tmp_path / "profile")
        code, report = await asyncio.to_thread(
            doctor_json, profile, "--no-lan", "--relay", base_url(relay)
        )
    assert code == 1
    check = checks(report)[f"relay {base_url(relay)}"]
    assert check["status"] == "FAIL" and "handshake" in check["detail"]
    assert "--public-url" in check["next_step"]


def test_an_unreachable_relay_fails_with_a_next_step(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    code, report = doctor_json(profile, "--no-lan", "--relay", url, "--timeout", "2")
    assert code == 1
    check = checks(report)[f"relay {url}"]
    assert check["status"] == "FAIL"
    assert "nothing accepts connections" in check["detail"] and "refused" in check["detail"]
    assert "ask whoever runs the relay" in check["next_step"]
    assert checks(report)["database"]["status"] == "OK"  # the rest is still checked


def test_a_corrupted_database_fails_integrity_and_says_restore_or_export(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    db = profile / DB_NAME
    page = 4096
    pages = db.stat().st_size // page
    assert pages >= 20, pages
    garbage = random.Random(7).randbytes(page * 4)
    with db.open("r+b") as file:  # four pages in the middle, as a failing disk would
        file.seek(page * (pages // 2))
        file.write(garbage)
    before = fingerprint(profile)
    code, report = doctor_json(profile, "--no-lan")
    assert code == 1
    check = checks(report)["database"]
    assert check["status"] == "FAIL"
    assert "integrity" in check["detail"] or "cannot be read" in check["detail"]
    assert "restore" in check["next_step"] and "focusmate export" in check["next_step"]
    _, text = doctor(profile, "--no-lan")
    assert "FAIL  database:" in text and "next: Close FocusMate" in text
    assert fingerprint(profile) == before


def test_a_missing_profile_is_reported_by_the_command_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FOCUSMATE_PASSPHRASE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ui.launcher", "--profile", str(missing), "doctor", "--no-lan"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"FAIL  profile: there is no profile at {missing}" in proc.stdout
    assert "Run `focusmate` once to create it" in proc.stdout
    assert not missing.exists()


def test_a_sealed_key_without_a_passphrase_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = make_profile(tmp_path / "profile")
    keyfile.change_passphrase(profile / KEY_NAME, old=None, new="tomato")
    code, report = doctor_json(profile, "--no-lan")
    assert code == 0  # a warning only
    check = checks(report)["identity"]
    assert check["status"] == "WARN" and "sealed" in check["detail"]
    assert "FOCUSMATE_PASSPHRASE" in check["next_step"]
    monkeypatch.setenv("FOCUSMATE_PASSPHRASE", "tomato")
    _, report = doctor_json(profile, "--no-lan")
    assert checks(report)["identity"]["status"] == "OK"


def test_the_doctor_reports_a_running_engine(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    lock = EngineLock(profile)
    lock.acquire()
    try:
        _, report = doctor_json(profile, "--no-lan")
    finally:
        lock.release()
    running = checks(report)["running"]
    assert running["status"] == "OK" and running["data"] == {"running": True, "pid": os.getpid()}
    _, report = doctor_json(profile, "--no-lan")
    assert checks(report)["running"]["data"]["running"] is False


def test_a_profile_focusmate_cannot_open_is_still_examined(tmp_path: Path) -> None:
    """Opening a profile from a newer FocusMate fails; the doctor does not open it."""
    profile = make_profile(tmp_path / "profile")
    with Workspace(profile, clock=FakeClock(0.0)) as ws:
        ws.store.query("PRAGMA user_version = 99")
    code, report = doctor_json(profile, "--no-lan")
    assert code == 1
    assert checks(report)["schema"]["status"] == "FAIL"


def test_with_no_relay_and_lan_off_the_doctor_warns_that_nothing_syncs(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "profile")
    with Workspace(profile, clock=SystemClock()) as ws:
        ws.save_settings(ws.settings.replace(lan_enabled=False))
    code, report = doctor_json(profile)  # no --no-lan: the setting alone keeps it off the LAN
    assert code == 0
    found = checks(report)
    assert found["relays"]["status"] == "WARN" and "sync with no one" in found["relays"]["detail"]
    assert "relay_urls" in found["relays"]["next_step"]
    assert found["lan"]["status"] == "OK" and "off in your settings" in found["lan"]["detail"]
    assert "lan advert" not in found
