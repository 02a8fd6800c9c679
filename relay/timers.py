"""Hosted timers: the relay applies a member's timer command with its own clock.

The relay runs the same :class:`focusmate.room.Room` logic as the app (membership check, the pure
timer transition table) over a scratch copy of the room document, and the command's effect
leaves as an ordinary Yjs update: committed, then fanned out like any client's. Every instant in
the new state is on the relay's clock, so all clients count down on one timebase (each knows its
offset to the relay from pings).

The relay writes with one random Yjs client id per document load, so hosting many commands adds
one entry to the document's state vector, not one per command.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from pycrdt import Doc, Map, Subscription, TransactionEvent, merge_updates

from focusmate import timer
from focusmate.errors import ValidationError
from focusmate.identity import PublicIdentity
from focusmate.room import Room

RELAY_ORIGIN = "relay"


class ScratchRoomDocument:
    """A throwaway document built from merged bytes; :meth:`edit` records the delta.

    :meth:`close` it when done: pycrdt hands Rust an observer callback that refers back to the
    document, a cycle Python's GC cannot see, so an observed document is never freed (measured:
    a whole copy of the room leaked per hosted command, refused ones included).
    """

    def __init__(self, doc_id: str, merged: bytes, *, client_id: int) -> None:
        self.doc_id = doc_id
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.doc.apply_update(merged)
        self._updates: list[bytes] = []
        self._subscription: Subscription | None = self.doc.observe(self._record)

    def close(self) -> None:
        """Unobserve the document so it can be freed (idempotent)."""
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None

    def _record(self, event: TransactionEvent) -> None:
        self._updates.append(event.update)

    def map(self, name: str) -> Map[Any]:
        return cast(Map[Any], self.doc.get(name, type=Map))

    @contextmanager
    def edit(self, *, now: float) -> Iterator[Doc[Any]]:
        with self.doc.transaction(origin=RELAY_ORIGIN):
            yield self.doc

    def delta(self) -> bytes | None:
        updates = [u for u in self._updates if u != b"\x00\x00"]
        if not updates:
            return None
        return updates[0] if len(updates) == 1 else merge_updates(*updates)


def new_client_id() -> int:
    return secrets.randbits(52) + 1


def host_command(
    *,
    doc_id: str,
    merged: bytes,
    member: PublicIdentity,
    command: str,
    now: float,
    client_id: int,
) -> tuple[timer.TimerState, bytes | None]:
    """Apply ``command`` for ``member``; the new state and the update that records it.

    Raises ValidationError for an unknown command or a room document pycrdt panics on (a log
    poisoned before the relay checked updates against the document), and the room's own errors
    (not a member, room deleted, command not allowed in this state) with the messages the app
    shows.
    """
    try:
        parsed = timer.Command(command)
    except ValueError:
        raise ValidationError(f"unknown timer command {command!r}") from None
    try:
        document = ScratchRoomDocument(doc_id, merged, client_id=client_id)
    except BaseException as err:  # a room log poisoned before the relay checked updates
        if isinstance(err, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
            raise
        raise ValidationError(f"the room document cannot be read: {err}") from None
    try:
        state = Room(document, me=member).timer_command(parsed, now=now)
        return state, document.delta()
    except BaseException as err:
        if isinstance(err, Exception | KeyboardInterrupt | SystemExit | asyncio.CancelledError):
            raise  # the room's own errors, and bugs, as they are
        raise ValidationError(f"the room document cannot be edited: {err}") from None  # a panic
    finally:
        document.close()
