"""Connection churn: 10k connect/disconnect cycles, and the relay's memory back to its baseline.

Issue 8, item 3 ("10k connect/disconnect cycles return memory to its baseline"). The subject is
the FocusMate relay run as a subprocess (``python -m relay serve --port 0`` via
``tests/integration/relaykit.RelayProcess``), with the per-address connect limits lifted
(``--limit connects_per_ip_per_second=…`` etc.: this harness reconnects far faster than any
user) and ``--idle-document-seconds 2`` so that rooms left empty unload within the run; the
anchor is the same relay's own baseline, measured after a warm-up in the same run.

One cycle: from one of ``--addresses`` loopback source addresses (127.1.x.y, as clients behind
many homes would be), open a websocket, then

* ``doc`` (most): ``/doc/<room>`` in one of ``--rooms`` rooms, the y-websocket sync (step 1 /
  step 2), every 4th cycle one small update (its own key), then a normal close;
* ``abrupt`` (every 10th): the same, then a TCP reset (``SO_LINGER`` 0) without a close frame;
* ``control`` (every 10th): ``/v1``, the identity handshake (challenge, signed hello,
  welcome), a subscription to a room, then a normal close.

``--concurrency`` (32) cycles run at a time. Phases: ``--warmup`` cycles (500), then the relay's
RSS once it is quiet and its rooms unloaded (the baseline), then ``--cycles`` (10,000; and
``--more`` further, default 10,000, to see whether growth continues), reading after each batch
the relay's ``VmRSS`` and ``VmHWM`` (``/proc/<pid>/status``) and its gauges (connections per
endpoint, documents in memory, from ``/metrics``) right after the cycles and again once idle
(rooms unloaded). Figures: RSS baseline → after cycles → after idle, as ratios to the baseline;
the gauges must all return to 0 and no cycle may fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `bench` (and the repo) importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycrdt import Doc, Map, TransactionEvent
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    LOOP_LAG,
    Result,
    Target,
    bench_parser,
    finish_details,
    histogram_delta,
    largest,
    metrics,
    proc_status,
    run_meta,
    tail,
)
from bench.flood_fairness import sync_empty
from bench.gc_storm import collections, probed_relay
from bench.machine import tree_cpu_seconds
from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from sync import control, handshake
from sync.ysync import SyncUpdate, encode_message
from tests.integration.relaykit import RelayProcess

BENCH_TIMEOUT_S = 480
NAME = "conn_churn"
MIB = 1024 * 1024
CYCLE_TIMEOUT_S = 15.0
IDLE_DOC_SECONDS = 2.0
CONNECTION_GAUGE = "focusmate_relay_connections"
DOCUMENTS_GAUGE = "focusmate_relay_documents_in_memory"
ADDRESS_GAUGE = "focusmate_relay_address_entries"


def log(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def source_address(i: int, pool: int) -> str:
    n = i % pool
    return f"127.1.{n // 250}.{2 + n % 250}"


def gauges(values: dict[str, float]) -> dict[str, float]:
    return {
        "doc_connections": values.get(f'{CONNECTION_GAUGE}{{endpoint="doc"}}', 0.0),
        "control_connections": values.get(f'{CONNECTION_GAUGE}{{endpoint="control"}}', 0.0),
        "documents_in_memory": values.get(DOCUMENTS_GAUGE, 0.0),
        "address_entries": values.get(ADDRESS_GAUGE, 0.0),
    }


class Churn:
    def __init__(self, relay: RelayProcess, args: argparse.Namespace) -> None:
        self.relay = relay
        self.args = args
        self.rooms = [new_room_secret() for _ in range(args.rooms)]
        self.identities = [Identity.generate() for _ in range(8)]
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failures: list[str] = []
        self.next = 0

    async def _open(self, path: str, address: str) -> ClientConnection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((address, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.relay.port))
        except BaseException:
            sock.close()
            raise
        return await connect(
            self.relay.url + path, sock=sock, compression=None, max_size=None, open_timeout=10
        )

    async def _sync(self, ws: ClientConnection, i: int) -> None:
        doc: Doc[Any] = Doc()
        updates: list[bytes] = []

        def keep(event: TransactionEvent) -> None:
            updates.append(event.update)

        doc.observe(keep)
        await sync_empty(ws)
        if i % 4 == 0:
            doc.get("m", type=Map)[f"k{i % 997}"] = i
            await ws.send(encode_message(SyncUpdate(updates[-1])))

    async def cycle(self, i: int) -> None:
        kind = "control" if i % 10 == 5 else "abrupt" if i % 10 == 0 else "doc"
        address = source_address(i, self.args.addresses)
        secret = self.rooms[i % len(self.rooms)]
        try:
            async with asyncio.timeout(CYCLE_TIMEOUT_S):
                if kind == "control":
                    await self._control(i, address, secret)
                else:
                    path = f"/doc/{room_id_for(secret)}?token={relay_token(secret)}"
                    ws = await self._open(path, address)
                    await self._sync(ws, i)
                    if kind == "abrupt":
                        sock = ws.transport.get_extra_info("socket")
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        ws.transport.abort()  # RST, no close frame
                    else:
                        await ws.close()
            self.done[kind] += 1
        except Exception as err:
            self.failed[kind] += 1
            if len(self.failures) < 20:
                self.failures.append(f"{kind} #{i}: {type(err).__name__}: {err}")

    async def _control(self, i: int, address: str, secret: bytes) -> None:
        ws = await self._open("/v1", address)
        challenge = control.decode(await ws.recv())
        assert isinstance(challenge, control.Challenge)
        identity = self.identities[i % len(self.identities)]
        await ws.send(control.encode(handshake.answer(identity, challenge, address=self.relay.url)))
        welcome = control.decode(await ws.recv())
        assert isinstance(welcome, control.Welcome), welcome
        doc_id = room_id_for(secret)
        await ws.send(control.encode(control.Subscribe(doc_id, relay_token(secret))))
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and isinstance(control.decode(frame), control.Subscribed):
                break
        await ws.close()

    async def run(self, count: int) -> float:
        """``count`` cycles, ``--concurrency`` at a time; returns the seconds taken."""
        start, end = self.next, self.next + count
        self.next = end
        counter = iter(range(start, end))
        started = time.monotonic()

        async def worker() -> None:
            for i in counter:
                await self.cycle(i)

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))
        return time.monotonic() - started


async def quiet_and_idle(relay: RelayProcess, limit_s: float) -> tuple[dict[str, float], float]:
    """Wait until no connection is open and no document is in memory (rooms unload after
    IDLE_DOC_SECONDS plus one housekeeping round); the gauges then, and the time waited."""
    started = time.monotonic()
    values = gauges(await metrics(relay.port))
    while any(values.values()) and time.monotonic() - started < limit_s:
        await asyncio.sleep(0.5)
        values = gauges(await metrics(relay.port))
    return values, time.monotonic() - started


def snapshot(relay: RelayProcess, label: str, cycles: int, **extra: Any) -> dict[str, Any]:
    status = proc_status(relay.pid)
    return {
        "at": label,
        "cycles": cycles,
        "rss_mib": status["VmRSS"] / MIB,
        "hwm_mib": status["VmHWM"] / MIB,
        "relay_cpu_s": tree_cpu_seconds([relay.pid]),
        "loadavg": os.getloadavg()[0],
        **extra,
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"points": []}
    # The relay runs through gc_storm's prelude: its collector policy, and a probe that writes
    # every full collection's pause when the relay exits.
    probe = workdir / "gc-probe.json"
    async with probed_relay(workdir / "relay", args.gc_policy, probe, IDLE_DOC_SECONDS) as relay:
        churn = Churn(relay, args)
        before_lag = await metrics(relay.port)
        await churn.run(args.warmup)
        idle, waited = await quiet_and_idle(relay, args.idle_max)
        report["points"].append(
            snapshot(relay, "baseline (warm, idle)", churn.next, idle_wait_s=waited, **idle)
        )
        for batch, count in enumerate([args.cycles] + ([args.more] if args.more else [])):
            seconds = await churn.run(count)
            busy = gauges(await metrics(relay.port))
            report["points"].append(
                snapshot(relay, f"after batch {batch + 1}", churn.next, seconds=seconds, **busy)
            )
            log(f"batch {batch + 1}: {count} cycles in {seconds:.1f} s")
            idle, waited = await quiet_and_idle(relay, args.idle_max)
            report["points"].append(
                snapshot(
                    relay, f"idle after batch {batch + 1}", churn.next, idle_wait_s=waited, **idle
                )
            )
            log(json.dumps(report["points"][-2:]))
        after_lag = await metrics(relay.port)
        lag = histogram_delta(before_lag, after_lag, LOOP_LAG)
        report["loop"] = {
            "stalls_over_50ms": tail(lag, 0.05),
            "largest_stall_le_s": largest(lag),
        }
        report["cycles"] = {"done": dict(churn.done), "failed": dict(churn.failed)}
        report["failures"] = churn.failures
        await relay.terminate()
    gc_figures = collections(probe)
    for key in ("full_collections", "longest_full_collection_ms"):
        report["loop"][key] = gc_figures[key]
    report["gc_policy"] = args.gc_policy
    return report


def summarise(report: dict[str, Any], args: argparse.Namespace) -> Result:
    points = report["points"]
    base = points[0]
    subject: dict[str, float] = {}
    anchor: dict[str, float] = {}
    units: dict[str, str] = {}
    for point in points[1:]:
        metric = f"RSS {point['at']} ({point['cycles'] - base['cycles']:,} cycles)"
        subject[metric] = point["rss_mib"]
        anchor[metric] = base["rss_mib"]
        units[metric] = "MiB"
    first_idle = next(p for p in points if p["at"] == "idle after batch 1")
    last_idle = [p for p in points if p["at"].startswith("idle after")][-1]
    subject["RSS after cycles and idle ÷ baseline"] = first_idle["rss_mib"] / base["rss_mib"]
    units["RSS after cycles and idle ÷ baseline"] = "×"
    subject["RSS growth per 1k cycles, last batch"] = (
        (last_idle["rss_mib"] - first_idle["rss_mib"])
        / max(1, (last_idle["cycles"] - first_idle["cycles"]) / 1000)
        if last_idle is not first_idle
        else 0.0
    )
    units["RSS growth per 1k cycles, last batch"] = "MiB"
    subject["gauges not back to 0"] = sum(
        1
        for p in points
        if p["at"].startswith("idle") or p["at"].startswith("baseline")
        for key in (
            "doc_connections",
            "control_connections",
            "documents_in_memory",
            "address_entries",
        )
        if p.get(key)
    )
    units["gauges not back to 0"] = "gauges"
    subject["failed cycles"] = sum(report["cycles"]["failed"].values())
    units["failed cycles"] = "cycles"
    subject["peak RSS (VmHWM)"] = points[-1]["hwm_mib"]
    units["peak RSS (VmHWM)"] = "MiB"
    total = sum(report["cycles"]["done"].values())
    notes = [
        f"{total:,} cycles done ({report['cycles']['done']}), "
        f"failed: {report['cycles']['failed']}; "
        f"{args.concurrency} at a time from {args.addresses} source addresses into "
        f"{args.rooms} rooms; the first {args.warmup} are the warm-up.",
        "Baseline: after the warm-up, with no connection open and every room unloaded "
        f"(--idle-document-seconds {IDLE_DOC_SECONDS:g}). RSS is VmRSS of the relay process.",
        f"Relay collector policy {report['gc_policy']} (bench/gc_storm.py); its event loop "
        f"during the run: {report['loop']}.",
        f"Load average at the start: {report['meta']['loadavg']}, at the end: "
        f"{report['meta']['loadavg_end']}.",
    ]
    notes += [f"failure: {f}" for f in report["failures"][:5]]
    return Result(
        name=NAME,
        title="Connection churn: relay memory after 10k connect/disconnect cycles",
        subject_name="FocusMate relay after the cycles",
        subject=subject,
        anchors={"same relay, warm baseline": anchor},
        units=units,
        targets=[
            Target("RSS after cycles and idle ÷ baseline", "<=", 1.10, "×"),
            Target("gauges not back to 0", "<=", 0, "gauges"),
            Target("failed cycles", "<=", 0, "cycles"),
        ],
        series={
            "relay RSS during churn": {
                "x": "connect/disconnect cycles",
                "y": "RSS (MiB)",
                "kind": "line",
                "data": {"VmRSS": [[p["cycles"], p["rss_mib"]] for p in points]},
            }
        },
        notes=notes,
        params={
            "warmup": args.warmup,
            "cycles": args.cycles,
            "more": args.more,
            "concurrency": args.concurrency,
            "addresses": args.addresses,
            "rooms": args.rooms,
            "loadavg": report["meta"]["loadavg"],
            "loadavg_end": report["meta"]["loadavg_end"],
        },
        quick=args.quick,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(NAME, __doc__, "smoke run: 200 + 1,000 cycles")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--more", type=int, default=10_000, help="a second batch (0: none)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--addresses", type=int, default=1000, help="source addresses")
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument(
        "--gc-policy",
        default="relay",
        choices=("relay", "cpython", "threshold", "freeze"),
        help="the relay's collector policy (see bench/gc_storm.py)",
    )
    parser.add_argument("--idle-max", type=float, default=30.0, help="max wait for idle gauges")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.cycles, args.more = 200, 1000, 0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    meta = run_meta()
    with tempfile.TemporaryDirectory(prefix="conn-churn-") as tmp:
        report = asyncio.run(run(args, Path(tmp)))
    out = finish_details(NAME, args, report, meta, started)
    path = summarise(report, args).write(out)
    log(f"wrote {path} ({meta['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
