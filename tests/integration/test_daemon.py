"""``focusmate daemon``: a headless peer in its own process, reporting JSON lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from focusmate.clock import SystemClock
from focusmate.timer import Command
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from tests.integration.relaykit import DEADLINE, REPO, running_relay


class Daemon:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, profile: Path, relay: str) -> Daemon:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ui.launcher",
            "--profile",
            str(profile),
            "daemon",
            "--relay",
            relay,
            "--no-lan",  # (LAN peers: tests/lan)
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, event: str, **fields: Any) -> dict[str, Any]:
        """The first event (seen before or arriving now) with this name and these fields."""

        def match(e: dict[str, Any]) -> bool:
            return e.get("event") == event and all(e.get(k) == v for k, v in fields.items())

        found = next((e for e in self.events if match(e)), None)
        assert self.proc.stdout is not None
        async with asyncio.timeout(DEADLINE):
            while found is None:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"daemon exited before {event}: {self.events}")
                self.events.append(json.loads(line))
                found = self.events[-1] if match(self.events[-1]) else None
        return found

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), DEADLINE)
        self.events += [json.loads(line) for line in rest.decode().splitlines() if line]
        return await asyncio.wait_for(self.proc.wait(), DEADLINE)


async def test_the_daemon_syncs_a_room_and_reports_posts_and_timer_phases(tmp_path: Path) -> None:
    alice = Workspace(tmp_path / "alice", clock=SystemClock())
    room, invite = alice.create_room("Night shift")
    bob = Workspace(tmp_path / "bob", clock=SystemClock())
    bob.join_room(invite.code)
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        engine = SyncEngine(alice, relays=[url], events=lambda e: None, poll_seconds=0.05)
        await engine.start()
        daemon = await Daemon.start(tmp_path / "bob", url)
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
        assert daemon.events[-1]["event"] == "daemon_stopped"
