"""The timebase file: a running engine's clock offsets, used by CLI processes while fresh."""

from __future__ import annotations

import io
from pathlib import Path

from focusmate.cli import main
from focusmate.clock import FakeClock
from focusmate.timebase import FILE_NAME, FRESH_SECONDS, read_offset, write_offsets
from focusmate.timer import Status
from focusmate.workspace import Workspace


def test_a_fresh_offset_is_read_back_per_room(tmp_path: Path) -> None:
    write_offsets(tmp_path, {"r1": -6.25, "r2": 0.5}, now=1000.0)
    assert read_offset(tmp_path, "r1", now=1001.0) == -6.25
    assert read_offset(tmp_path, "r2", now=1001.0) == 0.5
    assert read_offset(tmp_path, "unknown", now=1001.0) == 0.0
    assert not list(tmp_path.glob(".*.tmp"))  # written by rename, nothing left over


def test_a_stale_missing_or_damaged_file_means_our_own_clock(tmp_path: Path) -> None:
    assert read_offset(tmp_path, "r1", now=1000.0) == 0.0  # no engine ever ran
    write_offsets(tmp_path, {"r1": 3.0}, now=1000.0)
    assert read_offset(tmp_path, "r1", now=1000.0 + FRESH_SECONDS + 1) == 0.0  # writer stopped
    assert read_offset(tmp_path, "r1", now=990.0) == 0.0  # written "in the future"
    for damaged in ("{", "[]", '{"written_at": "x", "rooms": {}}', '{"written_at": 1000}',
                    '{"written_at": 1000, "rooms": {"r1": "soon"}}',
                    '{"written_at": 1000, "rooms": {"r1": 1e12}}',
                    '{"written_at": 1000, "rooms": {"r1": NaN}}'):  # fmt: skip
        (tmp_path / FILE_NAME).write_text(damaged)
        assert read_offset(tmp_path, "r1", now=1001.0) == 0.0, damaged


def test_cli_timer_commands_count_on_the_published_timebase(tmp_path: Path) -> None:
    clock = FakeClock()
    ws = Workspace(tmp_path, clock=clock)
    room, _ = ws.create_room("Skewed laptop")
    write_offsets(tmp_path, {room.room_id: -7.0}, now=clock.now())  # as a running engine would
    assert ws.room_now(room.room_id) == clock.now() - 7.0
    argv = ["--profile", str(tmp_path), "timer", "start", room.room_id]
    assert main(argv, clock=clock, stdout=io.StringIO()) == 0
    ws.refresh()
    state = ws.find_room(room.room_id).timer_state
    assert state.status is Status.RUNNING
    assert state.phase_started_at == clock.now() - 7.0
