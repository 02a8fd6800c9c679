"""Each room's timebase, as measured by a running sync engine, shared with short-lived processes.

Peers show one timer only if they read it on one clock (the relay's, or an agreed LAN peer's).
A running engine (the app or ``focusmate daemon``) measures the offset of that clock from ours;
a CLI command lives for a moment and cannot. So the engine writes the offsets to
``timebase.json`` in the profile, and :func:`read_offset` hands them to any process on the same
profile and machine: ``focusmate timer start`` then stamps the timer on the room's timebase, not
on a local clock that may be seconds off. The file is a hint: when it is missing, stale (its
writer stopped), or damaged, we count on our own clock, as a lone peer does anyway.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "timebase.json"
FRESH_SECONDS = 10.0
"""Offsets older than this are ignored: the engine that measured them has stopped."""
MAX_OFFSET_SECONDS = 7 * 24 * 3600.0
"""An offset beyond a week is not a clock difference but a damaged file."""


def write_offsets(profile_dir: Path, offsets: Mapping[str, float], *, now: float) -> None:
    """Record ``offsets`` (room id -> seconds to add to our clock), atomically."""
    path = profile_dir / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"written_at": now, "rooms": dict(offsets)}))
    os.replace(tmp, path)


def remove_offsets(profile_dir: Path) -> None:
    (profile_dir / FILE_NAME).unlink(missing_ok=True)


def read_offset(profile_dir: Path, room_id: str, *, now: float) -> float:
    """Seconds to add to our clock for ``room_id``'s timebase; 0.0 when nothing fresh is known."""
    try:
        data = json.loads((profile_dir / FILE_NAME).read_text())
        written_at = float(data["written_at"])
        offset = data["rooms"].get(room_id, 0.0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0.0
    if not 0.0 <= now - written_at <= FRESH_SECONDS:
        return 0.0
    if not isinstance(offset, int | float) or not math.isfinite(offset):
        return 0.0
    return float(offset) if abs(offset) <= MAX_OFFSET_SECONDS else 0.0
