"""Scale-out: 1, 2 and 3 relay processes on one Redis, beside one relay on SQLite and Node's.

Issue 9: "per-process efficiency on this 2-core machine and the latency cost of the Redis hop".
Configurations (``--configs``, default ``sqlite,redis1,redis2,redis3,node``), each started
fresh, loaded, measured and stopped before the next:

* ``sqlite``: one ``focusmate-relay serve`` on SQLite, the default deployment: the anchor for
  what the Redis hop costs.
* ``redisN``: N relay processes ``serve --redis-url`` on one ``redis-server`` that this
  benchmark starts on a free loopback port, with the append-only file fsynced every second
  (docs/scale-out.md's recommendation), in a scratch directory.
* ``node``: y-websocket 2.1.0's ``server.cjs``, the outside anchor (one process, no storage).

Load: bench/relay_fanout.py's Node generator and load model: ``--rooms`` rooms (50) of
``--clients`` clients (6, so they divide among 1, 2 and 3 processes), every client writing;
client i of a room connects to process i mod N, so with N > 1 most deliveries cross processes
through Redis. Per configuration an open-loop run at ``--rate`` total updates/s (1000: below
every configuration's saturation, for latency) and a closed-loop run (``--window`` updates in
flight per writer: saturation). Relay processes lift their per-address limits, as in
relay_fanout (one address stands for every user).

Figures: deliveries/s, p50 / p99 delivery latency, CPU of the relay processes (summed), of
Redis and of the generator (from /proc, over the measured window), and the efficiency:
deliveries per CPU-second of the relay processes, and of relay processes plus Redis. On this
2-core machine the generator alone needs about one core at saturation, so 2 or 3 processes share
what is left with Redis and each other: total throughput cannot grow with N here. Efficiency per
process is what a machine with a core per process multiplies.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Result, bench_parser, finish_details, run_meta
from bench.machine import machine_busy_seconds
from bench.relay_fanout import (
    DEFAULT_NODE_DIR,
    HOST,
    RELAY_BENCH_LIMITS,
    SECRET_BYTES,
    BenchError,
    Generator,
    ServerProcess,
    ServerSpec,
    find_relay_exe,
    free_port,
    probe_node,
    sleep_until,
    summarize_run,
    wait_machine_quiet,
)
from focusmate.invite import relay_token, room_id_for

NAME = "relay_scaleout"
BENCH_TIMEOUT_S = 900
CONFIGS = ("sqlite", "redis1", "redis2", "redis3", "node")
LABELS = {
    "sqlite": "relay on SQLite, 1 process",
    "redis1": "relay on Redis, 1 process",
    "redis2": "relay on Redis, 2 processes",
    "redis3": "relay on Redis, 3 processes",
    "node": "y-websocket (Node)",
}
RUN_LEAD_S = 0.25


def log(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


@dataclass
class Deployment:
    """The processes of one configuration: relay processes (or Node's server) and Redis."""

    name: str
    servers: list[ServerProcess]
    redis: ServerProcess | None

    def alive(self) -> bool:
        return all(s.alive() for s in [*self.servers, *([self.redis] if self.redis else [])])

    def relay_cpu(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def redis_cpu(self) -> float:
        return self.redis.cpu_seconds() if self.redis is not None else 0.0

    def wait_quiet(self, max_s: float) -> float:
        started = time.monotonic()
        for server in [*self.servers, *([self.redis] if self.redis else [])]:
            server.wait_quiet(max(0.0, max_s - (time.monotonic() - started)))
        return time.monotonic() - started

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.redis is not None:
            self.redis.stop()


def relay_spec(exe: str, workdir: Path, redis_url: str | None) -> ServerSpec:
    data_dir = Path(tempfile.mkdtemp(prefix="relay-data-", dir=workdir))
    argv = [exe, "--data-dir", str(data_dir), "serve", "--host", HOST, "--port", "0"]
    if redis_url is not None:
        argv += ["--redis-url", redis_url]
    for name, value in RELAY_BENCH_LIMITS.items():
        argv += ["--limit", f"{name}={value}"]
    return ServerSpec("ours", tuple(argv), "stderr-json:relay.listening")


def redis_spec(workdir: Path) -> ServerSpec:
    redis = shutil.which("redis-server")
    if redis is None:
        raise BenchError("redis-server not found (apt install redis-server)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="redis-", dir=workdir))
    argv = (redis, "--port", str(port), "--bind", HOST, "--dir", str(directory), "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec")  # fmt: skip
    return ServerSpec("redis", argv, "fixed", port)


def start(config: str, args: argparse.Namespace, workdir: Path) -> Deployment:
    if config == "node":
        anchor = probe_node(args)
        if isinstance(anchor, str):
            raise BenchError(anchor)
        node = ServerProcess(anchor.make_spec(workdir), workdir, "node")
        deployment = Deployment(config, [node], None)
        node.wait_listening()
        return deployment
    exe = find_relay_exe(args.relay_exe)
    if exe is None:
        raise BenchError("focusmate-relay not found (pip install -e .)")
    redis = None
    url = None
    if config.startswith("redis"):
        redis = ServerProcess(redis_spec(workdir), workdir, f"{config}-redis")
        url = f"redis://{HOST}:{redis.spec.fixed_port}/0"
    count = int(config[-1]) if config.startswith("redis") else 1
    deployment = Deployment(config, [], redis)
    try:
        if redis is not None:
            redis.wait_listening()
        for i in range(count):
            server = ServerProcess(relay_spec(exe, workdir, url), workdir, f"{config}-{i}")
            deployment.servers.append(server)
            server.wait_listening()
    except BaseException:
        deployment.stop()
        raise
    return deployment


def connect(deployment: Deployment, args: argparse.Namespace, workdir: Path) -> Generator:
    """One generator with every room's clients spread over the deployment's processes."""
    gen = Generator(args, workdir / f"gen-{deployment.name}.log")
    rooms = []
    for index in range(args.rooms):
        secret = os.urandom(SECRET_BYTES)
        path = f"/doc/{room_id_for(secret)}?token={relay_token(secret)}"
        urls = [f"ws://{HOST}:{server.port}{path}" for server in deployment.servers]
        rooms.append({"urls": urls, "clients": args.clients, "writers": args.clients,
                      "index": index})  # fmt: skip
    gen.send({"cmd": "connect", "rooms": rooms, "concurrency": 16, "timeout_s": 30})
    gen.expect("connected", 90)
    for server in deployment.servers:
        server.refresh_tree()
    return gen


def measure(
    deployment: Deployment, gen: Generator, args: argparse.Namespace, rate: float | None
) -> dict[str, Any]:
    """One run (open loop at ``rate``, or saturation): the generator's figures, and the CPU of
    every process over the measured window."""
    waited = wait_machine_quiet(args.quiet_wait)
    t_start = time.monotonic_ns() + int(RUN_LEAD_S * 1e9)
    win_start = t_start + int(args.warmup * 1e9)
    win_end = win_start + int(args.duration * 1e9)
    mode = "rate" if rate is not None else "saturate"
    gen.send({"cmd": "run", "mode": mode, "rate": rate or 0, "window": args.window,
              "t_start_ns": str(t_start), "warmup_s": args.warmup,
              "duration_s": args.duration, "drain_s": args.drain})  # fmt: skip
    sleep_until(win_start)
    relay0, redis0, gen0, busy0 = (
        deployment.relay_cpu(), deployment.redis_cpu(), gen.cpu_seconds(), machine_busy_seconds()
    )  # fmt: skip
    sleep_until(win_end)
    relay1, redis1, gen1, busy1 = (
        deployment.relay_cpu(), deployment.redis_cpu(), gen.cpu_seconds(), machine_busy_seconds()
    )  # fmt: skip
    result = gen.expect("result", args.drain + RUN_LEAD_S + 30)
    settle = deployment.wait_quiet(args.settle_max)
    mine = (relay1 - relay0) + (redis1 - redis0) + (gen1 - gen0)
    run = summarize_run(
        [result],
        level=f"{rate:g}/s" if rate is not None else "saturate",
        offered=rate,
        server_cpu_s=(relay1 - relay0) + (redis1 - redis0),
        gen_cpu_s=gen1 - gen0,
        other_cpu_s=max(0.0, (busy1 - busy0) - mine),
        gen_procs=1,
        peak_rss=0,
        settle_s=settle,
        settle_max_s=args.settle_max,
    )
    duration = run["duration_s"]
    relay_cpu, redis_cpu = relay1 - relay0, redis1 - redis0
    delivered = run["delivered_per_s"] * duration
    run.update(
        relay_cpu_pct=100 * relay_cpu / duration,
        redis_cpu_pct=100 * redis_cpu / duration,
        per_relay_cpu_s=delivered / relay_cpu if relay_cpu else None,
        per_server_cpu_s=delivered / (relay_cpu + redis_cpu) if relay_cpu + redis_cpu else None,
        waited_for_quiet_s=waited,
    )
    log(
        f"{deployment.name} @ {run['level']}: delivered {run['delivered_per_s']:.0f}/s, p50 "
        f"{run['p50_ms'] or 0:.2f} ms, p99 {run['p99_ms'] or 0:.2f} ms, lost "
        f"{run['lost_deliveries']}, relay CPU {run['relay_cpu_pct']:.0f} %, Redis "
        f"{run['redis_cpu_pct']:.0f} %, gen {run['gen_cpu_pct']:.0f} %, other "
        f"{run['other_cpu_pct']:.0f} % {' '.join(run['flags'])}"
    )
    return run


def run_config(config: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    log(f"{config}: starting, {args.rooms} rooms × {args.clients} clients")
    deployment = start(config, args, workdir)
    gen = None
    try:
        gen = connect(deployment, args, workdir)
        runs = [measure(deployment, gen, args, args.rate)]
        if args.saturate:
            runs.append(measure(deployment, gen, args, None))
        return {"status": "ok", "processes": len(deployment.servers), "runs": runs}
    finally:
        if gen is not None:
            gen.close()
        deployment.stop()


def figures(entry: dict[str, Any], rate: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for run in entry.get("runs", []):
        if run["mode"] == "saturate":
            out["saturated throughput"] = run["delivered_per_s"]
            if run["per_relay_cpu_s"]:
                out["deliveries per CPU-second of the relay processes"] = run["per_relay_cpu_s"]
            if run["per_server_cpu_s"]:
                out["deliveries per CPU-second, relay processes and Redis"] = run[
                    "per_server_cpu_s"
                ]
            out["relay processes' CPU at saturation"] = run["relay_cpu_pct"]
        else:
            for q in ("p50", "p99"):
                if run[f"{q}_ms"] is not None:
                    out[f"{q} latency @ {rate:g} upd/s"] = run[f"{q}_ms"]
    return out


UNITS = {
    "saturated throughput": "deliveries/s",
    "deliveries per CPU-second of the relay processes": "deliveries/CPU-s",
    "deliveries per CPU-second, relay processes and Redis": "deliveries/CPU-s",
    "relay processes' CPU at saturation": "% of a core",
}


def result(report: dict[str, Any], args: argparse.Namespace, started: float) -> Result:
    """Subject: one relay process on Redis; anchors: the SQLite relay, Node's server, and the
    2- and 3-process deployments (so each ratio reads "1 process on Redis ÷ that")."""
    configs = report["configs"]
    per = {c: figures(e, args.rate) for c, e in configs.items() if e["status"] == "ok"}
    units = dict(UNITS)
    for q in ("p50", "p99"):
        units[f"{q} latency @ {args.rate:g} upd/s"] = "ms"
    subject = dict(per.get("redis1", {}))
    sqlite, one = per.get("sqlite", {}), per.get("redis1", {})
    for q in ("p50", "p99"):
        metric = f"{q} latency @ {args.rate:g} upd/s"
        if metric in sqlite and metric in one:
            cost = f"{q} latency added by the Redis hop"
            subject[cost], units[cost] = one[metric] - sqlite[metric], "ms"
    base = one.get("deliveries per CPU-second of the relay processes")
    for config in ("redis2", "redis3"):
        theirs = per.get(config, {}).get("deliveries per CPU-second of the relay processes")
        if base and theirs:
            metric = f"efficiency per process with {config[-1]} processes ÷ with 1"
            subject[metric], units[metric] = theirs / base, "×"
    anchors = {LABELS[c]: f for c, f in per.items() if c != "redis1"}
    bars: dict[str, dict[str, list[list[Any]]]] = {"throughput": {}, "efficiency": {},
                                                   "latency": {}}  # fmt: skip
    for config, f in per.items():
        label = LABELS[config]
        if "saturated throughput" in f:
            bars["throughput"][label] = [["saturated", f["saturated throughput"]]]
        if "deliveries per CPU-second of the relay processes" in f:
            bars["efficiency"][label] = [
                ["relay processes", f["deliveries per CPU-second of the relay processes"]],
                *(
                    [["relay + Redis", f["deliveries per CPU-second, relay processes and Redis"]]]
                    if "deliveries per CPU-second, relay processes and Redis" in f
                    else []
                ),
            ]
        bars["latency"][label] = [
            [q, f[f"{q} latency @ {args.rate:g} upd/s"]]
            for q in ("p50", "p99")
            if f"{q} latency @ {args.rate:g} upd/s" in f
        ]
    notes = [
        f"{c}: {e['status']}: {e.get('reason', '')}" for c, e in configs.items()
        if e["status"] != "ok"
    ]  # fmt: skip
    for config, entry in configs.items():
        for run in entry.get("runs", []):
            if run["lost_deliveries"]:
                notes.append(f"{config} @ {run['level']}: lost {run['lost_deliveries']}")
            if {"gen-cpu", "noisy"} & set(run["flags"]):
                notes.append(f"{config} @ {run['level']}: flags {' '.join(run['flags'])}")
    notes.append(
        "A ratio reads: one relay process on Redis ÷ that configuration. Throughput cannot grow "
        "with the number of processes on 2 cores (the generator takes about one); the "
        "efficiency per process (deliveries per CPU-second) is the figure that carries over."
    )
    notes.append(f"Every run, with generator and Redis CPU: {NAME}.details.json.")
    return Result(
        name=NAME,
        title="Relay scale-out: 1, 2 and 3 relay processes on one Redis",
        subject_name=LABELS["redis1"],
        subject=subject,
        anchors=anchors,
        units=units,
        targets=[],
        series={
            "max fan-out throughput (closed loop)": {
                "x": "",
                "y": "deliveries/s",
                "kind": "bar",
                "data": bars["throughput"],
            },
            "deliveries per CPU-second": {
                "x": "",
                "y": "deliveries per CPU-second",
                "kind": "bar",
                "data": bars["efficiency"],
            },
            f"delivery latency at {args.rate:g} updates/s": {
                "x": "",
                "y": "ms",
                "kind": "bar",
                "data": bars["latency"],
            },
        },
        notes=notes,
        params={
            "rooms": args.rooms,
            "clients_per_room": args.clients,
            "rate_ups": args.rate,
            "saturation_window": args.window,
            "measured_s": args.duration,
            "loadavg": report["meta"]["loadavg"],
            "argv": " ".join(sys.argv[1:]),
        },
        quick=args.quick,
        started_at=started,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(NAME, __doc__ or "", "a smoke run: 4 rooms, 1 s windows")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop, updates/s")
    parser.add_argument("--saturate", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--settle-max", type=float, default=15.0)
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    parser.add_argument("--node", default="node")
    parser.add_argument("--node-dir", type=Path, default=DEFAULT_NODE_DIR)
    parser.add_argument("--relay-exe")
    args = parser.parse_args(argv)
    if args.quick:
        args.rooms, args.clients, args.rate = 4, 3, 40.0
        args.warmup, args.duration, args.drain, args.settle_max = 0.2, 0.8, 2.0, 3.0
        args.quiet_wait = 0.0
        args.configs = "sqlite,redis1,redis2,node"
    args.config_list = [c.strip() for c in args.configs.split(",") if c.strip()]
    if set(args.config_list) - set(CONFIGS):
        parser.error(f"--configs: choose from {', '.join(CONFIGS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, wall, meta = time.monotonic(), time.time(), run_meta()
    report: dict[str, Any] = {"configs": {}, "meta": meta}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-")))
        for config in args.config_list:
            try:
                report["configs"][config] = run_config(config, args, workdir)
            except BenchError as err:
                log(f"{config}: {err}")
                report["configs"][config] = {"status": "error", "reason": str(err)}
    out = finish_details(NAME, args, report, meta, started)
    result(report, args, wall).write(out)
    log(f"wrote {out / NAME}.json")
    failed = [c for c, e in report["configs"].items() if e["status"] != "ok"]
    lost = any(r["lost_deliveries"] for e in report["configs"].values() for r in e.get("runs", []))
    return 1 if failed or (args.quick and lost) else 0


if __name__ == "__main__":
    sys.exit(main())
