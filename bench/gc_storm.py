"""Garbage-collection stalls while 10k clients connect, per collector policy of the relay.

Issue 8, item 3, follow-up of ``bench/conn_scaling_notes.md``: CPython's full (generation-2)
collections walk every tracked object, and a relay holding 10k connections has millions, so each
one stalls every room for a long moment. Policies compared, each on a fresh relay subprocess
(``python -c <prelude> … serve``, the prelude sets the policy, then runs ``relay.__main__``
exactly as ``python -m relay`` does, start-up freeze included):

* ``cpython``: CPython's thresholds (700, 10, 10), as the relay had them before;
* ``threshold``: only ``gc.set_threshold(700, 10, 1000)``: a full collection only after 1,000
  younger ones (the 25 % growth rule of CPython 3.11 still applies on top);
* ``freeze``: CPython's thresholds, and ``gc.freeze()`` once a second: what survived so far
  leaves the collections (for good: its garbage is never collected);
* ``relay``: what ``relay/server.py`` does now: the raised threshold, plus a full collection in
  the housekeeping pass once a quarter as many connections as are open (at least 1,000) have
  closed since the last one.

Every relay keeps its start-up ``gc.freeze()`` (``relay/__main__.py``).

Load: ``--conns`` (10,000) y-websocket clients in rooms of 5, 64 connecting at a time, each
synced (step 1 / step 2) and left open; meanwhile a calm room of 2 clients exchanges an update
every 50 ms, and its delivery latency is the stall a user sees. Then every client disconnects and
the relay idles (rooms unload). Figures per policy: the longest full collection and their count
(a ``gc.callbacks`` probe in the relay process, written when it exits), the relay's largest
event-loop stall (its ``focusmate_relay_event_loop_lag_seconds``, bucket bound), the calm room's
p99 / max latency during the storm, connect time, and RSS at 10k connections and after everyone
left. The anchors are the other policies. ~4 minutes for the default two policies (cpython,
relay); ``--policies cpython,threshold,freeze,relay`` for all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `bench` (and the repo) importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import ClientConnection

from bench.common import (
    LIFTED_LIMITS,
    LOOP_LAG,
    Result,
    bench_parser,
    histogram_delta,
    largest,
    limit_args,
    loadavg,
    metrics,
    out_directory,
    percentile,
    proc_status,
    rss_bytes,
    run_meta,
    tail,
    write_details,
)
from bench.flood_fairness import UpdateMaker, open_synced, room_url
from focusmate.invite import new_room_secret
from sync.ysync import SyncUpdate, decode_message, encode_message
from tests.integration.relaykit import RelayProcess

BENCH_TIMEOUT_S = 900  # ~4 min on a quiet machine, twice that on a loaded one
NAME = "gc_storm"
MIB = 1024 * 1024
POLICIES = ("cpython", "threshold", "freeze", "relay")
PRELUDE = """
import atexit, gc, json, os, sys, threading, time
policy = os.environ["GC_STORM_POLICY"]
pauses = []
started = [0.0]
def probe(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        pauses.append([time.time(), time.perf_counter() - started[0]])
gc.callbacks.append(probe)
import relay.server
if policy != "relay":  # the relay's own policy off: CPython's thresholds, no extra collections
    relay.server.FULL_COLLECTION_THRESHOLD = 10
    relay.server.CLOSED_BEFORE_COLLECTING = 10**12
if policy == "threshold":
    relay.server.FULL_COLLECTION_THRESHOLD = 1000
elif policy == "freeze":
    def freezer():
        while True:
            time.sleep(1.0)
            gc.freeze()
    threading.Thread(target=freezer, daemon=True).start()
def report():
    with open(os.environ["GC_STORM_OUT"], "w") as f:
        json.dump({"pauses": pauses, "frozen": gc.get_freeze_count()}, f)
atexit.register(report)
import runpy
sys.argv[0] = "relay"
runpy.run_module("relay", run_name="__main__", alter_sys=True)
"""


def log(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def probed_relay(
    directory: Path, policy: str, probe: Path, idle_document_seconds: float = 2.0
) -> RelayProcess:
    """A relay subprocess run through :data:`PRELUDE`: collector ``policy``, per-address limits
    lifted, rooms unloaded after ``idle_document_seconds``; its full collections' pauses go to
    ``probe`` when it exits (see :func:`collections`)."""
    args = [*limit_args(LIFTED_LIMITS), "--idle-document-seconds", f"{idle_document_seconds:g}"]
    env = {"GC_STORM_POLICY": policy, "GC_STORM_OUT": str(probe)}
    return RelayProcess(directory, args=args, env=env, command=[sys.executable, "-c", PRELUDE])


def collections(probe: Path, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
    """The full collections a :func:`probed_relay` wrote to ``probe``, between ``since`` and
    ``until`` (wall clock): their count, the longest and the total (ms), and how many objects
    were frozen at its exit."""
    written = json.loads(probe.read_text())
    pauses = [pause for at, pause in written["pauses"] if since <= at <= until]
    return {
        "full_collections": len(pauses),
        "longest_full_collection_ms": max(pauses, default=0.0) * 1000,
        "full_collection_total_ms": sum(pauses) * 1000,
        "frozen_objects_at_exit": written["frozen"],
    }


async def calm_pair(url: str, period: float, samples: list[float], stop: asyncio.Event) -> None:
    """Two clients in a room: one writes every ``period`` s, the other times each delivery."""
    writer = await open_synced(url, "127.0.0.2")
    reader = await open_synced(url, "127.0.0.3")
    maker = UpdateMaker()
    sent: dict[bytes, float] = {}

    async def read(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                message = decode_message(frame)  # type: ignore[arg-type]
                if isinstance(message, SyncUpdate) and message.update in sent:
                    samples.append(time.monotonic() - sent[message.update])

    task = asyncio.create_task(read(reader))
    seq = 0
    while not stop.is_set():
        update = maker.make("t", str(seq))
        sent[update] = time.monotonic()
        await writer.send(encode_message(SyncUpdate(update)))
        seq += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
    await asyncio.sleep(0.5)
    task.cancel()
    for ws in (writer, reader):
        await ws.close()


async def storm(relay: RelayProcess, conns: int, room_size: int) -> tuple[list[Any], float]:
    """``conns`` synced clients in rooms of ``room_size``, 64 connecting at a time."""
    secrets_ = [new_room_secret() for _ in range((conns + room_size - 1) // room_size)]
    opened: list[Any] = []
    counter = iter(range(conns))
    started = time.monotonic()

    async def worker() -> None:
        for i in counter:
            n = i % 60000
            address = f"127.2.{n // 250}.{2 + n % 250}"
            url = room_url(relay.url, secrets_[i // room_size])
            opened.append(await open_synced(url, address))

    await asyncio.gather(*(worker() for _ in range(64)))
    return opened, time.monotonic() - started


async def one_storm(relay: RelayProcess, args: argparse.Namespace, suffix: str) -> dict[str, Any]:
    """Connect everyone while a calm room talks, then everyone leaves; the figures, each name
    ending in ``suffix``."""
    before = await metrics(relay.port)
    samples: list[float] = []
    stop = asyncio.Event()
    calm_url = room_url(relay.url, new_room_secret())
    calm = asyncio.create_task(calm_pair(calm_url, 0.05, samples, stop))
    await asyncio.sleep(1.0)
    opened, seconds = await storm(relay, args.conns, args.room_size)
    stop.set()
    await calm
    after = await metrics(relay.port)
    lag = histogram_delta(before, after, LOOP_LAG)
    figures = {
        "connect_s": seconds,
        "rss_connected_mib": rss_bytes(relay.pid) / MIB,
        "calm_samples": len(samples),
        "calm_p99_ms": percentile(samples, 99) * 1000 if samples else None,
        "calm_max_ms": max(samples) * 1000 if samples else None,
        "stalls_over_100ms": tail(lag, 0.1),
        "largest_stall_le_s": largest(lag),
    }
    for ws in opened:
        await ws.close()
    await asyncio.sleep(args.idle)
    figures["rss_after_mib"] = rss_bytes(relay.pid) / MIB
    return {key + suffix: value for key, value in figures.items()}


async def run_policy(policy: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    probe = workdir / f"gc-{policy}.json"
    result: dict[str, Any] = {"policy": policy, "loadavg": os.getloadavg()[0]}
    async with probed_relay(workdir / f"relay-{policy}", policy, probe) as relay:
        result["rss_start_mib"] = rss_bytes(relay.pid) / MIB
        storm_started = time.time()
        for k in range(1, args.storms + 1):
            result.update(await one_storm(relay, args, suffix="" if k == 1 else f"_{k}"))
        storm_ended = time.time()
        result["hwm_mib"] = proc_status(relay.pid)["VmHWM"] / MIB
        await relay.terminate()
    # Only the collections from the storm on (not the start-up collect before the freeze).
    result.update(collections(probe, storm_started, storm_ended))
    log(json.dumps(result))
    return result


def summarise(runs: list[dict[str, Any]], meta: dict[str, Any], args: argparse.Namespace) -> Result:
    figures: dict[str, dict[str, float]] = {}
    units = {
        "longest full collection": "ms",
        "full collections": "collections",
        "calm room max latency": "ms",
        "calm room p99 latency": "ms",
        "connect time": "s",
        "RSS at 10k connections": "MiB",
        "RSS after all left": "MiB",
        "RSS at 10k connections, 2nd storm": "MiB",
        "RSS after all left, 2nd storm": "MiB",
        "calm room max latency, 2nd storm": "ms",
    }
    for run in runs:
        figures[run["policy"]] = {
            "longest full collection": run["longest_full_collection_ms"],
            "full collections": run["full_collections"],
            "calm room max latency": run["calm_max_ms"] or 0.0,
            "calm room p99 latency": run["calm_p99_ms"] or 0.0,
            "connect time": run["connect_s"],
            "RSS at 10k connections": run["rss_connected_mib"],
            "RSS after all left": run["rss_after_mib"],
        }
        if "rss_connected_mib_2" in run:
            figures[run["policy"]]["RSS at 10k connections, 2nd storm"] = run["rss_connected_mib_2"]
            figures[run["policy"]]["RSS after all left, 2nd storm"] = run["rss_after_mib_2"]
            figures[run["policy"]]["calm room max latency, 2nd storm"] = run["calm_max_ms_2"]
    subject_name = args.subject
    subject = figures.pop(subject_name, {})
    return Result(
        name=NAME,
        title="GC stalls while 10k clients connect, per collector policy",
        subject_name=f"relay, gc policy {subject_name}",
        subject=subject,
        anchors={f"relay, gc policy {k}": v for k, v in figures.items()},
        units=units,
        series={
            "longest full collection per policy": {
                "x": "policy",
                "y": "ms",
                "kind": "bar",
                "data": {"longest": [[r["policy"], r["longest_full_collection_ms"]] for r in runs]},
            }
        },
        notes=[
            f"{args.conns:,} clients in rooms of {args.room_size}, 64 connecting at a time, "
            "one process; a calm room writes every 50 ms. Load average: "
            f"{meta['loadavg']} at the start, {meta['loadavg_end']} at the end.",
        ],
        params={"conns": args.conns, "policies": args.policy_list, **meta},
        quick=args.quick,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(NAME, __doc__, "smoke run: 500 connections")
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--room-size", type=int, default=5)
    parser.add_argument(
        "--policies",
        default="cpython,relay",
        help=f"comma-separated, from {','.join(POLICIES)} (default: before and after)",
    )
    parser.add_argument("--subject", default="relay", help="the policy reported as subject")
    parser.add_argument("--idle", type=float, default=8.0, help="seconds idle after all left")
    parser.add_argument(
        "--storms", type=int, default=2, help="storms per relay (the 2nd shows what stayed)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.conns, args.idle, args.storms = 500, 3.0, 1
    args.policy_list = [p for p in args.policies.split(",") if p]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # This process's own collections would show in the calm room's latency: only the relay's
    # may. (What the clients leave behind is freed when the process ends.)
    gc.disable()
    import resource  # noqa: PLC0415 - Unix only

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    meta = run_meta()
    runs = []
    with tempfile.TemporaryDirectory(prefix="gc-storm-") as tmp:
        for policy in args.policy_list:
            runs.append(asyncio.run(run_policy(policy, args, Path(tmp))))
    meta["loadavg_end"] = loadavg()
    out = out_directory(args.out, args.quick)
    write_details(out, NAME, {"meta": meta, "runs": runs})
    path = summarise(runs, meta, args).write(out)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
