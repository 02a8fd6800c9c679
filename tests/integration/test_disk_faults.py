"""A full or read-only data directory, for real: a tiny tmpfs in a private mount namespace.

The relay's and the app's SQLite files live on a tmpfs of a few hundred KiB (tests/integration/
fsfaults.py). The disk fills up mid-stream or the filesystem is read-only from the start; what a
user sees must be one clear line, and nothing that was acknowledged, forwarded or committed may
be lost or damaged.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from focusmate.invite import new_room_secret
from tests.integration.fsfaults import RelayInFs, TinyFs, relay_argv, tiny_fs
from tests.integration.relaykit import DEADLINE, DocClient, relay_env, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]
FS_KIB = 4096
VALUE = "x" * 200  # each update ~230 bytes: the tmpfs fills within a few thousand
FILL_AFTER = 100  # keys the reader has seen before the disk fills


async def write_until_closed(client: DocClient, prefix: str, count: int) -> None:
    for i in range(count):
        try:
            await client.set(f"{prefix}{i}", VALUE)
        except Exception:  # the relay closed the connection
            return
        if i % 20 == 0:
            await asyncio.sleep(0)  # let the reader and the relay's replies in


async def fill_mid_stream(
    fs: TinyFs, relay: RelayInFs, secret: bytes
) -> tuple[DocClient, set[str]]:
    """A writer streams updates to a reader through the relay; the disk fills mid-stream.
    Returns the writer (closed by the relay) and what the reader had received by then."""
    writer = await DocClient.open(relay.doc_url(secret))
    reader = await DocClient.open(relay.doc_url(secret))
    for client in (writer, reader):
        await asyncio.wait_for(client.synced.wait(), DEADLINE)
    task = asyncio.create_task(write_until_closed(writer, "k", 20_000))
    await wait_until(lambda: len(reader.map()) >= FILL_AFTER, reader.changed, "the first keys")
    # (The WAL grows ~5 KB per update until the next checkpoint: the tmpfs leaves it room, so
    # it is the filler, not the WAL, that fills the disk and is freed later.)
    assert fs.fill() > FS_KIB * 1024 // 2, "the disk was full before the filler"
    code, reason = await writer.wait_closed()
    await task
    assert (code, reason) == (1011, "the relay could not store an update")
    received = set(reader.map().keys())
    assert FILL_AFTER <= len(received) < 20_000, "the disk should fill mid-stream"
    failures = [e for e in relay.events() if e["event"] == "relay.commit_failed"]
    assert failures
    assert failures[0]["error"] == "database or disk is full"
    await reader.close()
    return writer, received


async def resend(relay: RelayInFs, secret: bytes, writer: DocClient) -> set[str]:
    """What the writer's app does on reconnecting: sync its whole state again. Returns the keys
    the relay holds afterwards, read by a fresh client."""
    again = await DocClient.open(relay.doc_url(secret))
    await asyncio.wait_for(again.synced.wait(), DEADLINE)
    await again.push(writer.doc.get_update())
    written = set(writer.map().keys())
    check = await DocClient.open(relay.doc_url(secret))
    await asyncio.wait_for(check.synced.wait(), DEADLINE)
    await wait_until(lambda: written <= set(check.map().keys()), check.changed, "the resend")
    keys = set(check.map().keys())
    await again.close()
    await check.close()
    return keys


async def fresh_keys(relay: RelayInFs, secret: bytes) -> set[str]:
    fresh = await DocClient.open(relay.doc_url(secret))
    await asyncio.wait_for(fresh.synced.wait(), DEADLINE)
    keys = set(fresh.map().keys())
    await fresh.close()
    return keys


def assert_clean_log(relay: RelayInFs) -> None:
    """Every line the relay wrote is a JSON log line, and none carries a traceback."""
    for event in relay.events():  # (a line that is not JSON fails here)
        assert "Traceback" not in json.dumps(event), event


async def test_a_full_disk_closes_writers_loses_nothing_and_the_relay_carries_on(
    tmp_path: Path,
) -> None:
    data, secret = tmp_path / "relay", new_room_secret()
    with tiny_fs(data, size_kib=FS_KIB) as fs:
        async with RelayInFs(fs, data) as relay:
            writer, received = await fill_mid_stream(fs, relay, secret)
            # Full: the relay still serves what it stored, including everything it forwarded.
            assert received <= await fresh_keys(relay, secret)
            fs.free()
            keys = await resend(relay, secret, writer)
            assert set(writer.map().keys()) <= keys
            assert await relay.terminate() == 0
            assert_clean_log(relay)
        assert fs.integrity(data / "relay.db") == "ok"
        async with RelayInFs(fs, data) as restarted:
            assert keys <= await fresh_keys(restarted, secret)


async def test_a_relay_stopped_and_restarted_while_the_disk_is_full_loses_nothing(
    tmp_path: Path,
) -> None:
    data, secret = tmp_path / "relay", new_room_secret()
    with tiny_fs(data, size_kib=FS_KIB) as fs:
        async with RelayInFs(fs, data) as relay:
            writer, received = await fill_mid_stream(fs, relay, secret)
            # SIGTERM on a full disk: its final checkpoint cannot be written, yet it stops
            # cleanly (the commits are in the WAL).
            assert await relay.terminate() == 0
            assert_clean_log(relay)
        assert fs.integrity(data / "relay.db") == "ok"
        async with RelayInFs(fs, data) as still_full:  # it starts and serves what it holds
            assert received <= await fresh_keys(still_full, secret)
            fs.free()
            assert set(writer.map().keys()) <= await resend(still_full, secret, writer)
            assert await still_full.terminate() == 0
        assert fs.integrity(data / "relay.db") == "ok"


@pytest.mark.parametrize("existing", [False, True], ids=["empty", "with-database"])
async def test_a_relay_on_a_read_only_directory_exits_with_one_clear_line(
    tmp_path: Path, existing: bool
) -> None:
    data = tmp_path / "relay"
    with tiny_fs(data, size_kib=FS_KIB) as fs:
        if existing:
            async with RelayInFs(fs, data) as relay:
                assert await relay.terminate() == 0
        fs.read_only()
        run = subprocess.run(
            fs.argv(relay_argv(data)),
            capture_output=True,
            text=True,
            env=relay_env(),
            timeout=DEADLINE,
            check=False,
        )
    assert run.returncode == 1
    (line,) = run.stderr.splitlines()
    event = json.loads(line)
    assert event["event"] == "relay.failed"
    assert event["error"] == (
        f"cannot use the data directory {data}: Read-only file system; the relay needs to write "
        "there"
    )


def test_mount_namespace_helper_really_isolates(tmp_path: Path) -> None:
    """The tmpfs is seen only inside the namespace (else the other tests prove nothing)."""
    data = tmp_path / "d"
    with tiny_fs(data, size_kib=64) as fs:
        fs.run(["sh", "-c", f"echo inside > {data}/marker"])
        assert not (data / "marker").exists()
        assert fs.fill() > 0
        assert fs.free_bytes() == 0
        fs.free()
        assert fs.free_bytes() > 0
        probe = fs.run([sys.executable, "-c", "print('ok')"])
        assert probe.stdout.strip() == "ok"


# -- the app's profile ----------------------------------------------------------------------------

POSTER = r"""
import json, os, sys
from pathlib import Path
from focusmate.clock import SystemClock
from focusmate.errors import FocusMateError
from focusmate.workspace import Workspace

profile, fill_at, count, then = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ws = Workspace(profile, clock=SystemClock())
board = ws.board(ws.find_room("Desk"))
for i in range(count):
    if i == fill_at:  # another program takes the rest of the disk
        with open(profile / ".filler", "wb") as filler:
            try:
                while True:
                    filler.write(bytes(65536))
                    filler.flush()
            except OSError:
                pass
    body = f"post {i} " + "y" * 300
    try:
        board.post(body, now=ws.now())
    except FocusMateError as err:
        print(json.dumps({"failed": body, "error": str(err)}), flush=True)
        break
    print(json.dumps({"committed": body}), flush=True)
if then == "kill":
    os.kill(os.getpid(), 9)
"""


def focusmate(fs: TinyFs, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``focusmate`` command line on ``profile``, inside the namespace."""
    return fs.run(
        [sys.executable, "-m", "focusmate", "--profile", str(profile), *args], check=False
    )


def board_bodies(fs: TinyFs, profile: Path) -> list[str]:
    run = focusmate(fs, profile, "board", "Desk", "--json", "--limit", "100000")
    assert run.returncode == 0, run.stderr
    return [post["body"] for post in json.loads(run.stdout)]


def one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit code 1 and said why in one line, with no traceback."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    (line,) = run.stderr.splitlines()
    return line


def profile_with_room(fs: TinyFs, profile: Path) -> None:
    run = focusmate(fs, profile, "room", "create", "Desk")
    assert run.returncode == 0, run.stderr


def test_a_full_disk_while_posting_loses_no_committed_post(tmp_path: Path) -> None:
    """Posts go in until the disk fills; the one that fails says so, and every one before it is
    there afterwards (the writer is killed after the failure, too), and posting works again once
    space is back."""
    profile = tmp_path / "profile"
    with tiny_fs(profile, size_kib=FS_KIB) as fs:
        profile_with_room(fs, profile)
        run = fs.python(POSTER, str(profile), "30", "20000", "kill", check=False)
        assert run.returncode == -9
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        committed = [line["committed"] for line in lines if "committed" in line]
        (failure,) = [line for line in lines if "failed" in line]
        db = profile / "focusmate.db"
        assert failure["error"] == (
            f"Cannot use the profile database {db}: the disk is full; free some space and try "
            "again."
        )
        assert len(committed) == 30
        assert one_error_line(focusmate(fs, profile, "post", "Desk", "while full")) == (
            f"focusmate: {failure['error']}"
        )
        assert sorted(board_bodies(fs, profile)) == sorted(committed)  # reads work while full
        fs.free()
        assert fs.integrity(db) == "ok"
        run = focusmate(fs, profile, "post", "Desk", "space is back")
        assert run.returncode == 0, run.stderr
        assert sorted(board_bodies(fs, profile)) == sorted([*committed, "space is back"])


def test_a_profile_on_a_read_only_filesystem_reads_and_refuses_edits(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    with tiny_fs(profile, size_kib=FS_KIB) as fs:
        profile_with_room(fs, profile)
        assert focusmate(fs, profile, "post", "Desk", "before").returncode == 0
        fs.read_only()
        assert board_bodies(fs, profile) == ["before"]
        for command in (("stats",), ()):  # (both wrote before: focus records, a new document)
            run = focusmate(fs, profile, *command)
            assert run.returncode == 0, (command, run.stderr)
        assert one_error_line(focusmate(fs, profile, "post", "Desk", "after")) == (
            f"focusmate: Cannot use the profile database {profile / 'focusmate.db'}: the profile "
            "is on a read-only filesystem; nothing was changed."
        )
        fs.read_write()
        assert fs.integrity(profile / "focusmate.db") == "ok"


def test_edits_left_in_the_journal_are_read_on_a_read_only_filesystem(tmp_path: Path) -> None:
    """A writer killed before its edits reached the database file leaves them in the WAL; on a
    read-only filesystem they are still shown. Without the WAL's index (``-shm``) they cannot
    be read, and the profile is refused with what to do, rather than shown without them."""
    profile = tmp_path / "profile"
    with tiny_fs(profile, size_kib=FS_KIB) as fs:
        profile_with_room(fs, profile)
        run = fs.python(POSTER, str(profile), "-1", "10", "kill", check=False)
        assert run.returncode == -9
        committed = [json.loads(line)["committed"] for line in run.stdout.splitlines()]
        assert len(committed) == 10
        assert fs.run(["test", "-s", str(profile / "focusmate.db-wal")]).returncode == 0
        fs.read_only()
        assert sorted(board_bodies(fs, profile)) == sorted(committed)
        fs.read_write()
        fs.run(["rm", str(profile / "focusmate.db-shm")])
        fs.read_only()
        line = one_error_line(focusmate(fs, profile, "board", "Desk"))
        assert "read-only filesystem" in line
        assert "focusmate.db-wal holds edits not yet in the database file" in line
        fs.read_write()
        assert sorted(board_bodies(fs, profile)) == sorted(committed)
        assert fs.integrity(profile / "focusmate.db") == "ok"


@pytest.mark.parametrize("where", [".", "new"])
def test_a_new_profile_on_a_read_only_filesystem_is_refused_in_one_line(
    tmp_path: Path, where: str
) -> None:
    mount = tmp_path / "ro"
    profile = mount / where
    with tiny_fs(mount, size_kib=64) as fs:
        fs.read_only()
        line = one_error_line(focusmate(fs, profile, "id"))
    assert line in (
        f"focusmate: Cannot create the profile database {profile / 'focusmate.db'}: the "
        "filesystem is read-only.",
        f"focusmate: Cannot use {profile}: Read-only file system.",
    )
