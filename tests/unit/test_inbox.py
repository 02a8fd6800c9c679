"""Direct messages on a device: queued → sent → delivered → read, never backwards; a
redelivered envelope is stored once; reading queues receipts."""

from __future__ import annotations

from pathlib import Path

from focusmate.clock import FakeClock
from focusmate.identity import Identity
from focusmate.inbox import Inbox
from focusmate.store import Store


def _inbox(tmp_path: Path, name: str, identity: Identity) -> Inbox:
    return Inbox(Store(tmp_path / f"{name}.db"), identity, FakeClock())


def test_a_message_moves_forward_only(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    outbox = _inbox(tmp_path, "alice", alice)
    message = outbox.send(bob.public, "  lunch?  ")
    assert (message.text, message.state) == ("lunch?", "queued")
    assert [e.id for e in outbox.queued()] == [message.id]
    assert outbox.advance(message.id, "sent")
    assert outbox.queued() == []
    assert outbox.advance(message.id, "read")
    assert not outbox.advance(message.id, "delivered")  # a late receipt does not undo "read"
    assert outbox.conversation(bob.user_id)[0].state == "read"


def test_received_messages_are_stored_once_and_reading_queues_receipts(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    sender = _inbox(tmp_path, "alice", alice)
    sender.send(bob.public, "hello")
    (envelope,) = sender.queued()
    inbox = _inbox(tmp_path, "bob", bob)
    assert inbox.receive(envelope) is not None
    assert inbox.receive(envelope) is None  # redelivered after a lost ack
    assert inbox.conversations() == {alice.user_id: 1}
    assert inbox.mark_read(alice.user_id) == [envelope.id]
    assert inbox.conversations() == {alice.user_id: 0}
    assert inbox.read_receipts_due() == {alice.user_id: [envelope.id]}
    inbox.receipts_sent([envelope.id])
    assert inbox.read_receipts_due() == {}


def test_summaries_give_each_conversations_last_message_and_unread_count(tmp_path: Path) -> None:
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    clock = FakeClock()
    inbox = Inbox(Store(tmp_path / "alice.db"), alice, clock)
    bobs = Inbox(Store(tmp_path / "bob.db"), bob, clock)
    assert inbox.summaries() == {}
    inbox.send(bob.public, "first")
    clock.advance(1)
    for text in ("one", "two"):
        bobs.send(alice.public, text)
        clock.advance(1)
    for envelope in bobs.queued():
        inbox.receive(envelope)
    inbox.send(carol.public, "hello carol")
    summaries = inbox.summaries()
    assert set(summaries) == {bob.user_id, carol.user_id}
    assert (summaries[bob.user_id].last.text, summaries[bob.user_id].unread) == ("two", 2)
    assert summaries[bob.user_id].last == inbox.conversation(bob.user_id)[-1]
    assert (summaries[carol.user_id].last.text, summaries[carol.user_id].unread) == (
        "hello carol",
        0,
    )
    assert summaries[carol.user_id].last.outgoing
    inbox.mark_read(bob.user_id)
    assert inbox.summaries()[bob.user_id].unread == 0
    assert {peer: s.unread for peer, s in inbox.summaries().items()} == inbox.conversations()
