"""The session: the engine on the Qt loop, its changes as coalesced signals."""

from __future__ import annotations

import asyncio
from pathlib import Path

from focusmate.clock import FakeClock
from focusmate.timer import Command, Status
from tests.ui.uikit import run, session, until, workspace


def test_a_local_timer_command_and_phase_changes_arrive_as_signals(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    clock = FakeClock()
    ws = workspace(tmp_path / "me", clock=clock)
    room, _ = ws.create_room("Signals")
    s = session(ws)
    changed: list[str] = []
    phases: list[dict[str, object]] = []
    s.roomChanged.connect(changed.append)
    s.timerPhase.connect(phases.append)

    async def scenario() -> None:
        await s.start()
        try:
            state = await s.timer_command(room.room_id, Command.START)
            assert state.status is Status.RUNNING
            await until(lambda: room.room_id in changed, "the room's change signal")
            clock.advance(25 * 60 + 1)  # focus is over: a short break begins
            s.tick()
            assert phases[-1]["phase"] == "short_break"
            assert ws.stats().sessions()[0].duration_s == 25 * 60  # recorded in the stats
        finally:
            await s.stop()

    run(qloop, scenario())
