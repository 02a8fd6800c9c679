"""Headless peers on a LAN with no relay and no internet: real zeroconf, in namespaces."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from focusmate.clock import SystemClock
from focusmate.room import Room
from focusmate.timer import Command
from focusmate.workspace import Workspace
from tests.lan.netns import DEADLINE, IFACE, Child, Lan

pytestmark = pytest.mark.netns
DAEMON = "import sys; from ui.launcher import main; sys.exit(main(sys.argv[1:]))"


async def test_three_headless_peers_find_each_other_and_share_a_room_by_invite_code(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    net = make_lan(3)
    profiles = [tmp_path / name for name in ("alice", "bob", "carol")]
    alice = Workspace(profiles[0], clock=SystemClock())
    room, invite = alice.create_room("LAN only")
    workspaces = [alice]
    for profile in profiles[1:]:
        peer = Workspace(profile, clock=SystemClock())
        peer.join_room(invite.code)  # nothing but the code: the room arrives over the LAN
        workspaces.append(peer)
    users = [ws.user_id for ws in workspaces]
    daemons = [
        await spawn(host.netns, DAEMON, "--profile", str(profile), "daemon", name=profile.name)
        for host, profile in zip(net.hosts, profiles, strict=True)
    ]
    for daemon, me in zip(daemons, users, strict=True):
        for other in users:
            if other != me:
                await daemon.wait_for(
                    lambda e, other=other: (
                        e.get("event") == "peer_discovered" and e.get("peer") == other
                    ),
                    f"{other} discovered",
                )
    for profile in profiles[1:]:  # (a doc_synced between bob and carol can come first)
        await _until_posts(profile, room.room_id, [])  # the room itself reached them
    for ws in workspaces:  # as `focusmate post` would; each peer's daemon forwards its own
        ws.refresh()
        ws.board(ws.find_room(room.room_id)).post(f"hello from {ws.user_id}", now=ws.now())
    for daemon, me in zip(daemons, users, strict=True):
        for other in users:
            if other != me:
                await daemon.wait_for(
                    lambda e, other=other: (
                        e.get("event") == "post_received"
                        and e.get("room_id") == room.room_id
                        and e.get("body") == f"hello from {other}"
                    ),
                    f"{other}'s post",
                )
    await _presence_and_timer_are_shared(alice, room, daemons, users)


async def _presence_and_timer_are_shared(
    starter: Workspace, room: Room, daemons: list[Child], users: list[str]
) -> None:
    """Every daemon sees the others in the room; a timer started by ``starter`` runs on every
    peer to the same end, and everyone shows as focusing."""
    for daemon, me in zip(daemons, users, strict=True):
        others = sorted(u for u in users if u != me)
        await daemon.wait_for(
            lambda e, others=others: _present(e, room.room_id) == dict.fromkeys(others, "idle"),
            "the others present and idle",
        )
    marks = [len(d.events) for d in daemons]
    state = room.timer_command(Command.START, now=starter.now())  # `focusmate timer start`
    assert state.phase_started_at is not None
    ends_at = state.phase_started_at + room.settings.timer_config().focus_s
    for daemon, me, mark in zip(daemons, users, marks, strict=True):
        phase = await daemon.wait_for(
            lambda e: e.get("event") == "timer_phase" and e.get("status") == "running",
            "the timer running",
            since=mark,
        )
        assert phase["phase"] == "focus"
        assert abs(phase["ends_at"] - ends_at) < 0.05, (phase, ends_at)
        others = sorted(u for u in users if u != me)
        await daemon.wait_for(
            lambda e, others=others: _present(e, room.room_id) == dict.fromkeys(others, "focusing"),
            "everyone focusing",
            since=mark,
        )


def _present(event: dict[str, object], room_id: str) -> dict[str, str] | None:
    """A presence event's members of ``room_id`` as {user id: status}."""
    if event.get("event") != "presence" or event.get("room_id") != room_id:
        return None
    peers = event.get("peers")
    assert isinstance(peers, list)
    return {p["user_id"]: p["status"] for p in peers}


async def test_a_peer_that_stops_is_reported_lost_by_the_others(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    net = make_lan(2)
    profiles = [tmp_path / "alice", tmp_path / "bob"]
    users = [Workspace(profile, clock=SystemClock()).user_id for profile in profiles]
    alice, bob = [
        await spawn(host.netns, DAEMON, "--profile", str(profile), "daemon", name=profile.name)
        for host, profile in zip(net.hosts, profiles, strict=True)
    ]
    await alice.wait_for(
        lambda e: e.get("event") == "peer_discovered" and e.get("peer") == users[1], "bob"
    )
    bob.proc.terminate()  # SIGTERM: the daemon stops and says goodbye on mDNS
    await bob.proc.wait()
    await alice.wait_for(
        lambda e: e.get("event") == "peer_lost" and e.get("peer") == users[1], "bob lost"
    )


RELAY = "import sys; from relay.__main__ import main; sys.exit(main(sys.argv[1:]))"
RELAY_PORT = 18765  # inside a namespace of our own, any port is free


async def test_the_same_peers_through_a_relay_lose_nothing_across_its_restart(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    net = make_lan(4)
    relay_host, *hosts = net.hosts
    relay_args = ("--data-dir", str(tmp_path / "relay"), "serve", "--host", "0.0.0.0")
    relay_args += ("--port", str(RELAY_PORT))
    url = f"ws://{relay_host.address}:{RELAY_PORT}"
    profiles = [tmp_path / name for name in ("alice", "bob", "carol")]
    alice = Workspace(profiles[0], clock=SystemClock())
    room, invite = alice.create_room("Relayed")
    for profile in profiles[1:]:
        Workspace(profile, clock=SystemClock()).join_room(invite.code)
    relay = await spawn(relay_host.netns, RELAY, *relay_args, name="relay")
    daemons = [
        await spawn(
            host.netns,
            DAEMON,
            "--profile",
            str(p),
            "daemon",
            "--no-lan",
            "--relay",
            url,
            name=p.name,
        )
        for host, p in zip(hosts, profiles, strict=True)
    ]
    for daemon in daemons[1:]:
        await daemon.wait_for(
            lambda e: e.get("event") == "doc_synced" and e.get("doc_id") == room.room_id,
            "the room through the relay",
        )
    alice.board(room).post("through the relay", now=alice.now())
    for daemon in daemons[1:]:
        await daemon.wait_for(
            lambda e: e.get("event") == "post_received" and e.get("body") == "through the relay",
            "the post",
        )
    users = [Workspace(p, clock=SystemClock()).user_id for p in profiles]
    await _presence_and_timer_are_shared(alice, room, daemons, users)
    relay.proc.kill()  # kill -9, then start it again on the same data
    await relay.proc.wait()
    marks = [len(d.events) for d in daemons]
    await spawn(relay_host.netns, RELAY, *relay_args, name="relay again")
    for daemon, mark in zip(daemons, marks, strict=True):
        await daemon.wait_for(lambda e: e.get("event") == "link_up", "reconnected", since=mark)
    alice.board(room).post("after the restart", now=alice.now())
    for daemon in daemons[1:]:
        await daemon.wait_for(
            lambda e: e.get("event") == "post_received" and e.get("body") == "after the restart",
            "the post after the restart",
        )


async def test_a_partitioned_lan_heals_and_both_sides_edits_merge(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    net = make_lan(2)
    profiles = [tmp_path / "alice", tmp_path / "bob"]
    alice = Workspace(profiles[0], clock=SystemClock())
    room, invite = alice.create_room("Partition")
    bob = Workspace(profiles[1], clock=SystemClock())
    bob.join_room(invite.code)
    daemons = [
        await spawn(host.netns, DAEMON, "--profile", str(profile), "daemon", name=profile.name)
        for host, profile in zip(net.hosts, profiles, strict=True)
    ]
    await daemons[1].wait_for(
        lambda e: e.get("event") == "doc_synced" and e.get("doc_id") == room.room_id, "synced"
    )
    marks = [len(d.events) for d in daemons]
    bob_host = net.hosts[1]
    subprocess.run(["ip", "-n", bob_host.netns, "link", "set", IFACE, "down"], check=True)
    for daemon, mark in zip(daemons, marks, strict=True):  # both notice the link is gone
        await daemon.wait_for(lambda e: e.get("event") == "link_down", "link down", since=mark)
    alice.board(room).post("alice, cut off", now=alice.now())
    bob.refresh()  # (this test's handle on bob's profile: the daemon wrote the room there)
    bob.board(bob.find_room(room.room_id)).post("bob, cut off", now=bob.now())
    subprocess.run(["ip", "-n", bob_host.netns, "link", "set", IFACE, "up"], check=True)
    await daemons[1].wait_for(
        lambda e: e.get("event") == "post_received" and e.get("body") == "alice, cut off",
        "alice's post after the heal",
        since=marks[1],
    )
    await daemons[0].wait_for(
        lambda e: e.get("event") == "post_received" and e.get("body") == "bob, cut off",
        "bob's post after the heal",
        since=marks[0],
    )


async def test_a_long_offline_stretch_and_a_newcomer_catch_up_through_a_restarted_relay(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    """Carol is away while alice posts a few hundred times and carol writes offline; the relay is
    killed and restarted meanwhile. Carol comes back, dave joins fresh: all three end up with
    every post."""
    net = make_lan(4)
    relay_host, *hosts = net.hosts
    relay_args = ("--data-dir", str(tmp_path / "relay"), "serve", "--host", "0.0.0.0")
    relay_args += ("--port", str(RELAY_PORT))
    url = f"ws://{relay_host.address}:{RELAY_PORT}"
    alice_dir, carol_dir, dave_dir = (tmp_path / n for n in ("alice", "carol", "dave"))
    alice = Workspace(alice_dir, clock=SystemClock())
    room, invite = alice.create_room("Long week")
    carol = Workspace(carol_dir, clock=SystemClock())
    carol.join_room(invite.code)

    async def daemon(host_index: int, profile: Path) -> Child:
        args = ("--profile", str(profile), "daemon", "--no-lan", "--relay", url)
        return await spawn(hosts[host_index].netns, DAEMON, *args, name=profile.name)

    relay = await spawn(relay_host.netns, RELAY, *relay_args, name="relay")
    await daemon(0, alice_dir)
    carol_daemon = await daemon(1, carol_dir)
    await _until_posts(carol_dir, room.room_id, [])  # the room itself reached carol
    carol_daemon.proc.terminate()
    await carol_daemon.proc.wait()
    board = alice.board(room)
    for i in range(300):
        board.post(f"alice {i}", now=alice.now())
    carol.refresh()
    carol_board = carol.board(carol.find_room(room.room_id))
    for i in range(50):
        carol_board.post(f"carol {i}", now=carol.now())
    relay.proc.kill()
    await relay.proc.wait()
    await spawn(relay_host.netns, RELAY, *relay_args, name="relay again")
    await daemon(1, carol_dir)
    Workspace(dave_dir, clock=SystemClock()).join_room(invite.code)
    await daemon(2, dave_dir)
    everything = sorted([f"alice {i}" for i in range(300)] + [f"carol {i}" for i in range(50)])
    for profile in (alice_dir, carol_dir, dave_dir):
        await _until_posts(profile, room.room_id, everything)


async def _until_posts(profile: Path, room_id: str, expected: list[str]) -> None:
    """Poll ``profile``'s store (as a CLI would read it) until the room holds ``expected``."""
    with Workspace(profile, clock=SystemClock()) as ws:
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        bodies: list[str] = []
        while True:
            ws.refresh()
            room = next((r for r in ws.rooms() if r.room_id == room_id), None)
            if room is not None and room.exists:
                bodies = sorted(post.body for post in ws.board(room).posts())
                if bodies == expected:
                    return
            if loop.time() > end:
                state = "arrived" if room is not None and room.exists else "not arrived"
                raise AssertionError(
                    f"{profile.name}: room {state}, {len(bodies)} of {len(expected)} posts "
                    f"after {DEADLINE} s"
                )
            await asyncio.sleep(0.1)


async def test_a_daemon_with_lan_switched_off_in_settings_stays_off_the_lan(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    net = make_lan(2)
    profiles = {name: tmp_path / name for name in ("quiet", "other", "probe")}
    with Workspace(profiles["quiet"], clock=SystemClock()) as ws:
        ws.save_settings(ws.settings.replace(lan_enabled=False))
        quiet_id = ws.user_id
    hosts = {"quiet": net.hosts[0], "other": net.hosts[1], "probe": net.hosts[0]}
    daemons = {}
    for name, profile in profiles.items():  # the probe starts last, beside the quiet one
        daemons[name] = await spawn(
            hosts[name].netns, DAEMON, "--profile", str(profile), "daemon", name=name
        )
        await daemons[name].wait_for(lambda e: e.get("event") == "daemon_started", "started")
    assert daemons["quiet"].events[0]["lan_port"] is None  # no listener, so nothing to advertise
    await daemons["probe"].wait_for(lambda e: e.get("event") == "peer_discovered", "discovery")
    for name in ("other", "probe"):
        assert not daemons[name].matching(lambda e: e.get("peer") == quiet_id), name
    assert not daemons["quiet"].matching(lambda e: e.get("event") == "peer_discovered")
