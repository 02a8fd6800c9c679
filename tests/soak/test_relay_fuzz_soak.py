"""The hostile stream of ``tests/integration/test_relay_fuzz.py``, long, against a relay process.

Skipped unless ``FOCUSMATE_SOAK=1`` (minutes of CPU). ``FOCUSMATE_SOAK_CONNECTIONS`` sets how
many hostile connections (20,000 by default) and ``FOCUSMATE_FUZZ_SEED`` the seed. The relay runs
as its own process, so its memory (``VmRSS``) is measured alone: after a warm-up of 1,000
hostile connections (allocator pools and caches settle), then at the end, when the relay must
be back to the two legitimate connections. Prints the inputs tried, close codes, memory and the
legitimate clients' sync latency during the storm.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

from focusmate.invite import new_room_secret
from tests.integration.hostile import (
    HOSTILE_ADDRESSES,
    MAX_FRAME,
    Context,
    Tally,
    legit_round,
    plan,
    real_updates,
    run_hostile,
)
from tests.integration.relaykit import DocClient, RelayProcess

CONNECTIONS = int(os.environ.get("FOCUSMATE_SOAK_CONNECTIONS", "20000"))
SEED = int(os.environ.get("FOCUSMATE_FUZZ_SEED", "8"))
WARM_UP = 1000
BATCH = 40
LIMITS = [
    f"max_frame_bytes={MAX_FRAME}",
    "max_connections_per_ip=10000",
    "connects_per_ip_per_second=100000",
    "connect_burst_per_ip=100000",
    "auth_failures_per_ip_per_minute=1000000000",
    "handshake_seconds=5",
]


def vm_rss(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of ``pid`` in bytes: ``VmRSS``, or ``RssAnon`` (heap, not file pages)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def http_get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        body: bytes = response.read()
        return body


def open_connections(port: int) -> float:
    total = 0.0
    for line in http_get(port, "/metrics").decode().splitlines():
        if line.startswith("focusmate_relay_connections{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_twenty_thousand_hostile_connections(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    tally = Tally()
    latencies: list[float] = []
    args = [arg for limit in LIMITS for arg in ("--limit", limit)]
    async with RelayProcess(tmp_path / "relay", args=args) as relay:
        secret = new_room_secret()
        a = await DocClient.open(relay.doc_url(secret))
        b = await DocClient.open(relay.doc_url(secret))
        await a.synced.wait()
        await b.synced.wait()
        await legit_round(a, b, "warm-up")
        ctx = Context(secret, a.doc.client_id, real_updates(rng, 8), [])
        ctx.states = [a.doc.get_state(), b"\x00", b"\x01\x01\x00"]
        rss_start = vm_rss(relay.pid)
        rss_warm = 0
        started = time.perf_counter()
        done = 0
        while done < CONNECTIONS:
            plans = [plan(ctx, rng) for _ in range(min(BATCH, CONNECTIONS - done))]
            await asyncio.gather(*(run_hostile(relay.port, p, tally) for p in plans))
            done += len(plans)
            latencies.append(await legit_round(a, b, f"a{done}"))
            latencies.append(await legit_round(b, a, f"b{done}"))
            if done % 1000 < BATCH:
                health = json.loads(await asyncio.to_thread(http_get, relay.port, "/healthz"))
                assert health["status"] == "ok"
                rss, anon = vm_rss(relay.pid), vm_rss(relay.pid, "RssAnon")
                if not rss_warm and done >= WARM_UP:
                    rss_warm = rss
                print(
                    f"{done} connections, {tally.frames} frames, RSS {rss / 2**20:.1f} MiB "
                    f"(anonymous {anon / 2**20:.1f}), closes {dict(tally.close_codes)}",
                    flush=True,
                )
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 10
        while await asyncio.to_thread(open_connections, relay.port) != 2:
            assert time.monotonic() < deadline, "hostile connections still open"
            await asyncio.sleep(0.05)
        rss_end = vm_rss(relay.pid)
        assert a.map().to_py() == b.map().to_py()
        await a.close()
        await b.close()
    lat = sorted(latencies)
    figures: dict[str, Any] = {
        "hostile_connections": tally.connections,
        "frames": tally.frames,
        "source_addresses": len(HOSTILE_ADDRESSES),
        "close_codes": {str(code): n for code, n in sorted(tally.close_codes.items(), key=str)},
        "refused_before_upgrade": tally.refused,
        "seconds": round(elapsed, 1),
        "rss_start_mib": round(rss_start / 2**20, 1),
        "rss_after_warm_up_mib": round(rss_warm / 2**20, 1),
        "rss_end_mib": round(rss_end / 2**20, 1),
        "legit_sync_ms": {
            "p50": round(lat[len(lat) // 2] * 1000, 2),
            "p99": round(lat[int(len(lat) * 0.99)] * 1000, 2),
            "max": round(lat[-1] * 1000, 2),
        },
    }
    print(json.dumps(figures, indent=2))
    assert tally.close_codes[1011] == 0
    assert rss_end - rss_warm < 32 * 2**20, "the relay's memory grew with hostile connections"
