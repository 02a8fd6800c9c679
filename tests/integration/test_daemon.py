"""``focusmate daemon``: a headless peer in its own process, reporting JSON lines."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest

from focusmate.clock import SystemClock
from focusmate.timebase import read_offset
from focusmate.timer import Command
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from tests.integration.relaykit import DEADLINE, REPO, poll, running_relay
from tests.integration.synckit import DaemonProcess


async def test_the_daemon_syncs_a_room_and_reports_posts_and_timer_phases(tmp_path: Path) -> None:
    alice = Workspace(tmp_path / "alice", clock=SystemClock())
    room, invite = alice.create_room("Night shift")
    bob = Workspace(tmp_path / "bob", clock=SystemClock())
    bob.join_room(invite.code)
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        engine = SyncEngine(alice, relays=[url], events=lambda e: None, poll_seconds=0.05)
        await engine.start()
        daemon = await DaemonProcess.launch(tmp_path / "bob", relays=[url])
        try:
            await daemon.expect("daemon_started")
            await daemon.expect("link_up", link=url)
            await daemon.expect("doc_synced", doc_id=room.room_id)
            alice.board(room).post("anyone for a pomodoro?", now=alice.now())
            post = await daemon.expect("post_received", room_id=room.room_id)
            assert post["body"] == "anyone for a pomodoro?"
            room.timer_command(Command.START, now=alice.now())
            phase = await daemon.expect("timer_phase", room_id=room.room_id, status="running")
            assert phase["phase"] == "focus"
            assert abs(phase["at"] - alice.now()) < 5
        finally:
            code = await daemon.stop()
            await engine.stop()
        assert code == 0
        assert daemon.events()[-1]["event"] == "daemon_stopped"


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime (Debian) is not installed")
async def test_daemons_with_skewed_clocks_count_down_on_the_relays_clock(tmp_path: Path) -> None:
    alice = Workspace(tmp_path / "alice", clock=SystemClock())
    room, invite = alice.create_room("Skew")
    skews = {"bob": 0.0, "carol": 8.0}  # carol's whole process runs 8 s ahead (faketime)
    for name in skews:
        Workspace(tmp_path / name, clock=SystemClock()).join_room(invite.code)
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        engine = SyncEngine(alice, relays=[url], events=lambda e: None, poll_seconds=0.05)
        await engine.start()
        daemons = {
            name: await DaemonProcess.launch(tmp_path / name, relays=[url], skew=skew)
            for name, skew in skews.items()
        }
        try:
            for daemon in daemons.values():
                await daemon.expect("doc_synced", doc_id=room.room_id)
            await asyncio.wait_for(engine.links[0].connected.wait(), DEADLINE)
            await engine.timer_command(room.room_id, Command.START)
            for name, daemon in daemons.items():
                phase = await daemon.expect("timer_phase", room_id=room.room_id, status="running")
                true_instant = phase["at"] - skews[name]  # the event's moment on a true clock
                expected = phase["ends_at"] - true_instant
                assert abs(phase["remaining_s"] - expected) < 0.05, (name, phase)
        finally:
            for daemon in daemons.values():
                await daemon.stop()
            await engine.stop()


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime (Debian) is not installed")
async def test_a_cli_timer_command_beside_a_daemon_counts_on_the_rooms_timebase(
    tmp_path: Path,
) -> None:
    """Bob's machine runs 6 s fast. His daemon measured the relay's clock, so `focusmate timer
    start`, run on that machine, starts the timer at the true instant, not 6 s in the future."""
    skew = 6.0
    alice = Workspace(tmp_path / "alice", clock=SystemClock())
    room, invite = alice.create_room("Skewed CLI")
    bob = tmp_path / "bob"
    Workspace(bob, clock=SystemClock()).join_room(invite.code)
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        engine = SyncEngine(alice, relays=[url], events=lambda e: None, poll_seconds=0.05)
        await engine.start()
        daemon = await DaemonProcess.launch(bob, relays=[url], skew=skew)
        try:
            await daemon.expect("doc_synced", doc_id=room.room_id)
            await poll(
                lambda: abs(read_offset(bob, room.room_id, now=time.time() + skew) + skew) < 0.5,
                "the daemon publishing the relay's timebase",
            )
            before = time.time()
            cli = await asyncio.create_subprocess_exec(
                "faketime", "-f", f"{skew:+.1f}s", sys.executable, "-m", "ui.launcher",
                "--profile", str(bob), "timer", "start", room.room_id,
                cwd=REPO, stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert await asyncio.wait_for(cli.wait(), DEADLINE) == 0
            after = time.time()
            phase = await daemon.expect("timer_phase", room_id=room.room_id, status="running")
            started = phase["ends_at"] - 25 * 60
            assert before - 0.05 <= started <= after + 0.05, (before, started, after)
            shared = alice.find_room(room.room_id)
            await poll(lambda: shared.timer_state.status.value == "running", "the start at alice")
            assert shared.timer_state.phase_started_at == pytest.approx(started, abs=0.001)
        finally:
            await daemon.stop()
            await engine.stop()
