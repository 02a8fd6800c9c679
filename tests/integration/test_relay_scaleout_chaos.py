"""Three relay processes on one Redis while their links to Redis stall and break at random: every
write reaches every client, and every process ends up holding the same room.

Processes two and three reach Redis through a proxy each (tests/integration/rediskit.py) that the
test holds (what Redis sends waits), cuts (connections die, what was held is lost) and releases
on a seeded schedule while writers on every process write. A writer whose process could not
store its update is closed with 1011; like an app, it reconnects and sends its whole state again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map
from websockets.exceptions import ConnectionClosed

from focusmate.invite import room_id_for
from relay.server import Relay
from tests.integration.rediskit import RedisProxy, needs_redis, running_redis
from tests.integration.relaykit import DocClient, doc_url, poll, running_relay, wait_until

pytestmark = needs_redis
SECRET = b"chaos" * 6
WRITES = int(os.environ.get("FOCUSMATE_CHAOS_WRITES", "400"))  # (more for a longer soak)


class Writer:
    """A client with its own document; reconnects and resends everything when closed."""

    def __init__(self, name: str, relay: Relay) -> None:
        self.name = name
        self.relay = relay
        self.doc: Doc[Any] = Doc()
        self.client: DocClient | None = None
        self.reconnects = 0

    async def connect(self) -> None:
        self.client = await DocClient.open(doc_url(self.relay, SECRET))
        await self.client.push(self.doc.get_update())  # (its whole state: the relay cuts repeats)

    async def write(self, key: str) -> None:
        before = self.doc.get_state()
        self.doc.get("m", type=Map)[key] = self.name
        assert self.client is not None
        with contextlib.suppress(ConnectionClosed):  # (closed: reconnect and resend, below)
            await self.client.push(self.doc.get_update(before))
        if self.client._reader.done():
            self.reconnects += 1
            await self.connect()


async def test_writes_survive_stalled_and_broken_links_to_redis(tmp_path: Path) -> None:
    rng = random.Random(2026)
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(running_redis(tmp_path / "redis"))
        links = [await stack.enter_async_context(RedisProxy(redis)) for _ in range(2)]
        urls = [redis.url, *(link.url for link in links)]
        relays = [
            await stack.enter_async_context(
                running_relay(tmp_path / f"relay{i}", redis_url=url, compact_after_updates=16)
            )
            for i, url in enumerate(urls)
        ]
        writers = [Writer(f"w{i}", relays[i % 3]) for i in range(6)]
        for writer in writers:
            await writer.connect()
        readers = [await DocClient.open(doc_url(relay, SECRET)) for relay in relays]

        cuts = 0
        for n in range(WRITES):
            if rng.random() < 0.1:
                link = rng.choice(links)
                action = rng.choice(("hold", "release", "cut"))
                if action == "hold":
                    link.hold()
                elif action == "release":
                    link.release()
                else:
                    link.cut()
                    link.release()
                    cuts += 1
            await rng.choice(writers).write(f"k{n}")
            if n % 10 == 0:
                await asyncio.sleep(0.01)  # (let the relays breathe: this is the pace of writes)
        for link in links:
            link.release()

        # Every writer still open (or reopened) resends its state once more, as an app does at
        # its next sync; then every reader, on every process, must have every write.
        for writer in writers:
            if writer.client is None or writer.client._reader.done():
                await writer.connect()
            else:
                await writer.client.push(writer.doc.get_update())
        expected = {f"k{n}" for n in range(WRITES)}
        for reader in readers:
            await wait_until(
                lambda r=reader: set(r.map().keys()) >= expected, reader.changed, "every write"
            )
        # and every process holds the same room (what it would serve a newcomer)
        wanted = readers[0].map().to_py()
        await poll(lambda: all(held(relay) == wanted for relay in relays), "the same room")
        assert len(wanted) == WRITES
        assert cuts >= min(5, WRITES // 80)  # (the schedule really broke links: 8 times)


def held(relay: Relay) -> dict[str, Any] | None:
    state = relay.hub.docs.get(room_id_for(SECRET))
    if state is None:
        return None
    doc: Doc[Any] = Doc()
    doc.apply_update(state.merged())
    content: dict[str, Any] = doc.get("m", type=Map).to_py()
    return content
