"""kill -9 the relay mid-stream: every update any client received is there after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from focusmate.invite import new_room_secret
from tests.integration.relaykit import DocClient, RelayProcess

pytestmark = pytest.mark.slow
WRITES = 5000  # per writer: far more than arrive before the kill


async def test_nothing_a_client_received_is_lost_to_kill_9(tmp_path: Path) -> None:
    secret = new_room_secret()
    async with RelayProcess(tmp_path) as relay:
        writers = [await DocClient.open(relay.doc_url(secret)) for _ in range(3)]
        reader = await DocClient.open(relay.doc_url(secret))
        for client in (*writers, reader):
            await client.synced.wait()

        async def write(n: int, client: DocClient) -> None:
            for i in range(WRITES):
                try:
                    await client.set(f"w{n}-{i}", i)
                except Exception:  # the relay is gone: stop writing
                    return

        tasks = [asyncio.create_task(write(n, c)) for n, c in enumerate(writers)]
        async with asyncio.timeout(30):  # kill while updates are streaming
            while len(list(reader.map().keys())) < 150:
                reader.changed.clear()
                await reader.changed.wait()
        await relay.kill()
        received = set(reader.map().keys())
        await asyncio.gather(*tasks, return_exceptions=True)
        assert 150 <= len(received) < 3 * WRITES, "the kill should land mid-stream"

    async with RelayProcess(tmp_path) as restarted:
        fresh = await DocClient.open(restarted.doc_url(secret))
        await fresh.synced.wait()
        async with asyncio.timeout(10):
            while not received <= set(fresh.map().keys()):
                fresh.changed.clear()
                await fresh.changed.wait()
        assert received <= set(fresh.map().keys())
