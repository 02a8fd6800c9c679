"""Sync engines on real profiles syncing rooms through a real relay on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sync.backoff import Backoff
from sync.engine import SyncEngine
from tests.integration.relaykit import REPO, RelayProcess, poll, running_relay
from tests.integration.synckit import EnginePeer, free_port, peers, running

DEADLINE = 10.0


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    await poll(predicate, what, interval=0.02)


async def test_two_engines_sync_a_room_through_a_relay(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        async with peers(tmp_path, 2, relays=[url]) as (alice, bob):
            room, invite = alice.workspace.create_room("Deep work")
            bob.workspace.join_room(invite.code)
            await eventually(lambda: bob.room_name(room.room_id) == "Deep work", "the room")
            alice.workspace.board(room).post("first post", now=alice.workspace.now())
            await eventually(lambda: bob.posts(room.room_id) == ["first post"], "alice's post")
            bob_room = bob.workspace.find_room("Deep work")
            bob.workspace.board(bob_room).post("reply", now=bob.workspace.now())
            await eventually(lambda: "reply" in alice.posts(room.room_id), "bob's post")
            assert any(e["event"] == "link_up" for e in alice.events)
            assert any(e["event"] == "doc_synced" for e in bob.events)


async def test_a_profile_on_two_relays_bridges_members_who_share_neither(tmp_path: Path) -> None:
    """Bob uses only relay A and carol only relay B; alice uses both, and her engine forwards
    what arrives on one link to the other, so bob and carol still meet."""
    async with (
        running_relay(tmp_path / "relay-a") as relay_a,
        running_relay(tmp_path / "relay-b") as relay_b,
    ):
        a, b = (f"ws://127.0.0.1:{r.port}" for r in (relay_a, relay_b))
        alice = EnginePeer(tmp_path / "alice", relays=[a, b])
        bob = EnginePeer(tmp_path / "bob", relays=[a])
        carol = EnginePeer(tmp_path / "carol", relays=[b])
        async with running(alice, bob, carol):
            room, invite = alice.workspace.create_room("Two relays")
            for peer in (bob, carol):
                peer.workspace.join_room(invite.code)
            for peer in (bob, carol):
                await eventually(
                    lambda peer=peer: peer.room_name(room.room_id) == "Two relays", "the room"
                )
            bob.workspace.board(bob.workspace.find_room("Two relays")).post(
                "from relay A", now=bob.workspace.now()
            )
            await eventually(lambda: carol.posts(room.room_id) == ["from relay A"], "bob's post")
            carol.workspace.board(carol.workspace.find_room("Two relays")).post(
                "from relay B", now=carol.workspace.now()
            )
            await eventually(lambda: "from relay B" in bob.posts(room.room_id), "carol's post")
            assert {e["link"] for e in alice.events if e["event"] == "link_up"} == {a, b}


async def test_three_engines_and_a_cli_edit_from_another_process(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        async with peers(tmp_path, 3, relays=[url]) as (alice, bob, carol):
            room, invite = alice.workspace.create_room("Standup")
            for peer in (bob, carol):
                peer.workspace.join_room(invite.code)
            await eventually(lambda: carol.room_name(room.room_id) == "Standup", "the room")
            # a CLI command on alice's profile, in its own process, while her engine runs
            env = {**os.environ, "FOCUSMATE_PROFILE": str(alice.profile)}
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "focusmate", "post", "Standup", "posted from the CLI"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            for peer in (bob, carol):
                await eventually(
                    lambda peer=peer: "posted from the CLI" in peer.posts(room.room_id),
                    "the CLI post",
                )


async def test_offline_edits_merge_when_the_relay_comes_back(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    async with peers(tmp_path, 2, relays=[url]) as (alice, bob):
        async with running_relay(tmp_path / "relay", port=port):
            room, invite = alice.workspace.create_room("Offline")
            bob.workspace.join_room(invite.code)
            await eventually(lambda: bob.room_name(room.room_id) == "Offline", "the room")
        await eventually(
            lambda: (
                not any(link.connected.is_set() for p in (alice, bob) for link in p.engine.links)
            ),
            "both links down",
        )
        # both write while the relay is gone
        alice.workspace.board(room).post("alice offline", now=alice.workspace.now())
        bob_room = bob.workspace.find_room("Offline")
        bob.workspace.board(bob_room).post("bob offline", now=bob.workspace.now())
        async with running_relay(tmp_path / "relay", port=port):
            for peer in (alice, bob):
                await eventually(
                    lambda peer=peer: (
                        sorted(peer.posts(room.room_id)) == ["alice offline", "bob offline"]
                    ),
                    "the offline posts merged",
                )
        assert any(e["event"] == "link_down" for e in alice.events)


async def test_presence_travels_through_the_relay_and_leaves_with_its_peer(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        async with peers(tmp_path, 2, relays=[url]) as (alice, bob):
            room, invite = alice.workspace.create_room("Presence")
            bob.workspace.join_room(invite.code)
            await eventually(lambda: bob.room_name(room.room_id) == "Presence", "the room")
            alice.engine.set_presence(room.room_id, status="focusing", task="quarterly report")

            def alice_seen_by_bob() -> list[dict[str, Any]]:
                return [
                    p
                    for p in bob.engine.peers_present(room.room_id)
                    if p.get("user_id") == alice.workspace.user_id
                ]

            await eventually(lambda: bool(alice_seen_by_bob()), "alice's presence at bob")
            (seen,) = alice_seen_by_bob()
            assert (seen["status"], seen["task"]) == ("focusing", "quarterly report")
            await alice.engine.stop()  # alice's connection goes: the relay announces it
            await eventually(lambda: not alice_seen_by_bob(), "alice's presence removed")


async def test_direct_messages_through_a_relay_with_delivery_and_read_receipts(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        alice = EnginePeer(tmp_path / "alice", relays=[url])
        bob = EnginePeer(tmp_path / "bob", relays=[url])
        _, invite = alice.workspace.create_room("Team")
        bob.workspace.join_room(invite.code)
        await alice.engine.start()
        try:
            await eventually(alice.engine.links[0].connected.is_set, "alice online")
            # bob is offline: the relay keeps the envelope; members' keys come from the room
            async with running_bob(bob):
                await eventually(
                    lambda: bool(alice.workspace.contacts()), "bob's keys in the shared room"
                )
            message = alice.workspace.inbox.send(
                alice.workspace.contact(bob.workspace.user_id), "psst"
            )
            await eventually(lambda: _state(alice, message.id) == "sent", "the relay's receipt")
            async with running_bob(bob):
                await eventually(
                    lambda: (
                        [m.text for m in bob.workspace.inbox.conversation(alice.workspace.user_id)]
                        == ["psst"]
                    ),
                    "the message at bob",
                )
                await eventually(lambda: _state(alice, message.id) == "delivered", "delivered")
                bob.workspace.inbox.mark_read(alice.workspace.user_id)
                await eventually(lambda: _state(alice, message.id) == "read", "read")
            assert any(e["event"] == "dm_received" for e in bob.events)
        finally:
            await alice.engine.stop()


def _state(peer: EnginePeer, message_id: str) -> str:
    (message,) = [
        m
        for conversation in peer.workspace.inbox.conversations()
        for m in peer.workspace.inbox.conversation(conversation)
        if m.id == message_id
    ]
    return message.state


@asynccontextmanager
async def running_bob(bob: EnginePeer) -> AsyncIterator[None]:
    """Bob's engine for a while (a fresh one each time, as after a restart)."""
    bob.engine = SyncEngine(
        bob.workspace,
        relays=[link.url for link in bob.engine.links],
        events=bob.events.append,
        poll_seconds=0.05,
        backoff=lambda: Backoff(base=0.05, cap=0.5),
    )
    await bob.engine.start()
    try:
        yield
    finally:
        await bob.engine.stop()


async def test_nothing_is_lost_when_the_relay_process_is_killed_and_restarted(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    async with peers(tmp_path, 2, relays=[url]) as (alice, bob):
        room, invite = alice.workspace.create_room("Restarts")
        bob.workspace.join_room(invite.code)
        async with RelayProcess(tmp_path / "relay", port=port) as relay:
            await eventually(lambda: bob.room_name(room.room_id) == "Restarts", "the room")
            for i in range(20):
                alice.workspace.board(room).post(f"before {i}", now=alice.workspace.now())
            await eventually(lambda: len(bob.posts(room.room_id)) == 20, "the first posts")
            await relay.kill()  # kill -9: no drain
        alice.workspace.board(room).post("while it was down", now=alice.workspace.now())
        async with RelayProcess(tmp_path / "relay", port=port):
            await eventually(
                lambda: "while it was down" in bob.posts(room.room_id), "the post made offline"
            )
    # alice and bob are gone: a newcomer gets all 21 posts from the relay's storage alone
    async with (
        RelayProcess(tmp_path / "relay", port=port),
        peers(tmp_path / "late", 1, relays=[url]) as (carol,),
    ):
        carol.workspace.join_room(invite.code)
        await eventually(lambda: len(carol.posts(room.room_id)) == 21, "all 21 posts")


async def test_relays_added_and_removed_while_running(tmp_path: Path) -> None:
    """The settings' relay list changes while the app runs: the new relay gets every room at
    once, and a removed one is let go."""
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        alice = EnginePeer(tmp_path / "alice")  # no relay yet
        bob = EnginePeer(tmp_path / "bob", relays=[url])
        async with running(alice, bob):
            room, invite = alice.workspace.create_room("Added later")
            bob.workspace.join_room(invite.code)
            await poll(lambda: room.room_id in alice.engine.documents, "alice tracking the room")
            alice.engine.add_relay(url)
            alice.engine.add_relay(url)  # twice is once
            assert [link.url for link in alice.engine.links] == [url]
            await eventually(lambda: bob.room_name(room.room_id) == "Added later", "the room")
            await alice.engine.remove_relay(url)
            assert alice.engine.links == []
            alice.workspace.board(room).post("not sent", now=alice.workspace.now())
            bob_room = bob.workspace.find_room(room.room_id)
            bob.workspace.board(bob_room).post("still here", now=bob.workspace.now())
            alice.engine.add_relay(url)  # and back: both edits cross
            await eventually(lambda: "not sent" in bob.posts(room.room_id), "alice's post")
            await eventually(lambda: "still here" in alice.posts(room.room_id), "bob's post")
