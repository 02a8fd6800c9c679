"""The doctor's LAN check: advertise briefly with zeroconf (:mod:`sync.discovery`) and count
the FocusMate peers that answer.

The advert uses a throwaway identity, never the profile's: a second advert under the user's own
id would make peers think the running app went away when the doctor's advert does. Peers may
see an unnamed peer appear and leave again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping, Sequence

import zeroconf

from focusmate.doctor_report import Check, Status
from focusmate.identity import Identity
from sync.discovery import Discovery, PeerAdvert, local_ipv4_addresses

LAN_WAIT_SECONDS = 3.0

LAN_HELP = (
    "If a teammate runs FocusMate on this network and is not found: both machines must be on "
    "the same network (guest Wi-Fi, VPNs and some office networks block the multicast "
    "discovery uses), LAN discovery must be on for both (`focusmate settings set lan_enabled "
    "on`), and firewalls must let mDNS through (UDP port 5353). A relay works across networks."
)


async def check_lan(
    *,
    timeout: float,
    wait: float = LAN_WAIT_SECONDS,
    own_user_id: str | None = None,
    interfaces: Sequence[str] | None = None,
) -> list[Check]:
    """Advertise briefly under a throwaway identity and count who answers within ``wait``;
    ``timeout`` bounds starting discovery."""
    if interfaces is None and not local_ipv4_addresses():
        return [
            Check(
                "lan",
                Status.WARN,
                "this machine has no network address besides loopback",
                "Connect to a network to meet peers on it.",
            )
        ]
    identity = Identity.generate()
    # A port of our own that refuses connections: peers that dial our advert fail at once.
    with socket.socket() as placeholder:
        placeholder.bind(("", 0))
        discovery = Discovery(
            identity.user_id,
            placeholder.getsockname()[1],
            on_found=lambda advert: None,
            on_lost=lambda instance: None,
            interfaces=interfaces,
        )
        try:
            await asyncio.wait_for(discovery.start(), timeout)
        except (OSError, zeroconf.Error, TimeoutError) as err:
            with contextlib.suppress(Exception):
                await discovery.stop()
            return [
                Check(
                    "lan advert",
                    Status.FAIL,
                    "could not start LAN discovery or register our advert: "
                    f"{err or type(err).__name__}",
                    "Check that this machine is on a network and that no firewall blocks "
                    "mDNS (UDP port 5353). To sync without the LAN, use a relay and turn LAN "
                    "discovery off: `focusmate settings set lan_enabled off`.",
                )
            ]
        try:
            await asyncio.sleep(wait)  # adverts come when they come: listen for a fixed window
            peers = discovery.peers
        finally:
            await discovery.stop()
    return [
        Check(
            "lan advert",
            Status.OK,
            "LAN discovery started and our advert was registered",
            data={"service": discovery.instance},
        ),
        _peers_check(peers, own_user_id=own_user_id, wait=wait),
    ]


def _peers_check(peers: Mapping[str, PeerAdvert], *, own_user_id: str | None, wait: float) -> Check:
    users = [advert.user_id for advert in peers.values()]
    own = sum(user == own_user_id for user in users)
    data = {"peers": len(users), "own": own, "user_ids": sorted(set(users))}
    if not users:
        return Check(
            "lan peers",
            Status.WARN,
            f"no FocusMate peers answered within {wait:g} s (fine if no one else here runs it)",
            LAN_HELP,
            data,
        )
    noun = "peer" if len(users) == 1 else "peers"
    detail = f"{len(users)} FocusMate {noun} answered within {wait:g} s"
    if own:
        detail += f" ({own} of them you: this profile's app, or another device of yours)"
    return Check("lan peers", Status.OK, detail, data=data)
