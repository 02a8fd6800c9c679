"""``focusmate doctor``'s LAN check on a real segment: real zeroconf, in network namespaces."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from focusmate.clock import SystemClock
from focusmate.workspace import Workspace
from tests.lan.netns import DEADLINE, REPO, Child, Lan

pytestmark = [pytest.mark.netns, pytest.mark.slow]
LAUNCHER = "import sys; from ui.launcher import main; sys.exit(main(sys.argv[1:]))"


async def run_in(netns: str, *args: str) -> tuple[int, str, str]:
    """``focusmate ARGS`` inside a namespace, to completion."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("FOCUSMATE_PASSPHRASE", None)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-c", LAUNCHER, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 4 * DEADLINE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_doctor_finds_the_one_peer_running_on_the_lan(
    make_lan: Callable[[int], Lan],
    spawn: Callable[..., Awaitable[Child]],
    tmp_path: Path,
) -> None:
    peer_host, doctor_host = make_lan(2).hosts
    peer_profile, my_profile = tmp_path / "peer", tmp_path / "me"
    peer_user = Workspace(peer_profile, clock=SystemClock()).user_id
    my_user = Workspace(my_profile, clock=SystemClock()).user_id
    daemon = await spawn(peer_host.netns, LAUNCHER, "--profile", str(peer_profile), "daemon")
    await daemon.wait_for(lambda e: e.get("event") == "daemon_started", "the daemon up")

    code, out, err = await run_in(
        doctor_host.netns, "--profile", str(my_profile), "doctor", "--json", "--lan-wait", "5"
    )
    assert code == 0, (out, err)
    checks: dict[str, Any] = {c["check"]: c for c in json.loads(out)["checks"]}
    assert checks["lan advert"]["status"] == "OK"
    peers = checks["lan peers"]
    assert peers["status"] == "OK", peers
    assert peers["data"]["peers"] == 1 and peers["data"]["user_ids"] == [peer_user]
    assert peers["data"]["own"] == 0 and my_user not in peers["data"]["user_ids"]
    # The doctor advertised under a throwaway identity, never the profile's, and said goodbye:
    # the peer saw a stranger come and go.
    assert not daemon.matching(lambda e: e.get("peer") == my_user)
    (seen,) = daemon.matching(lambda e: e.get("event") == "peer_discovered")
    await daemon.wait_for(
        lambda e: e.get("event") == "peer_lost" and e.get("peer") == seen["peer"],
        "the doctor's advert gone",
    )
    daemon.proc.terminate()
    await daemon.proc.wait()


async def test_with_no_one_else_on_the_lan_the_doctor_warns_with_what_to_check(
    make_lan: Callable[[int], Lan], tmp_path: Path
) -> None:
    (host,) = make_lan(1).hosts
    profile = tmp_path / "me"
    Workspace(profile, clock=SystemClock()).close()
    code, out, err = await run_in(
        host.netns, "--profile", str(profile), "doctor", "--json", "--lan-wait", "1"
    )
    assert code == 0, (out, err)  # a warning only
    checks: dict[str, Any] = {c["check"]: c for c in json.loads(out)["checks"]}
    assert checks["lan advert"]["status"] == "OK"
    assert checks["lan peers"]["status"] == "WARN" and checks["lan peers"]["data"]["peers"] == 0
    assert "UDP port 5353" in checks["lan peers"]["next_step"]
