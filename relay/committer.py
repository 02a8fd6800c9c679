"""Group commit: many writes, one commit, and nothing is forwarded before it is durable.

Writers call :meth:`Committer.submit` with a function of the storage (or :meth:`append` for a
document update); it joins the queue. One task takes a batch of what is queued, runs it in a single
transaction (on the loop, or on the storage thread when commits fsync), commits, and
only then calls each write's ``on_commit`` in submission order (where the relay fans an update
out) and resolves its future. While a batch commits the next one accumulates, so throughput grows
with load while latency stays one commit.

Fair to every document: writes queue per document (one lane for the other writes, see
:mod:`relay.lanes`), a batch takes one write from each lane in turn, up to MAX_BATCH, and the
loop runs between batches, so a batch (its commit plus its fan-out, which runs on the loop) stays
small. Each lane stays in submission order, so a document's callbacks come in order.

Each write runs in a savepoint: one failing write (say, a mailbox over its quota) fails alone.
If the commit itself fails (disk full, I/O error) every write of the batch fails and nothing of it
is forwarded.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from relay.lanes import Lanes
from relay.logs import fields
from relay.storage import Checkpointer, RelayStorage

T = TypeVar("T")
# Writes per batch (and so per commit, and per uninterrupted run of fan-out on the loop): large
# enough that a commit's fixed cost is shared, small enough that an update behind a full batch
# waits milliseconds, not the seconds a flood's backlog would take. (bench/relay_fanout.py,
# saturated, one run each: 2,000 -> 17.6k deliveries/s, 256 -> 17.9k, 64 -> 12.6k; the calm
# clients of bench/flood_fairness.py fare the same at 64 and 256.)
MAX_BATCH = 256
OTHER = ""  # the lane of writes that are not document updates (no document id is empty)
CHECKPOINT_SECONDS = 1.0
log = logging.getLogger("focusmate.relay")


@dataclass(slots=True)
class _Write:
    fn: Callable[[RelayStorage], Any] | None  # None: a document update, in ``append``
    future: asyncio.Future[Any] | None  # None: the caller gave on_commit/on_fail instead
    on_commit: Callable[[Any], None] | None = field(default=None)
    append: tuple[str, bytes] | None = None
    on_fail: Callable[[BaseException], None] | None = None
    slow: bool = False  # commit its batch off the loop (see Committer.submit)

    def failed(self, err: BaseException) -> None:
        if self.future is not None:
            if not self.future.done():
                self.future.set_exception(err)
        elif self.on_fail is not None:
            self.on_fail(err)


class Committer:
    def __init__(
        self,
        storage: RelayStorage,
        *,
        on_batch: Callable[[int, float], None],
        clock: Callable[[], float],
    ) -> None:
        self.storage = storage
        self.clock = clock  # wall-clock time recorded with each document write
        # Without an fsync a batch commits in ~0.1 ms: doing it on the loop costs less than
        # handing it to a thread and back (and measured lower latency and CPU). With one, it must
        # not block the loop; nor must a slow write (see submit).
        self._inline = storage.synchronous != "full"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-db")
        self._reader = storage.reader()
        self._read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-read")
        self._lanes: Lanes[_Write] = Lanes()  # by document id
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch  # (batch size, seconds) for metrics
        self._closed = False
        self._checkpointer = Checkpointer(storage.path)
        self._checkpoint_executor = ThreadPoolExecutor(1, thread_name_prefix="relay-checkpoint")
        self._checkpoints: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="group-commit")
        self._checkpoints = loop.create_task(self._checkpoint_regularly(), name="checkpoints")

    async def _checkpoint_regularly(self) -> None:
        """Checkpoint every second. One that fails (a full disk) loses nothing: the commits stay
        in the WAL, and the next checkpoint after space is back copies them. So it is logged
        once when it starts failing and once when it works again, not every second."""
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                await loop.run_in_executor(self._checkpoint_executor, self._checkpointer.checkpoint)
            except sqlite3.Error as err:
                if not failing:
                    log.error("relay.checkpoint_failed", extra=fields(error=str(err)))
                failing = True
                continue
            except Exception:
                log.exception("relay.checkpoint_failed")
                continue
            if failing:
                log.info("relay.checkpoint_recovered")
                failing = False

    def submit(
        self,
        fn: Callable[[RelayStorage], T],
        *,
        on_commit: Callable[[T], None] | None = None,
        slow: bool = False,
    ) -> asyncio.Future[T]:
        """Queue ``fn(storage)``, run inside a batch's transaction. A ``slow`` one (a big
        room's snapshot: up to 20 ms measured) has its batch committed on the storage thread,
        so the loop serves the other rooms meanwhile; the rest commit on the loop, where the
        hop to a thread would cost more than it saves (and its batch would wait for the GIL)."""
        if self._closed:
            raise RuntimeError("the relay is shutting down")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(OTHER, _Write(fn, future, on_commit, slow=slow))
        return future

    def append(
        self,
        doc_id: str,
        update: bytes,
        *,
        on_commit: Callable[[int], None],
        on_fail: Callable[[BaseException], None],
    ) -> None:
        """Queue a document update; ``on_commit`` gets its row id once it is durable, or
        ``on_fail`` the error. Runs of updates in a batch are written with one statement, and
        no future is made per update (this is the relay's hottest path)."""
        if self._closed:
            raise RuntimeError("the relay is shutting down")
        self._enqueue(doc_id, _Write(None, None, on_commit, (doc_id, update), on_fail))

    def _enqueue(self, lane: str, write: _Write) -> None:
        self._lanes.push(lane, write)
        self._idle.clear()
        self._wake.set()

    async def read(self, fn: Callable[[RelayStorage], T]) -> T:
        """Run a read on the reader connection's thread: it sees what is committed."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_executor, fn, self._reader)

    @property
    def queued(self) -> int:
        return self._lanes.queued

    async def flush(self) -> None:
        """Return once everything submitted so far is committed (or failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Commit what is queued, stop, and close the storage."""
        self._closed = True
        await self.flush()
        for task in (self._task, self._checkpoints):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        loop = asyncio.get_running_loop()

        def finish() -> None:
            # On a full disk the final checkpoint fails; everything committed is still in the
            # WAL, which the next start reads, so shutting down goes on.
            try:
                self._checkpointer.checkpoint(truncate=True)
            except sqlite3.Error as err:
                log.error("relay.checkpoint_failed", extra=fields(error=str(err)))
            finally:
                self._checkpointer.close()

        await loop.run_in_executor(self._read_executor, self._reader.close)
        self._read_executor.shutdown(wait=True)
        await loop.run_in_executor(self._checkpoint_executor, finish)
        self._checkpoint_executor.shutdown(wait=True)
        await loop.run_in_executor(self._executor, self.storage.close)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await asyncio.sleep(0)  # let this loop iteration's other frames join the batch
            self._wake.clear()
            while self._lanes.queued:
                batch = self._lanes.batch(MAX_BATCH)
                started = loop.time()
                try:
                    if self._inline and not any(write.slow for write in batch):
                        results = self._commit(batch)
                    else:
                        results = await loop.run_in_executor(self._executor, self._commit, batch)
                except Exception as err:  # the commit failed: nothing of the batch happened
                    for write in batch:
                        write.failed(err)
                    await asyncio.sleep(0)
                    continue
                self._on_batch(len(batch), loop.time() - started)
                for write, (ok, value) in zip(batch, results, strict=True):
                    if not ok:
                        write.failed(value)
                        continue
                    if write.on_commit is not None:
                        write.on_commit(value)
                    if write.future is not None and not write.future.done():
                        write.future.set_result(value)
                # Let the loop read and send between batches (an inline commit never awaits).
                await asyncio.sleep(0)
            self._idle.set()

    def _commit(self, batch: list[_Write]) -> list[tuple[bool, Any]]:
        storage = self.storage
        now = self.clock()
        results: list[tuple[bool, Any]] = []
        storage.begin()
        try:
            i = 0
            while i < len(batch):
                if batch[i].append is not None:
                    j = i
                    while j < len(batch) and batch[j].append is not None:
                        j += 1
                    rows = [write.append for write in batch[i:j] if write.append is not None]
                    results.extend(
                        (True, row_id) for row_id in storage.append_updates(rows, now=now)
                    )
                    i = j
                    continue
                fn = batch[i].fn
                assert fn is not None
                storage.conn.execute("SAVEPOINT w")
                try:
                    value = fn(storage)
                except Exception as err:
                    storage.conn.execute("ROLLBACK TO w")
                    results.append((False, err))
                else:
                    results.append((True, value))
                storage.conn.execute("RELEASE w")
                i += 1
            storage.commit()
        except BaseException:
            storage.rollback()
            raise
        return results
