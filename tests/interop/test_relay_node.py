"""Stock y-websocket@2.1.0 clients (Node) against our relay: sync, awareness, tokens, CLI URLs.

The relay must be a plain y-websocket server to any Yjs app: these tests use a client we did not
write (``nodekit.YClient``) and check it interoperates with our own Python client and itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from focusmate.invite import new_room_secret
from relay.server import Relay
from sync.control import CloseCode
from tests.integration.relaykit import (
    DEADLINE,
    DocClient,
    base_url,
    doc_url,
    limits,
    running_relay,
)
from tests.interop.nodekit import YClient, node_available, stop_process

SKIP_REASON = node_available()
pytestmark = pytest.mark.skipif(
    SKIP_REASON is not None, reason=f"NODE INTEROP TOOLKIT UNAVAILABLE: {SKIP_REASON}"
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(tmp_path / "relay") as relay:
        yield relay


async def wait_peers(
    client: YClient, predicate: Callable[[list[dict[str, Any]]], bool], what: str
) -> list[dict[str, Any]]:
    """Ask ``client`` for its peers' awareness states after each awareness change until
    ``predicate`` holds; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        states = await client.peers()
        if predicate(states):
            return states
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {what}; peers are {states}")
        with contextlib.suppress(TimeoutError):  # checked once more above, then reported
            await client.next_event(lambda e: e.get("event") == "awareness", timeout=remaining)


async def test_node_and_python_clients_sync_a_room_both_ways(relay: Relay) -> None:
    url = doc_url(relay, new_room_secret())
    async with YClient(url) as node:
        await node.synced()
        python = await DocClient.open(url)
        try:
            await node.set("m", "from-node", {"title": "write tests", "done": False})
            await python.wait_value("from-node", {"title": "write tests", "done": False})

            await python.set("from-python", "on it")
            await node.wait_for("m", "from-python", "on it")
            assert await node.get("m") == {
                "from-node": {"title": "write tests", "done": False},
                "from-python": "on it",
            }
        finally:
            await python.close()


async def test_a_late_node_client_gets_what_python_wrote_before_it_came(relay: Relay) -> None:
    url = doc_url(relay, new_room_secret())
    python = await DocClient.open(url)
    try:
        for i in range(5):
            await python.set(f"k{i}", i)
        async with YClient(url) as node:
            await node.synced()
            await node.wait_for("m", "k4", 4)
            assert await node.get("m") == {f"k{i}": i for i in range(5)}
    finally:
        await python.close()


@pytest.mark.parametrize("leaves", ["exits", "is_killed"])
async def test_node_clients_see_each_others_awareness_and_its_removal(
    relay: Relay, leaves: str
) -> None:
    url = doc_url(relay, new_room_secret())
    alice_state = {"user": "alice", "phase": "focus"}
    bob_state = {"user": "bob", "phase": "break"}
    async with YClient(url) as alice, YClient(url) as bob:
        await alice.synced()
        await bob.synced()
        await alice.set_awareness(alice_state)
        await bob.set_awareness(bob_state)
        await wait_peers(bob, lambda states: alice_state in states, "bob to see alice")
        await wait_peers(alice, lambda states: bob_state in states, "alice to see bob")

        # On exit y-websocket announces its own removal (a null state at the same clock, which
        # the relay must forward); a killed process cannot, so there the relay must announce it.
        if leaves == "exits":
            await alice.close()
        else:
            assert alice._proc is not None
            alice._proc.kill()
            await stop_process(alice._proc)
        states = await wait_peers(bob, lambda states: states == [], "alice to drop out")
        assert states == []


async def test_a_node_client_with_a_wrong_token_is_closed_with_4401(relay: Relay) -> None:
    secret = new_room_secret()
    async with YClient(doc_url(relay, secret, token="wrong"), no_reconnect=True) as intruder:
        closed = await intruder.expect("closed")
        assert closed["code"] == CloseCode.UNAUTHORIZED
        assert "invalid token" in (closed["reason"] or "")
        assert not any(e.get("event") == "synced" for e in intruder.events)


async def test_a_stock_client_retrying_a_bad_token_does_not_lock_out_other_rooms(
    tmp_path: Path,
) -> None:
    budget = 5  # failures per minute per IP (default 20: same outcome, just slower)
    async with running_relay(
        tmp_path / "relay", limits=limits(auth_failures_per_ip_per_minute=budget)
    ) as relay:
        mistyped = doc_url(relay, new_room_secret(), token="0" * 64)
        async with YClient(mistyped) as stuck:  # reconnects, as every stock client does

            def closes() -> list[dict[str, Any]]:
                return [e for e in stuck.events if e.get("event") == "closed"]

            # until it has spent more than the budget, or been refused at HTTP level (1006)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while len(closes()) <= budget + 2 and all(c["code"] == 4401 for c in closes()):
                await stuck.next_event(
                    lambda e: e.get("event") == "closed", timeout=max(deadline - loop.time(), 0)
                )
            neighbour = await DocClient.open(doc_url(relay, new_room_secret()))
            try:
                async with asyncio.timeout(DEADLINE):
                    await neighbour.synced.wait()
            finally:
                await neighbour.close()


async def test_a_node_client_with_a_malformed_room_id_is_closed_with_4404(relay: Relay) -> None:
    url = f"{base_url(relay)}/doc/not-a-room?token=x"
    async with YClient(url, no_reconnect=True) as client:
        closed = await client.expect("closed")
        assert closed["code"] == CloseCode.NOT_FOUND
        assert "malformed document id" in (closed["reason"] or "")


async def test_the_cli_doc_url_works_verbatim_in_a_node_client(
    relay: Relay, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    env = {**os.environ, "FOCUSMATE_PROFILE": str(profile)}
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "focusmate",
        "room",
        "create",
        "Deep Work",
        "--relay",
        base_url(relay),
        "--json",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(cli.communicate(), 30)
    assert cli.returncode == 0, err.decode()
    room = json.loads(out)
    url = room["doc_url"]
    assert url == f"{base_url(relay)}/doc/{room['room_id']}?token={url.split('token=')[1]}"

    async with YClient(url) as first:
        started = await first.expect("started")
        assert started["url"] == url  # the provider dials exactly the printed URL
        await first.synced()
        await first.set("board", "task-1", {"title": "quarterly report", "done": False})
        async with YClient(url) as second:
            await second.synced()
            await second.wait_for("board", "task-1", {"title": "quarterly report", "done": False})
            await second.set("board", "task-2", "reply")
            await first.wait_for("board", "task-2", "reply")
    assert "note: connecting to" not in first.stderr
