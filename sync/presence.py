"""Presence in a room: who is here, focusing or on a break, and on what — Yjs awareness.

Each engine announces one awareness state per room under its own random client id:
``{"user_id", "name", "status": focusing|break|idle|away, "task"}``. States travel as y-protocols
awareness messages over every link; the rules are the Yjs ones: a state replaces the known one
only with a higher clock (or the same clock and a removal), and ``None`` means gone. What we
accept from one link is forwarded to the others, so presence crosses a relay and a LAN alike.
States that are not renewed within ``timeout`` seconds are dropped (a peer that vanished).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from focusmate.timer import Phase, Status, TimerView
from sync.ysync import AwarenessEntry, AwarenessMessage

STATUSES = frozenset({"focusing", "break", "idle", "away"})
TIMEOUT_SECONDS = 30.0
RENEW_SECONDS = TIMEOUT_SECONDS / 2  # (as y-protocols does: renewed at half the timeout)
MAX_TASK_CHARS = 200


@dataclass
class _Known:
    clock: int
    state: dict[str, Any] | None
    seen: float


def status_for(view: TimerView) -> str:
    """What a member of a room is doing while its timer reads ``view`` (and nothing says
    otherwise): focusing or on a break while it runs, idle while it waits."""
    if view.status is not Status.RUNNING:
        return "idle"
    return "focusing" if view.phase is Phase.FOCUS else "break"


def new_client_id() -> int:
    return secrets.randbits(52) + 1


class RoomPresence:
    def __init__(self, *, client_id: int, now: Callable[[], float]) -> None:
        self.client_id = client_id
        self.now = now
        self.clock = 0
        self.local: dict[str, Any] | None = None
        self.known: dict[int, _Known] = {}
        self.announced_at = now()

    def set_local(self, state: dict[str, Any] | None) -> AwarenessMessage:
        """Our new state (None: we leave); the message announcing it."""
        if state is not None:
            status = state.get("status")
            if status not in STATUSES:
                raise ValueError(f"presence status must be one of {sorted(STATUSES)}")
            task = state.get("task")
            if task is not None and (not isinstance(task, str) or len(task) > MAX_TASK_CHARS):
                raise ValueError(f"a task is text of at most {MAX_TASK_CHARS} characters")
        self.clock += 1
        self.local = state
        self.announced_at = self.now()
        return self.announcement()

    def renew(self) -> AwarenessMessage | None:
        """Our state again under a new clock, when it is due, so peers keep it (None: not due,
        or we have no state)."""
        if self.local is None or self.now() - self.announced_at < RENEW_SECONDS:
            return None
        return self.set_local(self.local)

    def announcement(self) -> AwarenessMessage:
        """Our current state, to greet a newly connected link (and to renew it)."""
        return AwarenessMessage((AwarenessEntry(self.client_id, self.clock, self.local),))

    def receive(self, message: AwarenessMessage) -> AwarenessMessage | None:
        """Merge what a link sent; the accepted entries, to forward to the other links."""
        accepted = []
        now = self.now()
        for entry in message.entries:
            if entry.client_id == self.client_id:
                continue  # our own state, echoed back
            known = self.known.get(entry.client_id)
            newer = known is None or entry.clock > known.clock
            removal = known is not None and entry.clock == known.clock and entry.state is None
            if not (newer or removal):
                if known is not None:
                    known.seen = now
                continue
            self.known[entry.client_id] = _Known(entry.clock, entry.state, now)
            accepted.append(entry)
        return AwarenessMessage(tuple(accepted)) if accepted else None

    def expire(self) -> list[int]:
        """Forget states not renewed within the timeout; their client ids."""
        cutoff = self.now() - TIMEOUT_SECONDS
        gone = [cid for cid, known in self.known.items() if known.seen < cutoff]
        for client_id in gone:
            del self.known[client_id]
        return gone

    def peers(self) -> list[dict[str, Any]]:
        """The states of everyone else here now."""
        return [k.state for k in self.known.values() if k.state is not None]


class PresenceHooks(Protocol):
    """What a link asks of the engine about presence."""

    def announcement(self, doc_id: str) -> AwarenessMessage | None: ...

    def awareness_received(self, doc_id: str, message: AwarenessMessage, link: object) -> None: ...
