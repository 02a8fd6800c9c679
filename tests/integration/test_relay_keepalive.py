"""Keepalive (relay/keepalive.py): a client that is gone is closed; one the relay is reading
slowly on purpose is only slowed, even though its pongs wait behind its own frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from focusmate.invite import new_room_secret
from relay.server import Relay
from tests.integration.relaykit import DocClient, doc_url, limits, poll, running_relay, wait_until

INTERVAL = 0.2  # keepalive seconds: a flood below takes many of them to be read


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    throttled = limits(messages_per_second=100.0, message_burst=10.0)
    async with running_relay(tmp_path, limits=throttled, keepalive_seconds=INTERVAL) as relay:
        yield relay


async def test_a_throttled_writer_is_slowed_not_dropped(relay: Relay) -> None:
    secret = new_room_secret()
    writer = await DocClient.open(doc_url(relay, secret))
    reader = await DocClient.open(doc_url(relay, secret))
    # 200 updates at once, read at 100/s: ~2 s (10 keepalive intervals) behind the writer's
    # pongs, which travel after them.
    for i in range(200):
        await writer.set(f"k{i}", i)

    await wait_until(lambda: len(reader.map()) == 200, reader.changed, "every update")

    assert relay.metrics.rejected.labels("rate_limited")._value.get() > 0
    assert relay.metrics.dropped_silent._value.get() == 0
    assert writer.ws.close_code is None
    await writer.close()
    await reader.close()


async def test_an_idle_client_that_answers_pings_stays(relay: Relay) -> None:
    client = await DocClient.open(doc_url(relay, new_room_secret()))
    await poll(lambda: relay.keepalive.pongs >= 3, "three answered pings")
    assert client.ws.close_code is None
    assert len(relay.peers) == 1
    await client.close()


async def test_a_client_that_went_silent_is_closed(relay: Relay) -> None:
    gone = await DocClient.open(doc_url(relay, new_room_secret()))
    await poll(lambda: len(relay.peers) == 1, "the connection")
    gone.ws.transport.pause_reading()  # a pulled cable: no frame, no pong

    await poll(lambda: not relay.peers, "the silent connection to be closed")

    assert relay.metrics.dropped_silent._value.get() == 1
    gone.ws.transport.abort()
