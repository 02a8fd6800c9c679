"""Direct-message store-and-forward: the relay keeps ciphertext until the recipient says it is safe.

Rules:

* The relay accepts an envelope only from its authenticated sender, only if the signature checks
  (:func:`focusmate.dm.verify_envelope`: no private key needed, none held), and only within the
  recipient's mailbox limits (items, bytes). It never sees plaintext.
* Accepted means committed: ``dm_accepted`` is sent after the envelope is on disk, then the
  envelope goes live to every connection of the recipient. Sending the same envelope twice is
  harmless (same id).
* An item leaves the mailbox only when its recipient acknowledges it (``dm_ack``). Acknowledging
  a message queues a "delivered" receipt for its sender; ``dm_read`` queues "read" receipts.
  Receipts are mailbox items too: stored, delivered live, acknowledged — and best-effort: one
  that would overflow its recipient's mailbox is dropped.
* Items older than ``mailbox_max_age_seconds`` are purged.
* Where items are kept is a :class:`relay.mailbox_store.MailStore`'s business: this process's
  SQLite database, or Redis shared by several relay processes (a recipient's connections may be
  on any of them).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable

from focusmate.clock import Clock
from focusmate.dm import Envelope, verify_envelope
from focusmate.errors import ValidationError
from focusmate.identity import parse_user_id
from relay.config import Limits
from relay.mailbox_store import MailStore
from relay.metrics import RelayMetrics
from relay.peer import Peer
from relay.storage import MailItem
from sync.control import DmAccepted, DmDeliver, Receipt

MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
KIND_MESSAGE = "message"
KIND_RECEIPT = "receipt"
RECEIPT_KINDS = frozenset({"delivered", "read"})


class Mailboxes:
    def __init__(
        self,
        *,
        store: MailStore,
        limits: Limits,
        clock: Clock,
        metrics: RelayMetrics,
        online: Callable[[str], Iterable[Peer]],
    ) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self.metrics = metrics
        self.online = online  # user id -> that user's authenticated live connections

    async def send(self, sender: Peer, raw: dict[str, object]) -> None:
        """Store and forward one envelope; ValidationError (with a reason) if refused."""
        assert sender.identity is not None
        envelope = Envelope.from_dict(raw)
        if envelope.sender != sender.identity.user_id:
            raise ValidationError("you can only send envelopes you signed yourself")
        if not verify_envelope(envelope):
            raise ValidationError("the envelope's signature does not verify")
        body = envelope.to_json_bytes().decode("utf-8")
        item = MailItem(
            recipient=envelope.recipient,
            id=envelope.id,
            kind=KIND_MESSAGE,
            body=body,
            stored_at=self.clock.now(),
        )
        [stored] = await self.store.put([item])
        sender.send_control(DmAccepted(envelope.id))
        if stored:
            self.metrics.dms.inc()
            self._announce(item)

    async def arrived(self, peer: Peer) -> int:
        """A newly authenticated connection: from now on it gets its user's items live, and
        now everything waiting (an item may come both ways; clients keep one per id)."""
        assert peer.identity is not None
        user_id = peer.identity.user_id
        await self.store.watch(user_id, self._deliver_live)
        items = await self.store.waiting(user_id)
        for item in items:
            peer.send_control(_as_message(item))
        return len(items)

    async def left(self, peer: Peer) -> None:
        """An authenticated connection went (the store stops watching with the last)."""
        if peer.identity is not None:
            await self.store.unwatch(peer.identity.user_id)

    async def acknowledge(self, peer: Peer, ids: Iterable[str]) -> None:
        """Remove what the recipient has, and queue "delivered" receipts for its senders.
        Receipts are best-effort: one that would overflow a mailbox is dropped, so nobody can
        fill another user's mailbox (or send queue) with receipts."""
        assert peer.identity is not None
        user_id, now = peer.identity.user_id, self.clock.now()
        taken = await self.store.take(user_id, list(ids))
        receipts = [
            _receipt(json.loads(item.body)["sender"], item.id, "delivered", by=user_id, at=now)
            for item in taken
            if item.kind == KIND_MESSAGE
        ]
        await self._put_receipts(receipts)

    async def mark_read(self, peer: Peer, sender: str, message_ids: Iterable[str]) -> None:
        assert peer.identity is not None
        sender = parse_user_id(sender)
        ids = list(message_ids)
        if len(ids) > self.limits.max_receipts_per_request:
            raise ValidationError(
                f"at most {self.limits.max_receipts_per_request} receipts per request"
            )
        if not all(MESSAGE_ID.fullmatch(mid) for mid in ids):
            raise ValidationError("message ids are 32 lowercase hex characters")
        user_id, now = peer.identity.user_id, self.clock.now()
        await self._put_receipts([_receipt(sender, mid, "read", by=user_id, at=now) for mid in ids])

    async def _put_receipts(self, receipts: list[MailItem]) -> None:
        if not receipts:
            return
        stored = await self.store.put(receipts, best_effort=True)
        for receipt, ok in zip(receipts, stored, strict=True):
            if ok:
                self._announce(receipt)

    def _announce(self, item: MailItem) -> None:
        if not self.store.announces:  # (a shared store announces to every process itself)
            self._deliver_live(item)

    def _deliver_live(self, item: MailItem) -> None:
        message = _as_message(item)
        for peer in self.online(item.recipient):
            peer.send_control(message)

    async def expire(self) -> int:
        return await self.store.expire(self.clock.now() - self.limits.mailbox_max_age_seconds)

    async def refresh_gauges(self) -> None:
        """Read the totals (on a metrics scrape, not on every message)."""
        items, size = await self.store.totals()
        self.metrics.mailbox_items.set(items)
        self.metrics.mailbox_bytes.set(size)


def _receipt(recipient: str, message_id: str, kind: str, *, by: str, at: float) -> MailItem:
    receipt_id = "r" + secrets.token_hex(16)
    body = {"id": receipt_id, "message_id": message_id, "kind": kind, "by": by, "at": at}
    return MailItem(
        recipient=recipient,
        id=receipt_id,
        kind=KIND_RECEIPT,
        body=json.dumps(body, separators=(",", ":")),
        stored_at=at,
    )


def _as_message(item: MailItem) -> DmDeliver | Receipt:
    body = json.loads(item.body)
    if item.kind == KIND_MESSAGE:
        return DmDeliver(envelope=body)
    return Receipt(
        id=body["id"],
        message_id=body["message_id"],
        kind=body["kind"],
        by=body["by"],
        at=float(body["at"]),
    )
