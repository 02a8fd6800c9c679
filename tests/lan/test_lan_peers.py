"""Headless peers on a LAN with no relay and no internet: real zeroconf, in namespaces."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from focusmate.clock import SystemClock
from focusmate.workspace import Workspace
from tests.lan.netns import IFACE, Child, Lan

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
    users = [alice.user_id]
    for profile in profiles[1:]:
        peer = Workspace(profile, clock=SystemClock())
        peer.join_room(invite.code)  # nothing but the code: the room arrives over the LAN
        users.append(peer.user_id)
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
    for daemon in daemons[1:]:
        await daemon.wait_for(
            lambda e: e.get("event") == "doc_synced" and e.get("doc_id") == room.room_id,
            "the room synced over the LAN",
        )
    alice.board(room).post("hello, LAN", now=alice.now())  # alice's daemon forwards it
    for daemon in daemons[1:]:
        post = await daemon.wait_for(
            lambda e: e.get("event") == "post_received" and e.get("room_id") == room.room_id,
            "alice's post",
        )
        assert post["body"] == "hello, LAN"


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
