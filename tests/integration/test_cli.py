"""The command line end to end: real profiles on disk, an injected clock, real output."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from focusmate.cli import main
from focusmate.clock import FakeClock
from focusmate.workspace import DB_NAME, Workspace


class Cli:
    """Runs ``focusmate --profile DIR ...`` in-process with a fake clock."""

    def __init__(self, profile: Path, clock: FakeClock) -> None:
        self.profile = profile
        self.clock = clock

    def run(self, *argv: str, ok: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--profile", str(self.profile), *argv], clock=self.clock, stdout=out, stderr=err
        )
        if ok:
            assert code == 0, f"focusmate {' '.join(argv)} failed: {err.getvalue()}"
        return code, out.getvalue(), err.getvalue()

    def json(self, *argv: str) -> Any:
        return json.loads(self.run(*argv, "--json")[1])

    def fails(self, *argv: str) -> str:
        code, _, err = self.run(*argv, ok=False)
        assert code == 1, f"expected a clean failure, got exit code {code}: {err}"
        assert err.startswith("focusmate: ") and "Traceback" not in err
        return err


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_780_000_000.0)  # a Thursday in 2026, 20:26 UTC


@pytest.fixture
def alice(tmp_path: Path, clock: FakeClock) -> Cli:
    return Cli(tmp_path / "alice", clock)


@pytest.fixture
def bob(tmp_path: Path, clock: FakeClock) -> Cli:
    return Cli(tmp_path / "bob", clock)


def sync_room(src: Cli, dst: Cli, room_id: str, clock: FakeClock) -> None:
    """Carry a room document from one profile to another, as a sync link would."""
    with Workspace(src.profile, clock=clock) as a, Workspace(dst.profile, clock=clock) as b:
        update = a.document(room_id, kind="room").encode_update()
        b.document(room_id, kind="room").apply_remote(update, origin="test", now=clock.now())


def test_room_timer_board_stats_and_export_with_the_cli_alone(
    alice: Cli, clock: FakeClock, tmp_path: Path
) -> None:
    room = alice.json("room", "create", "Deep Work", "--focus", "25", "--short", "5")
    room_id = room["room_id"]
    assert room["name"] == "Deep Work"
    assert room["invite_code"] and room["invite_link"].startswith("focusmate://join/")
    assert room["timer"]["status"] == "idle"

    started = alice.json("timer", "start", "Deep Work", "--task", "quarterly report")
    assert started["status"] == "running" and started["remaining_s"] == 25 * 60

    clock.advance(10 * 60)
    status = alice.json("timer", "status", "deep")  # a name prefix is enough
    assert status["phase"] == "focus" and status["remaining_s"] == 15 * 60

    clock.advance(16 * 60)  # the focus phase ended a minute ago: now in the short break
    status = alice.json("timer", "status", room_id[:6])
    assert status["phase"] == "short_break" and status["remaining_s"] == 4 * 60

    post_id = alice.json("post", "Deep Work", "Starting the report")["post_id"]
    alice.run("comment", "Deep Work", post_id[:6], "good luck")
    alice.run("like", "Deep Work", post_id)
    board = alice.json("board", "Deep Work")
    assert [p["body"] for p in board] == ["Starting the report"]
    assert board[0]["verified"] and board[0]["likes"] == 1
    assert [c["body"] for c in board[0]["comments"]] == ["good luck"]
    _, text, _ = alice.run("board", "Deep Work")
    assert "Starting the report" in text and "good luck" in text

    stats = alice.json("stats", "--tz", "UTC")
    assert stats["today"]["sessions"] == 1
    assert stats["today"]["focus_s"] == 25 * 60
    assert stats["streak"] == {"current": 1, "best": 1}
    unlocked = {a["id"] for a in stats["achievements"] if a["unlocked_at"]}
    assert "first-session" in unlocked

    export = tmp_path / "export.json"
    sessions_csv = tmp_path / "sessions.csv"
    alice.run("export", str(export), "--stats-csv", str(sessions_csv))
    data = json.loads(export.read_text())
    assert [r["name"] for r in data["rooms"]] == ["Deep Work"]
    assert "identity" not in data  # the private key leaves only when asked
    rows = list(csv.DictReader(sessions_csv.open(newline="")))
    assert len(rows) == 1 and rows[0]["task"] == "quarterly report"
    assert rows[0]["completed"] == "true"


def test_a_session_is_recorded_once_however_often_it_is_looked_at(
    alice: Cli, clock: FakeClock
) -> None:
    alice.run("room", "create", "Solo")
    alice.run("timer", "start", "Solo")
    clock.advance(25 * 60 + 1)
    for _ in range(3):
        alice.run("timer", "status", "Solo")
        alice.run("stats")
    assert alice.json("stats")["all_time"]["sessions"] == 1


def test_reset_during_focus_records_an_interrupted_session(alice: Cli, clock: FakeClock) -> None:
    alice.run("room", "create", "Solo")
    alice.run("timer", "start", "Solo")
    clock.advance(10 * 60)
    alice.run("timer", "reset", "Solo")
    totals = alice.json("stats")["all_time"]
    assert totals == {"focus_s": 600.0, "sessions": 0, "interrupted": 1}


def test_pause_and_resume_keep_the_remaining_time(alice: Cli, clock: FakeClock) -> None:
    alice.run("room", "create", "Solo", "--focus", "20")
    alice.run("timer", "start", "Solo")
    clock.advance(5 * 60)
    assert alice.json("timer", "pause", "Solo")["remaining_s"] == 15 * 60
    clock.advance(60 * 60)  # paused: time does not run
    assert alice.json("timer", "resume", "Solo")["remaining_s"] == 15 * 60


def test_a_teammate_joins_by_code_and_sees_the_same_timer_and_board(
    alice: Cli, bob: Cli, clock: FakeClock
) -> None:
    room = alice.json("room", "create", "Team Sprint")
    alice.run("timer", "start", "Team Sprint")
    alice.run("post", "Team Sprint", "hello team")

    joined = bob.json("room", "join", room["invite_code"].lower())  # typed in lower case
    assert joined["room_id"] == room["room_id"] and joined["synced"] is False
    # Until the room arrives there is no timer to run and no board to post on.
    assert "not arrived yet" in bob.fails("timer", "start", room["room_id"])
    assert "not arrived yet" in bob.fails("post", room["room_id"], "too early")

    sync_room(alice, bob, room["room_id"], clock)
    sync_room(bob, alice, room["room_id"], clock)
    clock.advance(90)
    a = alice.json("timer", "status", "Team Sprint")
    b = bob.json("timer", "status", "Team Sprint")
    assert a == b and a["remaining_s"] == 25 * 60 - 90
    assert [p["body"] for p in bob.json("board", "Team Sprint")] == ["hello team"]
    members = {m["role"] for m in alice.json("room", "show", "Team Sprint")["members"]}
    assert members == {"owner", "member"}

    # Only the owner may change settings or delete the room.
    assert "owner" in bob.fails("room", "settings", "Team Sprint", "--focus", "50")
    assert "owner" in bob.fails("room", "delete", "Team Sprint", "--yes")
    bob.run("room", "leave", "Team Sprint")
    assert bob.json("room", "list") == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("room", "create", "ab"), "3–50 characters"),
        (("room", "create", "Valid name", "--focus", "61"), "focus_min"),
        (("room", "create", "Valid name", "--short", "0"), "short_break_min"),
        (("room", "join", "NOT-A-CODE"), "invite code"),
        (("timer", "status", "nowhere"), "no room called"),
        (("settings", "set", "volume", "5"), "sound_volume"),
        (("settings", "set", "focus_min", "0"), "focus_min"),
        (("profile", "set", "--color", "red"), "#RRGGBB"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    alice: Cli, argv: tuple[str, ...], message: str
) -> None:
    alice.run("room", "create", "Existing room")
    before = alice.json("room", "list")
    settings = alice.json("settings", "show")
    assert message in alice.fails(*argv)
    assert alice.json("room", "list") == before
    assert alice.json("settings", "show") == settings


def test_illegal_timer_commands_explain_themselves(alice: Cli) -> None:
    alice.run("room", "create", "Solo")
    assert "not running" in alice.fails("timer", "pause", "Solo")
    alice.run("timer", "start", "Solo")
    assert "already running" in alice.fails("timer", "start", "Solo")


def test_only_own_posts_can_be_edited(alice: Cli, bob: Cli, clock: FakeClock) -> None:
    room = alice.json("room", "create", "Team Sprint")
    bob.run("room", "join", room["invite_link"])
    sync_room(alice, bob, room["room_id"], clock)
    post_id = alice.json("post", "Team Sprint", "mine")["post_id"]
    sync_room(alice, bob, room["room_id"], clock)
    assert "own" in bob.fails("post", "Team Sprint", "--edit", post_id, "hijacked")
    alice.run("post", "Team Sprint", "--edit", post_id, "still mine")
    alice.run("post", "Team Sprint", "--delete", post_id)
    assert alice.json("board", "Team Sprint") == []


def test_a_malformed_command_line_exits_2(alice: Cli) -> None:
    code, _, _ = alice.run("timer", "fly", ok=False)
    assert code == 2


def test_export_and_import_move_a_profile(alice: Cli, clock: FakeClock, tmp_path: Path) -> None:
    alice.run("room", "create", "Deep Work")
    alice.run("timer", "start", "Deep Work")
    clock.advance(26 * 60)
    alice.run("stats")
    export = tmp_path / "full.json"
    alice.run("export", str(export), "--with-identity")
    assert export.stat().st_mode & 0o777 == 0o600

    laptop = Cli(tmp_path / "laptop", clock)
    result = laptop.json("import", str(export))
    assert result["rooms"] == 1 and result["sessions"] == 1 and result["same_user"] == 1
    assert laptop.json("id")["user_id"] == alice.json("id")["user_id"]
    assert laptop.json("stats")["all_time"]["sessions"] == 1
    assert [r["name"] for r in laptop.json("room", "list")] == ["Deep Work"]
    # Importing again merges: nothing doubles.
    assert laptop.json("import", str(export))["sessions"] == 0
    assert laptop.json("stats")["all_time"]["sessions"] == 1


def test_import_rejects_a_file_that_is_not_an_export(alice: Cli, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": "world"}')
    assert "not a FocusMate export" in alice.fails("import", str(bogus))


def test_a_sealed_key_needs_its_passphrase(alice: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    user_id = alice.json("id")["user_id"]
    monkeypatch.setenv("FOCUSMATE_NEW_PASSPHRASE", "correct horse battery")
    alice.run("id", "--set-passphrase")
    monkeypatch.delenv("FOCUSMATE_NEW_PASSPHRASE")
    monkeypatch.delenv("FOCUSMATE_PASSPHRASE", raising=False)
    assert "passphrase" in alice.fails("id").lower()
    monkeypatch.setenv("FOCUSMATE_PASSPHRASE", "wrong passphrase")
    assert "wrong" in alice.fails("id")
    monkeypatch.setenv("FOCUSMATE_PASSPHRASE", "correct horse battery")
    info = alice.json("id")
    assert info["user_id"] == user_id and info["sealed"] is True


def test_a_corrupt_database_is_reported_and_left_untouched(alice: Cli) -> None:
    alice.run("id")
    db = alice.profile / DB_NAME
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    assert "corrupt" in alice.fails("room", "list")
    assert db.read_bytes() == before


def test_a_foreign_sqlite_file_is_refused(alice: Cli) -> None:
    alice.profile.mkdir()
    with sqlite3.connect(alice.profile / DB_NAME) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    assert "another application" in alice.fails("room", "list")


def test_the_installed_command_and_a_workspace_share_one_profile(tmp_path: Path) -> None:
    """A CLI process and an open workspace (like the app) see each other's changes."""
    profile = tmp_path / "shared"
    env = {**os.environ, "FOCUSMATE_PROFILE": str(profile)}

    def focusmate(*argv: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "focusmate", *argv, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout)

    room = focusmate("room", "create", "Shared")
    with Workspace(profile, clock=FakeClock()) as app:
        assert [r.name for r in app.rooms()] == ["Shared"]
        app_room = app.find_room("Shared")
        app.board(app_room).post("from the app", now=app.now())
        focusmate("post", "Shared", "from the cli")
        app.refresh()
        bodies = {p.body for p in app.board(app_room).posts()}
        assert bodies == {"from the app", "from the cli"}
    assert {p["body"] for p in focusmate("board", room["room_id"])} == bodies


def test_a_room_is_offered_on_the_lan_only_when_asked(alice: Cli) -> None:
    from focusmate.workspace import Workspace

    alice.run("room", "create", "Open table")
    alice.run("room", "create", "Closed door")
    with Workspace(alice.profile, clock=alice.clock) as ws:
        assert ws.lan_offers() == []
    _, out, _ = alice.run("room", "offer", "Open table")
    assert "anyone on the LAN can join" in out
    with Workspace(alice.profile, clock=alice.clock) as ws:
        assert [i.name_hint for i in ws.lan_offers()] == ["Open table"]
    alice.run("room", "offer", "Open table", "--stop")
    with Workspace(alice.profile, clock=alice.clock) as ws:
        assert ws.lan_offers() == []
