"""Peers whose clocks disagree by seconds still show the same remaining time (within 50 ms):
through a relay they count on the relay's clock, on a LAN on one agreed peer's clock."""

from __future__ import annotations

import time
from pathlib import Path

from focusmate.timer import Command
from tests.integration.relaykit import poll, running_relay
from tests.integration.synckit import EnginePeer, SkewedClock, running

AGREEMENT = 0.05  # seconds


def remaining(peer: EnginePeer, room_id: str) -> float:
    peer.workspace.refresh()
    room = peer.workspace.find_room(room_id)
    return room.timer_view(now=peer.engine.now_for(room_id)).remaining_s


def status(peer: EnginePeer, room_id: str) -> str:
    peer.workspace.refresh()
    room = peer.workspace.find_room(room_id)
    return room.timer_state.status.value if room.exists else "missing"


def _agree(a: EnginePeer, b: EnginePeer, room_id: str) -> float:
    """The two displays, read back to back; their difference."""
    return abs(remaining(a, room_id) - remaining(b, room_id))


async def test_through_a_relay_skewed_peers_count_down_together(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        url = f"ws://127.0.0.1:{relay.port}"
        alice = EnginePeer(tmp_path / "alice", clock=SkewedClock(-4.0), relays=[url])
        bob = EnginePeer(tmp_path / "bob", clock=SkewedClock(+9.0), relays=[url])
        async with running(alice, bob):
            room, invite = alice.workspace.create_room("Skewed")
            bob.workspace.join_room(invite.code)
            await poll(lambda: status(bob, room.room_id) == "idle", "the room at bob")
            for peer in (alice, bob):
                link = peer.engine.links[0]
                await poll(lambda link=link: link.offset.offset is not None, "a clock sample")
            state = await alice.engine.timer_command(room.room_id, Command.START)
            assert abs(state.phase_started_at - time.time()) < 1  # the relay's clock
            await poll(lambda: status(bob, room.room_id) == "running", "the timer at bob")
            assert _agree(alice, bob, room.room_id) < AGREEMENT


async def test_on_a_lan_skewed_peers_agree_on_one_timebase(tmp_path: Path) -> None:
    alice = EnginePeer(tmp_path / "alice", clock=SkewedClock(0.0), lan=True)
    bob = EnginePeer(tmp_path / "bob", clock=SkewedClock(+7.3), lan=True)
    async with running(alice, bob):
        room, invite = alice.workspace.create_room("LAN clocks")
        bob.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in bob.engine.documents, "bob tracking the room")
        dialer, listener = sorted((alice, bob), key=lambda p: p.workspace.user_id)
        assert listener.engine.lan is not None
        dialer.engine.dial(listener.workspace.user_id, "127.0.0.1", listener.engine.lan.port)
        await poll(lambda: status(bob, room.room_id) == "idle", "the room at bob")
        for peer in (alice, bob):
            await poll(
                lambda peer=peer: (
                    all(len(s.offset) >= 4 for s in peer.engine.lan_sessions)
                    and bool(peer.engine.lan_sessions)
                ),
                "clock samples",
            )
        # the host is the peer with the smaller user id; the other counts on its clock
        offset = bob.engine.now_for(room.room_id) - alice.engine.now_for(room.room_id)
        assert abs(offset) < AGREEMENT
        await bob.engine.timer_command(room.room_id, Command.START)
        await poll(lambda: status(alice, room.room_id) == "running", "the timer at alice")
        assert _agree(alice, bob, room.room_id) < AGREEMENT
