"""A spoofed advert over real mDNS, in network namespaces: Mallory advertises Victor's user id
with her own address. The honest peer dials her, the handshake fails (she cannot sign as Victor)
and she receives no room proof and no document; the honest peers still sync with each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from focusmate.clock import SystemClock
from focusmate.workspace import Workspace
from tests.lan.netns import Child, Lan

pytestmark = [pytest.mark.netns, pytest.mark.slow]
DAEMON = "import sys; from ui.launcher import main; sys.exit(main(sys.argv[1:]))"
SPOOF_PORT = 7777  # inside a namespace of our own, any port is free

# Mallory: advertises ``_focusmate._tcp`` with TXT id=<victim> at her own address, and listens
# there as herself, reporting every frame a dialer sends her (JSON lines out; EOF on stdin stops).
MALLORY = """
import asyncio, json, secrets, sys
from websockets.asyncio.server import serve
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from focusmate.identity import Identity
from sync import control, handshake
from sync.lan import PEER_SERVER, lan_address

TYPE = "_focusmate._tcp.local."

def out(**event):
    print(json.dumps(event), flush=True)

async def main():
    address, victim, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    me = Identity.generate()

    async def honeypot(ws):
        out(event="dialled", by=ws.remote_address[0])
        await ws.send(control.encode(control.Challenge(
            nonce=handshake.new_nonce(), server=PEER_SERVER, time=0.0)))
        dialer = None
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    out(event="frame", kind="binary")
                    continue
                message = control.decode(frame)
                out(event="frame", kind=message.TYPE)
                if isinstance(message, control.Hello):
                    dialer = message.user_id
                elif isinstance(message, control.Challenge) and dialer is not None:
                    # the best she can do: a valid hello, but as herself
                    hello = handshake.answer(me, message, address=lan_address(dialer))
                    await ws.send(control.encode(hello))
                    await ws.send(control.encode(control.RoomProofs(proofs=())))
        finally:
            out(event="hung_up", code=ws.close_code)

    async with serve(honeypot, address, port, compression=None):
        zc = AsyncZeroconf(interfaces=[address])
        label = f"{victim[:5]}-{secrets.token_hex(6)}"
        info = AsyncServiceInfo(
            TYPE, f"{label}.{TYPE}", port=port, properties={"id": victim, "v": "1"},
            server=f"{label}.local.", parsed_addresses=[address],
        )
        await zc.async_register_service(info)
        out(event="advertised", user_id=victim, port=port)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.readline()
        await zc.async_close()

asyncio.run(main())
"""


async def test_a_spoofed_advert_leads_to_a_failed_handshake_and_no_room_data(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    net = make_lan(3)
    first, second = (Workspace(tmp_path / name, clock=SystemClock()) for name in ("a", "b"))
    # of two peers the smaller user id dials: Diane dials, Victor is the one impersonated
    diane, victor = sorted((first, second), key=lambda ws: ws.user_id)
    room, invite = victor.create_room("Not for Mallory")
    victor.board(room).post("the plan", now=victor.now())
    diane.join_room(invite.code)
    diane_host, victor_host, mallory_host = net.hosts

    mallory = await spawn(
        mallory_host.netns, MALLORY, mallory_host.address, victor.user_id, str(SPOOF_PORT),
        name="mallory",
    )  # fmt: skip
    await mallory.wait_for(lambda e: e.get("event") == "advertised", "mallory's advert")
    diane_daemon = await spawn(
        diane_host.netns, DAEMON, "--profile", str(diane.profile_dir), "daemon", name="diane"
    )
    # Diane finds "Victor" at Mallory's address, dials, and refuses what answers
    await diane_daemon.wait_for(
        lambda e: e.get("event") == "peer_discovered" and e.get("port") == SPOOF_PORT,
        "the spoofed advert",
    )
    refused = await diane_daemon.wait_for(
        lambda e: e.get("event") == "lan_refused" and e.get("peer") == victor.user_id,
        "the handshake with the impostor to fail",
    )
    assert "proved to be" in refused["reason"]
    await mallory.wait_for(lambda e: e.get("event") == "hung_up", "diane hanging up")

    # the real Victor appears; Diane and he sync as if Mallory were not there
    await spawn(
        victor_host.netns, DAEMON, "--profile", str(victor.profile_dir), "daemon", name="victor"
    )
    await diane_daemon.wait_for(
        lambda e: (
            e.get("event") == "post_received"
            and e.get("room_id") == room.room_id
            and e.get("body") == "the plan"
        ),
        "victor's post over the LAN",
    )
    diane.refresh()
    assert [p.body for p in diane.board(diane.find_room(room.room_id)).posts()] == ["the plan"]

    # all Mallory ever got from Diane: a hello (bound to Victor's id, useless to replay) and a
    # challenge; no room proofs, no documents, no offers
    frames = [e["kind"] for e in mallory.events if e.get("event") == "frame"]
    assert frames and set(frames) == {"hello", "challenge"}, frames  # (once per dial)
    assert not diane_daemon.matching(
        lambda e: e.get("event") == "link_up" and e.get("link") != f"lan:{victor.user_id}"
    )
