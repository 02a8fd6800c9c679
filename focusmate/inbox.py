"""Direct messages on this device: what was sent and received, and how far each has got.

Sending seals the text for its recipient (``focusmate.dm``) and queues the envelope; the sync
engine takes queued envelopes to a relay (or a LAN peer) and marks them ``sent``; receipts move
them on to ``delivered`` and ``read``. A received envelope is opened and stored before it is
acknowledged, so a crash never loses one, and a redelivered one is stored once. Reading a
conversation queues read receipts for the engine to send. States only move forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusmate.clock import Clock
from focusmate.dm import Envelope, open_envelope, seal
from focusmate.identity import Identity, PublicIdentity
from focusmate.store import Store

OUT_STATES = ("queued", "sent", "delivered", "read")
IN_STATES = ("received", "read")


@dataclass(frozen=True)
class DirectMessage:
    id: str
    peer: str  # the other user's id
    outgoing: bool
    text: str
    sent_at: float
    state: str


@dataclass(frozen=True)
class ConversationSummary:
    """What a conversation list shows of one conversation."""

    last: DirectMessage
    unread: int  # their messages not read yet


class Inbox:
    def __init__(self, store: Store, identity: Identity, clock: Clock) -> None:
        self.store = store
        self.identity = identity
        self.clock = clock

    def send(self, recipient: PublicIdentity, text: str) -> DirectMessage:
        envelope = seal(self.identity, recipient, text, now=self.clock.now())
        message = DirectMessage(
            envelope.id, recipient.user_id, True, text.strip(), envelope.sent_at, "queued"
        )
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO dms (id, peer, outgoing, text, sent_at, state, envelope, updated_at)"
                " VALUES (?, ?, 1, ?, ?, 'queued', ?, ?)",
                (
                    message.id,
                    message.peer,
                    message.text,
                    message.sent_at,
                    envelope.to_json_bytes().decode(),
                    self.clock.now(),
                ),
            )
        return message

    def queued(self) -> list[Envelope]:
        """Envelopes waiting to be handed to a relay or peer, oldest first."""
        rows = self.store.query(
            "SELECT envelope FROM dms WHERE outgoing = 1 AND state = 'queued' ORDER BY sent_at"
        )
        return [Envelope.from_json_bytes(str(row[0]).encode()) for row in rows]

    def receive(self, envelope: Envelope) -> DirectMessage | None:
        """Open and store an envelope for us; None when it was already here (a redelivery)."""
        message = open_envelope(self.identity, envelope)
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO dms (id, peer, outgoing, text, sent_at, state, updated_at)"
                " VALUES (?, ?, 0, ?, ?, 'received', ?)",
                (message.id, message.sender, message.text, message.sent_at, self.clock.now()),
            )
        if cursor.rowcount != 1:
            return None
        return DirectMessage(
            message.id, message.sender, False, message.text, message.sent_at, "received"
        )

    def advance(self, message_id: str, state: str) -> bool:
        """Move an outgoing message forward (sent → delivered → read); never backwards."""
        later = OUT_STATES[OUT_STATES.index(state) :]
        earlier = [s for s in OUT_STATES if s not in later]
        marks = ",".join("?" * len(earlier))
        with self.store.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE dms SET state = ?, updated_at = ? WHERE id = ? AND outgoing = 1"
                f" AND state IN ({marks})",
                (state, self.clock.now(), message_id, *earlier),
            )
        return cursor.rowcount == 1

    def mark_read(self, peer: str) -> list[str]:
        """Read a conversation: its received messages become read; their ids."""
        rows = self.store.query(
            "SELECT id FROM dms WHERE peer = ? AND outgoing = 0 AND state = 'received'", (peer,)
        )
        ids = [str(row[0]) for row in rows]
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE dms SET state = 'read', updated_at = ? WHERE id = ?",
                [(self.clock.now(), mid) for mid in ids],
            )
        return ids

    def read_receipts_due(self) -> dict[str, list[str]]:
        """Messages we have read whose senders have not been told yet, by sender."""
        rows = self.store.query(
            "SELECT peer, id FROM dms WHERE outgoing = 0 AND state = 'read' AND read_receipt = 0"
        )
        due: dict[str, list[str]] = {}
        for peer, message_id in rows:
            due.setdefault(str(peer), []).append(str(message_id))
        return due

    def receipts_sent(self, ids: list[str]) -> None:
        with self.store.transaction() as conn:
            conn.executemany("UPDATE dms SET read_receipt = 1 WHERE id = ?", [(i,) for i in ids])

    def conversation(self, peer: str) -> list[DirectMessage]:
        rows = self.store.query(
            "SELECT id, peer, outgoing, text, sent_at, state FROM dms WHERE peer = ?"
            " ORDER BY sent_at, id",
            (peer,),
        )
        return [DirectMessage(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    def summaries(self) -> dict[str, ConversationSummary]:
        """Every peer we have messages with: the last message (the one :meth:`conversation`
        lists last) and how many of theirs are unread, in one query that reads no other text."""
        rows = self.store.query(
            "SELECT id, peer, outgoing, text, sent_at, state, unread FROM ("
            " SELECT id, peer, outgoing, text, sent_at, state,"
            " row_number() OVER (PARTITION BY peer ORDER BY sent_at DESC, id DESC) AS newest,"
            " sum(outgoing = 0 AND state = 'received') OVER (PARTITION BY peer) AS unread"
            " FROM dms) WHERE newest = 1"
        )
        return {
            str(r[1]): ConversationSummary(
                DirectMessage(r[0], r[1], bool(r[2]), r[3], r[4], r[5]), int(r[6] or 0)
            )
            for r in rows
        }

    def conversations(self) -> dict[str, int]:
        """Every peer we have messages with, and how many of theirs are unread."""
        rows = self.store.query(
            "SELECT peer, sum(outgoing = 0 AND state = 'received') FROM dms GROUP BY peer"
        )
        return {str(peer): int(unread or 0) for peer, unread in rows}
