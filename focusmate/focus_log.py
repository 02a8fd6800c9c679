"""Turning a room's timer history into the user's focus sessions.

The timer is state, not ticks, so nobody is told "a focus phase just ended". Instead, whoever
looks at a room (the app on every timer change, the CLI on every command) reconciles: it compares
the timer state it last saw with the current one and derives the focus phases that completed,
or were cut short by a skip or reset, in between. Session ids are derived from the timer state
and the phase's end instant, so two processes reconciling the same history record each session
once — the stats document is a CRDT map keyed by session id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Map

from focusmate import timer
from focusmate.document import CrdtDocument
from focusmate.errors import ValidationError
from focusmate.stats import FocusSession

DOC_KIND = "stats"
MIN_INTERRUPTED_S = 60.0  # shorter focus stretches are accidental starts, not sessions


def stats_doc_id(user_id: str) -> str:
    return f"stats:{user_id}"


class StatsDocument:
    """The user's own focus sessions, one CRDT map entry per session."""

    def __init__(self, document: CrdtDocument) -> None:
        self.document = document

    def _map(self) -> Map[Any]:
        return self.document.map("sessions")

    def record(self, sessions: list[FocusSession], *, now: float) -> list[FocusSession]:
        """Add sessions not yet recorded; returns the new ones."""
        existing = self._map()
        new = [s for s in sessions if s.session_id not in existing]
        if new:
            with self.document.edit(now=now):
                for session in new:
                    existing[session.session_id] = session.to_dict()
        return new

    def sessions(self) -> list[FocusSession]:
        result = []
        for raw in (self._map().to_py() or {}).values():
            if isinstance(raw, Mapping):
                try:
                    result.append(FocusSession.from_dict(raw))
                except ValidationError:
                    continue
        result.sort(key=lambda s: (s.started_at, s.session_id))
        return result


@dataclass(frozen=True)
class Watch:
    """The timer state a profile last accounted for, and up to when."""

    state: timer.TimerState
    checked_at: float


def reconcile(
    *,
    room_id: str,
    watch: Watch,
    current: timer.TimerState,
    config: timer.TimerConfig,
    task: str,
    now: float,
) -> tuple[list[FocusSession], Watch]:
    """Focus sessions between ``watch`` and ``now``, and the watch to keep for next time."""
    sessions: list[FocusSession] = []
    state, since = watch.state, watch.checked_at
    if current != state:
        cut = max(since, min(current.changed_at, now))
        sessions += _completed(
            room_id=room_id, state=state, config=config, start=since, end=cut, task=task
        )
        if current.last_command in (timer.Command.SKIP, timer.Command.RESET):
            sessions += _interrupted(room_id=room_id, state=state, config=config, at=cut, task=task)
        state, since = current, cut
    sessions += _completed(
        room_id=room_id, state=state, config=config, start=since, end=now, task=task
    )
    return sessions, Watch(state=state, checked_at=max(since, now))


def _session_id(room_id: str, state: timer.TimerState, end: float) -> str:
    key = f"{room_id}|{state.revision}|{state.changed_at:.3f}|{end:.3f}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _completed(
    *,
    room_id: str,
    state: timer.TimerState,
    config: timer.TimerConfig,
    start: float,
    end: float,
    task: str,
) -> list[FocusSession]:
    if end <= start:
        return []
    return [
        FocusSession(
            session_id=_session_id(room_id, state, seg.end),
            room_id=room_id,
            started_at=seg.end - config.focus_s,
            duration_s=config.focus_s,
            task=task,
            completed=True,
        )
        for seg in timer.segments(state, config, start=start, end=end)
        if seg.phase is timer.Phase.FOCUS and seg.completed
    ]


def _interrupted(
    *, room_id: str, state: timer.TimerState, config: timer.TimerConfig, at: float, task: str
) -> list[FocusSession]:
    view = timer.view(state, config, now=at)
    if view.phase is not timer.Phase.FOCUS or view.status is timer.Status.IDLE:
        return []
    focused = view.duration_s - view.remaining_s
    if focused < MIN_INTERRUPTED_S:
        return []
    return [
        FocusSession(
            session_id=_session_id(room_id, state, at),
            room_id=room_id,
            started_at=at - focused,
            duration_s=focused,
            task=task,
            completed=False,
        )
    ]
