"""Where the hub's documents are stored: the log interface, and its SQLite implementation.

A relay keeps each document as a log of updates behind a snapshot. With SQLite (the default)
this process is the log's only writer, so an append is committed and then handed on, and
nothing else ever arrives. With Redis (relay/shared_log.py) several processes append to the same
log, and each hands on everyone's entries in log order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from relay.committer import Committer
from relay.storage import LoadedDoc, RelayStorage


class DocLog(Protocol):
    shared: bool

    @property
    def queued(self) -> int:
        """Writes waiting to be stored."""
        ...

    async def load(self, doc_id: str) -> LoadedDoc: ...

    def started(self, doc_id: str) -> None:
        """The hub holds the document now (entries that arrived meanwhile go to it)."""

    def release(self, doc_id: str) -> None:
        """The hub dropped the document from memory."""

    def append(
        self,
        doc_id: str,
        update: bytes,
        *,
        on_commit: Callable[[int], None],
        on_fail: Callable[[BaseException], None],
    ) -> None:
        """Store an update; ``on_commit`` gets its position in the log once it is stored and
        its turn in the log has come (callbacks of one document come in log order)."""

    def save_snapshot(
        self, doc_id: str, merged: bytes, *, upto: int, slow: bool = False
    ) -> asyncio.Future[None]:
        """Replace the log up to position ``upto`` with ``merged``."""
        ...

    async def check(self) -> str | None:
        """None when the storage works, else what is wrong (for /healthz)."""
        ...


class SqliteDocLog:
    """The log in this process's SQLite database, written through the group commit."""

    shared = False

    def __init__(self, committer: Committer) -> None:
        self.committer = committer

    @property
    def queued(self) -> int:
        return self.committer.queued

    async def load(self, doc_id: str) -> LoadedDoc:
        return await self.committer.read(lambda s: s.load_doc(doc_id))

    def started(self, doc_id: str) -> None:
        pass  # (the only writer: nothing arrives from elsewhere while a document loads)

    def release(self, doc_id: str) -> None:
        pass  # (nothing followed)

    def append(
        self,
        doc_id: str,
        update: bytes,
        *,
        on_commit: Callable[[int], None],
        on_fail: Callable[[BaseException], None],
    ) -> None:
        self.committer.append(doc_id, update, on_commit=on_commit, on_fail=on_fail)

    def save_snapshot(
        self, doc_id: str, merged: bytes, *, upto: int, slow: bool = False
    ) -> asyncio.Future[None]:
        now = self.committer.clock()

        def save(storage: RelayStorage) -> None:
            storage.save_snapshot(doc_id, merged, upto=upto, now=now)

        return self.committer.submit(save, slow=slow)

    async def check(self) -> str | None:
        try:
            return await asyncio.wait_for(self.committer.read(lambda s: s.check()), 5.0)
        except TimeoutError:
            return "storage did not answer within 5 s"
