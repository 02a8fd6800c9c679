"""Where DM mailboxes are kept: the store interface, and its SQLite implementation.

The rules (who may send, receipts, what a resend does) are relay/mailbox.py's; a store only
keeps items within a mailbox's limits and hands them out in the order they arrived. With Redis
(relay/shared_mailbox.py) every relay process sees the same mailboxes, and an item stored by one
reaches the recipient's connections on any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from focusmate.errors import ValidationError
from relay.committer import Committer
from relay.config import Limits
from relay.storage import MailItem, RelayStorage


class MailboxFull(ValidationError):
    pass


class MailStore(Protocol):
    # True when the store itself hands stored items to every relay process's
    # ``deliver`` (shared stores); False when the caller delivers them live.
    announces: bool

    async def put(self, items: Sequence[MailItem], *, best_effort: bool = False) -> list[bool]:
        """Store items (True each) unless one with its id is there already (a resend: False).
        A full mailbox raises MailboxFull, or with ``best_effort`` gives False."""
        ...

    async def waiting(self, recipient: str) -> list[MailItem]: ...

    async def take(self, recipient: str, ids: Sequence[str]) -> list[MailItem]:
        """Remove acknowledged items and return them (unknown ids are ignored)."""
        ...

    async def expire(self, before: float) -> int: ...

    async def totals(self) -> tuple[int, int]:
        """(items, bytes) over all mailboxes."""
        ...

    async def watch(self, recipient: str, deliver: Callable[[MailItem], None]) -> None:
        """Items stored for ``recipient`` from now on go to ``deliver`` (shared stores). Called
        for each of the recipient's connections, and :meth:`unwatch` when each goes."""

    async def unwatch(self, recipient: str) -> None: ...


def check_room(limits: Limits, item: MailItem, items: int, size: int) -> None:
    """MailboxFull if ``item`` does not fit beside ``items`` items of ``size`` bytes."""
    if items + 1 > limits.mailbox_max_items:
        raise MailboxFull(f"the recipient's mailbox is full ({items} items waiting)")
    if size + len(item.body) > limits.mailbox_max_bytes:
        raise MailboxFull("the recipient's mailbox is full (too many bytes waiting)")


class SqliteMailStore:
    """Mailboxes in this process's SQLite database, written through the group commit."""

    announces = False

    def __init__(self, committer: Committer, limits: Limits) -> None:
        self.committer = committer
        self.limits = limits

    async def put(self, items: Sequence[MailItem], *, best_effort: bool = False) -> list[bool]:
        def put(storage: RelayStorage) -> list[bool]:
            stored = []
            for item in items:
                try:
                    check_room(self.limits, item, *storage.mailbox_usage(item.recipient))
                except MailboxFull:
                    if not best_effort:
                        raise
                    stored.append(False)
                    continue
                stored.append(storage.put_mail(item))
            return stored

        return await self.committer.submit(put)

    async def waiting(self, recipient: str) -> list[MailItem]:
        return await self.committer.read(lambda s: s.mail_for(recipient))

    async def take(self, recipient: str, ids: Sequence[str]) -> list[MailItem]:
        return await self.committer.submit(lambda s: s.take_mail(recipient, ids))

    async def expire(self, before: float) -> int:
        return await self.committer.submit(lambda s: s.expire_mail(before))

    async def totals(self) -> tuple[int, int]:
        return await self.committer.read(lambda s: s.mailbox_totals())

    async def watch(self, recipient: str, deliver: Callable[[MailItem], None]) -> None:
        pass

    async def unwatch(self, recipient: str) -> None:
        pass
