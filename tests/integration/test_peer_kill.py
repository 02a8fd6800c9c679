"""``kill -9`` of a peer mid-sync, through a real relay process (the relay's own kill is in
test_relay_durability.py).

Alice's process syncs through the relay while it posts as fast as it can; it is killed mid-stream
and restarted on the same profile. Bob's daemon is killed while it catches up, and restarted.
Every post Alice's store committed must reach both, once, and both profiles must stay sound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from focusmate.clock import SystemClock
from focusmate.workspace import Workspace
from tests.integration.relaykit import DEADLINE, REPO, RelayProcess
from tests.integration.synckit import DaemonProcess, within

pytestmark = pytest.mark.slow
POSTS = 2_000  # far more than are written before the kill
KILL_AFTER = 60  # posts Bob has before Alice is killed
OFFLINE_POSTS = 150  # posts Alice makes while Bob is down
LIVE_POSTS = 300  # then while he catches up, is killed and restarts

# Alice's app: the sync engine on her profile, posting as fast as it commits, one line per post
# once it is committed (so the test knows what her store holds for sure).
WRITER = r"""
import asyncio, json, sys
from pathlib import Path
from focusmate.clock import SystemClock
from focusmate.workspace import Workspace
from sync.engine import SyncEngine

async def main() -> None:
    ws = Workspace(Path(sys.argv[1]), clock=SystemClock())
    engine = SyncEngine(ws, relays=[sys.argv[2]], events=lambda e: None, poll_seconds=0.05)
    await engine.start()
    await asyncio.wait_for(engine.links[0].connected.wait(), 10)
    board = ws.board(ws.find_room(sys.argv[3]))
    for i in range(int(sys.argv[4])):
        body = f"alice {i}"
        board.post(body, now=ws.now())
        print(json.dumps({"committed": body}), flush=True)
        await asyncio.sleep(0)  # let the engine send it

asyncio.run(main())
"""


def posts_of(profile: Path, room_id: str) -> list[str]:
    """The room's post bodies in this profile's store, as another process would read them."""
    ws = Workspace(profile, clock=SystemClock())
    try:
        return [post.body for post in ws.board(ws.find_room(room_id)).posts()]
    finally:
        ws.store.close()


def integrity(profile: Path) -> list[str]:
    ws = Workspace(profile, clock=SystemClock())
    try:
        return ws.store.integrity_problems()
    finally:
        ws.store.close()


def assert_once_each(bodies: list[str]) -> None:
    duplicated = [body for body, n in Counter(bodies).items() if n > 1]
    assert not duplicated, f"posts shown twice: {duplicated[:5]}"


async def kill_alice_while_posting(
    relay: RelayProcess, alice_dir: Path, bob: DaemonProcess, room_id: str
) -> tuple[list[str], list[str]]:
    """Alice's app posts and syncs; she is killed once Bob has some of her posts. Returns what
    she reported committed and what her store holds."""
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(alice_dir), relay.url, room_id, str(POSTS),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await bob.expect_count("post_received", KILL_AFTER, deadline=DEADLINE * 2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (it died by itself: the test fails)
            writer.kill()
    out, _ = await asyncio.wait_for(writer.communicate(), DEADLINE)
    assert writer.returncode == -signal.SIGKILL
    printed = [json.loads(line)["committed"] for line in out.decode().splitlines()]
    assert KILL_AFTER <= len(printed) < POSTS, "the kill should land mid-stream"
    committed = posts_of(alice_dir, room_id)
    assert set(printed) <= set(committed)  # nothing her store acknowledged is lost
    assert integrity(alice_dir) == []
    return printed, committed


async def kill_bob_while_catching_up(bob: DaemonProcess, alice_dir: Path, room_id: str) -> int:
    """Bob is down while Alice posts; he restarts and is killed while he catches up and her
    posts keep streaming in. Returns how many of the new posts he had at the kill."""
    before = len(posts_of(bob.profile, room_id))
    await bob.kill()
    ws = Workspace(alice_dir, clock=SystemClock())  # a CLI beside Alice's daemon
    board = ws.board(ws.find_room(room_id))
    for i in range(OFFLINE_POSTS):
        board.post(f"while bob is away {i}", now=ws.now())

    async def post_live() -> None:
        for i in range(LIVE_POSTS):
            board.post(f"live {i}", now=ws.now())
            await asyncio.sleep(0.01)

    live = asyncio.create_task(post_live())
    try:
        await bob.start()  # restarted on the same profile
        await bob.expect_count("post_received", KILL_AFTER, deadline=DEADLINE * 2)
        await bob.kill()
        at_kill = len(posts_of(bob.profile, room_id)) - before
        assert integrity(bob.profile) == []
    finally:
        await live
        ws.store.close()
    return at_kill


async def test_peers_killed_mid_sync_restart_and_converge_with_every_committed_post(
    tmp_path: Path,
) -> None:
    alice_dir, bob_dir = tmp_path / "alice", tmp_path / "bob"
    alice = Workspace(alice_dir, clock=SystemClock())
    room, invite = alice.create_room("Kill -9")
    alice.store.close()
    bob = Workspace(bob_dir, clock=SystemClock())
    bob.join_room(invite.code)
    bob.store.close()
    room_id = room.room_id

    async with RelayProcess(tmp_path / "relay") as relay:
        alice_daemon = DaemonProcess(alice_dir, relays=[relay.url])
        bob_daemon = DaemonProcess(bob_dir, relays=[relay.url])
        try:
            await bob_daemon.start()
            await bob_daemon.expect("doc_synced", doc_id=room_id)
            printed, committed = await kill_alice_while_posting(
                relay, alice_dir, bob_daemon, room_id
            )
            await alice_daemon.start()  # her profile, restarted as a daemon
            await within(
                20,
                lambda: sorted(posts_of(bob_dir, room_id)) == sorted(committed),
                f"Bob to have Alice's {len(committed)} committed posts",
                interval=0.1,
            )
            bob_at_kill = await kill_bob_while_catching_up(bob_daemon, alice_dir, room_id)
            await bob_daemon.start()
            everything = posts_of(alice_dir, room_id)
            assert len(everything) == len(committed) + OFFLINE_POSTS + LIVE_POSTS
            await within(
                20,
                lambda: sorted(posts_of(bob_dir, room_id)) == sorted(everything),
                "Bob to catch up after his restart",
                interval=0.1,
            )
        finally:
            for daemon in (alice_daemon, bob_daemon):
                await daemon.close()

    for profile in (alice_dir, bob_dir):
        bodies = posts_of(profile, room_id)
        assert sorted(bodies) == sorted(everything)
        assert_once_each(bodies)
        assert integrity(profile) == []
    print(
        f"alice committed {len(printed)} printed / {len(committed)} stored before her kill; "
        f"bob had {bob_at_kill} of {OFFLINE_POSTS + LIVE_POSTS} later posts at his kill; "
        f"{len(everything)} posts converged"
    )
