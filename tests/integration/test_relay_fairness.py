"""The relay's commit queue is fair: a calm room's update never waits behind a flood's backlog.

A flood into some rooms (one address over many connections, each within its own budget) fills
the group-commit queue with thousands of updates. These tests drive the real Committer over a
real SQLite file and assert order and counts, never time: the calm update is committed (and so
forwarded) within a batch or two, and every flooded update is still committed, in order.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.committer import MAX_BATCH, Committer
from relay.storage import RelayStorage

BACKLOG = 2_000  # a flood's backlog: many batches' worth
FLOOD_ROOMS = 8  # one address flooding over several connections, each in its own room


@pytest.fixture
async def committer(tmp_path: Path) -> AsyncIterator[Committer]:
    committer = Committer(
        RelayStorage(tmp_path / "relay.db"), on_batch=lambda size, seconds: None, clock=lambda: 0.0
    )
    committer.start()
    yield committer
    await committer.close()


def _fail(err: BaseException) -> None:
    raise AssertionError(f"a write failed: {err}")


def flood(
    committer: Committer, committed: list[tuple[str, int]], first: asyncio.Event | None = None
) -> None:
    """Queue BACKLOG updates spread over the flood's rooms, each recorded as it commits."""

    def done(room: str, row: int) -> None:
        committed.append((room, row))
        if first is not None:
            first.set()

    for i in range(BACKLOG):
        room = f"flood-{i % FLOOD_ROOMS}"
        committer.append(
            room,
            f"{room}:{i}".encode(),
            on_commit=functools.partial(done, room),
            on_fail=_fail,
        )


async def test_a_calm_update_arriving_during_a_flood_is_committed_before_the_backlog(
    committer: Committer,
) -> None:
    committed: list[tuple[str, int]] = []
    first = asyncio.Event()
    flood(committer, committed, first)
    calm_at: list[int] = []

    def calm(_: int) -> None:
        calm_at.append(len(committed))

    async def calm_client() -> None:
        # Arrives once the flood's first update is durable, i.e. while its backlog commits.
        await first.wait()
        committer.append("calm", b"calm", on_commit=calm, on_fail=_fail)

    task = asyncio.create_task(calm_client())
    await committer.flush()
    await task
    await committer.flush()

    assert len(calm_at) == 1, "the calm update was not committed"
    # It went into the next batch (or the one after), not behind the flood's backlog.
    assert calm_at[0] <= 3 * MAX_BATCH < BACKLOG, (
        f"the calm update waited behind {calm_at[0]} of the flood's {BACKLOG} updates"
    )
    assert len(committed) == BACKLOG, "a flooded update was lost"


async def test_every_flooded_update_is_committed_once_and_in_order_per_room(
    committer: Committer,
) -> None:
    committed: list[tuple[str, int]] = []
    flood(committer, committed)
    saved = committer.submit(lambda storage: "other write")  # a non-update write, same queue
    await committer.flush()

    assert await saved == "other write"
    assert len(committed) == BACKLOG
    by_room: dict[str, list[int]] = {}
    for room, row in committed:
        by_room.setdefault(room, []).append(row)
    assert sorted(by_room) == [f"flood-{k}" for k in range(FLOOD_ROOMS)]
    for room, rows in by_room.items():
        assert rows == sorted(rows), f"{room}'s updates were committed out of order"
        stored = await committer.read(functools.partial(RelayStorage.load_doc, doc_id=room))
        k = int(room.split("-")[1])
        sent = [f"{room}:{i}".encode() for i in range(BACKLOG) if i % FLOOD_ROOMS == k]
        assert stored.updates == sent, f"{room}'s stored log differs from what was sent"
