"""The Node toolkit itself works: two y-websocket clients sync through y-websocket's own server.

This pins the harness down before it is pointed at our relay: if this fails, the interop tests
that build on it would fail for reasons that have nothing to do with FocusMate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.interop.nodekit import (
    YClient,
    free_port,
    node_available,
    start_node_server,
    stop_process,
)

SKIP_REASON = node_available()
pytestmark = pytest.mark.skipif(
    SKIP_REASON is not None, reason=f"NODE INTEROP TOOLKIT UNAVAILABLE: {SKIP_REASON}"
)


@pytest.fixture
async def reference_url() -> AsyncIterator[str]:
    """A document URL on a fresh y-websocket reference server."""
    port = free_port()
    server = await start_node_server("127.0.0.1", port)
    try:
        yield f"ws://127.0.0.1:{port}/doc/abc?token=x"
    finally:
        await stop_process(server)


async def test_two_clients_share_map_and_awareness(reference_url: str) -> None:
    async with YClient(reference_url) as a, YClient(reference_url) as b:
        started = await a.expect("started")
        assert started["url"] == reference_url  # the provider connects to exactly this URL
        await a.synced()
        await b.synced()

        await a.set_awareness({"user": "alice", "phase": "focus"})
        await a.set("board", "task-1", {"title": "write tests", "done": False})

        await b.wait_for("board", "task-1", {"title": "write tests", "done": False})
        assert await b.get("board") == {"task-1": {"title": "write tests", "done": False}}

        await b.expect("awareness", states=[{"user": "alice", "phase": "focus"}])
        assert await b.peers() == [{"user": "alice", "phase": "focus"}]
