"""Fan-out benchmark: the FocusMate relay side by side with two anchor y-websocket servers.

Servers (``--servers``, default ``ours,node,pycrdt``; the first one listed is the *subject*
whose figures are divided by the others'):

* ``ours``: ``focusmate-relay serve --host 127.0.0.1 --port 0`` with a fresh data directory
  (``--data-dir``, before or after ``serve`` as its ``--help`` says, and in
  ``FOCUSMATE_RELAY_DATA_DIR``); the port is read from its ``{"event": "relay.listening",
  "port": N}`` JSON log line on stderr. Its per-address and per-connection abuse limits are
  lifted with ``--limit`` (one address stands for every user here); backpressure limits keep
  their defaults. Skipped with a message while ``focusmate-relay serve --help`` fails.
* ``node``: y-websocket 2.1.0's reference server ``bin/server.cjs`` (HOST/PORT env), from
  ``--node-dir`` (default ``tests/interop/node``).
* ``pycrdt``: pycrdt-websocket's ``WebsocketServer`` through ``bench/anchors/pycrdt_ws_server.py``
  (pycrdt-websocket 0.16.3+ requires pycrdt 0.14, the repo's pin, so it runs in the same venv:
  ``pip install -e .[bench]``).

Every room is ``ws://127.0.0.1:PORT/doc/<room_id>?token=<relay token>`` for a fresh random
12-byte room secret (``focusmate.invite``); the anchors serve any path, so all three get the same
URLs and the same bytes.

Load model
----------
* R rooms (``--rooms``, 50) × C clients per room (``--clients``, 5), every client a real
  websocket speaking y-websocket: it sends sync step 1 on open, answers the server's step 1 with
  step 2, and counts as connected once it has the server's step 2. The first client of each room
  connects (and syncs) alone before the others, for every server: pycrdt-websocket deadlocks
  when two clients create the same room at the same moment.
* W writers per room (``--writers``, default all C clients). A writer owns a Yjs ``Doc`` and
  sends each update as a single transaction ``map.set("w<writer>", "<writer>.<seq>")`` on one
  shared map: a real ~30-byte single-item Yjs update (the key is overwritten, so the document
  stays small). Every other client of the room must receive it: C-1 deliveries per update.
  Echoes of an update back to its writer (the anchors send them) are ignored.
* Open loop at fixed offered rates (``--levels``, total updates/s over all rooms): update k goes
  to writer k mod (R·W) (rooms interleaved) at ``start + k/rate``, sent in 1 ms timer ticks; a
  late generator catches up in a burst, so the offered rate holds, and its lag behind the
  schedule is reported (``sched lag p99``, flagged ``gen-late`` above 10 ms). Latency counts from
  the actual send, so timer granularity does not blur sub-millisecond servers.
* Saturation (``--saturate``, on by default): closed loop, each writer keeps at most
  ``--window`` updates not yet delivered to all its room's receivers and sends the next one as
  soon as one completes; delivered messages/s is then the server's max fan-out throughput and
  latency is counted from the actual send.
* ``--repeat N`` runs every (level, server) N times, interleaved; the table keeps the run whose
  window was least disturbed by other jobs (lowest ``other CPU %``), all are in the JSON.
* Each run: warm-up (``--warmup``), a measured window (``--duration``), then a drain (at most
  ``--drain``) for the updates sent in the window. Latency and loss are over updates sent in
  the window; ``delivered msg/s`` counts every delivery received during the window. Rate levels
  run in increasing order, all servers interleaved per level (servers stay up with their clients
  connected); a server whose level lost deliveries, fell behind or had p99 above
  ``--overload-p99-ms`` is not offered the higher levels. Before each run the harness waits
  (bounded) for other jobs on the machine to leave a core free; after it, for the server to go
  idle: one still busy after ``--settle-max`` is restarted with fresh clients (``no-settle``),
  so its backlog cannot slow the next server's run.
* Matching: a receiver decodes each update with Yjs (``Y.decodeUpdate``) and reads the item
  content ``"<writer>.<seq>"``. That works whatever a server does to the bytes: y-websocket's
  Node server and pycrdt-websocket apply the update to their own document and broadcast the
  update of that transaction, re-encoded (and an overwrite's item carries no key, only an origin,
  so the key alone would not do). Whether the bytes arrived identical is reported
  (``bytes identical %``; measured: 100 % for all three with these single-item updates, but
  nothing relies on it).
* Idle memory: on a fresh server, ``--idle-conns`` clients connect and sync, then stay idle;
  the server's RSS growth / N is the memory per idle connection. ``shared``: all in one room;
  ``per-doc``: one room each (connection + room cost). Each mode gets a fresh server process.

The generator is Node (``bench/loadgen/fanout_gen.cjs``, ``ws`` + ``yjs``), one process by
default (``--gen-procs``, 2 at most on a 2-core machine): even Node's ``ws`` costs about as much
CPU per delivery as the Node server under test, and a Python asyncio client costs several times
that, so a Python generator would mostly measure itself. Each server runs in its own process; the
orchestrator (this module) only sleeps, reads ``/proc`` and talks to the generator over stdio.
That the generator is not the bottleneck is shown per run by its CPU % next to the server's,
by ``sched lag p99`` (open loop) and by sent ≈ offered; runs where the generator used ≥ 90 % of
a core are flagged ``gen-cpu``, and ``other CPU %`` (everything else busy on the machine) flags
``noisy`` windows. Per delivery the generator costs about what the Node server costs, so on two
cores the Node server's saturation figure is usually machine-bound: a lower bound.

Server CPU seconds and RSS are summed over the server's process tree (``/proc``); peak RSS is
the maximum sampled every 0.2 s during the measured window. Clients never offer
permessage-deflate, so every server runs uncompressed. All traffic is on 127.0.0.1; every phase
is bounded in time; servers and generators are killed at the end, also on errors or Ctrl-C.

Output: ``bench/results/relay_fanout.details.json`` (every run) and ``.md`` (``--out-dir`` or
``--out``; ``--quick`` writes to a temporary directory unless one is given), the Markdown on
stdout, and ``relay_fanout.json``: the headline figures as a :class:`bench.common.Result`, the
format ``bench/run_all.py`` and ``bench/report.py`` read.
Exit status: 0, or 1 if a server or generator failed (or, with ``--quick``, lost deliveries).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from focusmate.invite import relay_token, room_id_for

if not __package__:  # run as a script (python bench/relay_fanout.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Result, Target
from bench.machine import (
    PAGE_SIZE,
    machine_busy_seconds,
    process_tree,
    tree_cpu_seconds,
    tree_rss_bytes,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
GENERATOR_SCRIPT = BENCH_DIR / "loadgen" / "fanout_gen.cjs"
PYCRDT_LAUNCHER = BENCH_DIR / "anchors" / "pycrdt_ws_server.py"
DEFAULT_NODE_DIR = REPO_ROOT / "tests" / "interop" / "node"
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
RESULT_STEM = "relay_fanout"
DETAILS_SUFFIX = ".details.json"  # every run; RESULT_STEM.json is the common Result
BENCH_TIMEOUT_S = 900  # run_all's limit: ~5 min, more while it waits for a quiet machine
HOST = "127.0.0.1"
SERVER_NAMES = ("ours", "node", "pycrdt")
SERVER_LABELS = {
    "ours": "focusmate-relay",
    "node": "y-websocket server.cjs",
    "pycrdt": "pycrdt-websocket",
}
SECRET_BYTES = 12
MIB = 1024 * 1024
START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 60.0
RUN_LEAD_S = 0.25
SAMPLE_INTERVAL_S = 0.2
QUIET_CPU_FRACTION = 0.05
GEN_BOUND_CPU_PCT = 90.0
GEN_LAG_BOUND_MS = 10.0
NOISY_OTHER_CPU_PCT = 30.0
CAVEAT_FLAGS = {"LOST", "gen-cpu", "gen-late", "noisy"}
KEEP_UP_FRACTION = 0.95
# The relay's abuse limits are per address and per connection; here one address stands for
# every user of every room, so they are lifted (only those its `serve --help` names). Its
# backpressure limits (send_queue_bytes, max_inflight_updates, ...) stay at their defaults.
RELAY_BENCH_LIMITS = {
    "max_connections": 1_000_000,
    "max_connections_per_ip": 1_000_000,
    "messages_per_second": 1e9,
    "message_burst": 1e9,
    "bytes_per_second": 1e12,
    "byte_burst": 1e12,
    "ip_messages_per_second": 1e9,
    "ip_message_burst": 1e9,
    "ip_frames_per_turn": 1_000_000,
    "connects_per_ip_per_second": 1e9,
    "connect_burst_per_ip": 1e9,
}


class BenchError(Exception):
    """A server or the generator failed: the run of that server is reported as an error."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def kill_group(proc: subprocess.Popen[Any], grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, the process group of a child we started in its own session."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace_s)


def sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server process and learn its port."""

    name: str
    argv: tuple[str, ...]
    port_from: str  # "stderr-json:<event>", "stdout-json:<event>" or "fixed"
    fixed_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class Anchor:
    """A server that is available on this machine: its version and a spec factory."""

    name: str
    version: str
    make_spec: Callable[[Path], ServerSpec]


class ServerProcess:
    """One running server: its process group, port and resource usage."""

    def __init__(self, spec: ServerSpec, log_dir: Path, tag: str) -> None:
        self.spec = spec
        self.out_path = log_dir / f"{tag}.stdout.log"
        self.err_path = log_dir / f"{tag}.stderr.log"
        self.port = 0
        env = {**os.environ, **spec.env}
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,
            )
        self._pids = [self.proc.pid]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.spec.name} exited with {self.proc.returncode} at start")
            port = self._port_from_logs()
            if port and self._accepts(port):
                self.port = port
                self.refresh_tree()
                return port
            time.sleep(0.05)
        raise BenchError(f"{self.spec.name} did not listen within {timeout_s:.0f} s")

    def _port_from_logs(self) -> int | None:
        if self.spec.port_from == "fixed":
            return self.spec.fixed_port
        stream, _, event = self.spec.port_from.partition(":")
        path = self.err_path if stream == "stderr-json" else self.out_path
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    record = json.loads(line)
                    if record.get("event") == event:
                        return int(record["port"])
        return None

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            return False

    def refresh_tree(self) -> None:
        self._pids = process_tree(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self._pids)

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self._pids)

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for path in (self.out_path, self.err_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def wait_quiet(self, max_s: float) -> float:
        """Wait until the server uses < 5 % of a core (backlog drained); the time it took."""
        start = time.monotonic()
        before = self.cpu_seconds()
        while time.monotonic() - start < max_s:
            time.sleep(0.25)
            after = self.cpu_seconds()
            if after - before < QUIET_CPU_FRACTION * 0.25:
                break
            before = after
        return time.monotonic() - start

    def stop(self) -> None:
        kill_group(self.proc)


class RssSampler:
    """Samples the RSS of the registered servers every 0.2 s in a thread; keeps the peaks."""

    def __init__(self) -> None:
        self._servers: dict[str, ServerProcess] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def watch(self, key: str, server: ServerProcess) -> None:
        with self._lock:
            self._servers[key] = server
            self._peaks[key] = server.rss_bytes()

    def reset(self, key: str) -> None:
        with self._lock:
            self._peaks[key] = self._servers[key].rss_bytes()

    def peak(self, key: str) -> int:
        with self._lock:
            return self._peaks.get(key, 0)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            with self._lock:
                servers = list(self._servers.items())
            for key, server in servers:
                rss = server.rss_bytes()
                with self._lock:
                    self._peaks[key] = max(self._peaks.get(key, 0), rss)


# ---------------------------------------------------------------------------------------------
# Anchor discovery


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def find_relay_exe(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "focusmate-relay"
    if beside.exists():
        return str(beside)
    return shutil.which("focusmate-relay")


def _help_text(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return done.returncode, done.stdout + done.stderr


def probe_ours(args: argparse.Namespace) -> Anchor | str:
    exe = find_relay_exe(args.relay_exe)
    if exe is None:
        return "focusmate-relay not found (pip install -e . in this venv, or --relay-exe)"
    code, serve_help = _help_text([exe, "serve", "--help"])
    if code != 0 or "--port" not in serve_help:
        return f"`focusmate-relay serve --help` exited {code}: {_first_line(serve_help)}"
    _, top_help = _help_text([exe, "--help"])
    _, version = _help_text([exe, "--version"])
    # --data-dir is a `serve` option or a global one (before `serve`), depending on the version;
    # the environment variable covers both.
    data_dir_after = "--data-dir" in serve_help
    data_dir_before = not data_dir_after and "--data-dir" in top_help
    limits = [f"{name}={value}" for name, value in RELAY_BENCH_LIMITS.items() if name in serve_help]
    limits += args.relay_limit
    if limits and "--limit" not in serve_help:
        return "`focusmate-relay serve` has no --limit: cannot lift its per-address limits"

    def make_spec(workdir: Path) -> ServerSpec:
        data_dir = Path(tempfile.mkdtemp(prefix="relay-data-", dir=workdir))
        argv = [exe]
        if data_dir_before:
            argv += ["--data-dir", str(data_dir)]
        argv += ["serve", "--host", HOST, "--port", "0"]
        if data_dir_after:
            argv += ["--data-dir", str(data_dir)]
        for limit in limits:
            argv += ["--limit", limit]
        env = {"FOCUSMATE_RELAY_DATA_DIR": str(data_dir)}
        return ServerSpec("ours", tuple(argv), "stderr-json:relay.listening", env=env)

    return Anchor("ours", _first_line(version) or "focusmate-relay", make_spec)


def probe_node(args: argparse.Namespace) -> Anchor | str:
    node = shutil.which(args.node)
    if node is None:
        return f"node executable {args.node!r} not found"
    server = args.node_dir / "node_modules" / "y-websocket" / "bin" / "server.cjs"
    if not server.exists():
        return f"{server} missing (npm ci in {args.node_dir}, or --node-dir)"
    meta = json.loads((server.parent.parent / "package.json").read_text())

    def make_spec(workdir: Path) -> ServerSpec:
        del workdir
        port = free_port()
        env = {"HOST": HOST, "PORT": str(port)}
        return ServerSpec("node", (node, str(server)), "fixed", port, env, args.node_dir)

    return Anchor("node", f"y-websocket {meta['version']}", make_spec)


def probe_pycrdt(args: argparse.Namespace) -> Anchor | str:
    del args
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m, pycrdt.websocket; "
            "print(m.version('pycrdt-websocket'), m.version('pycrdt'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return "pycrdt-websocket is not installed here (pip install -e .[bench])"
    ws_version, crdt_version = probe.stdout.split()

    def make_spec(workdir: Path) -> ServerSpec:
        del workdir
        argv = (sys.executable, str(PYCRDT_LAUNCHER), "--host", HOST, "--port", "0")
        return ServerSpec("pycrdt", argv, "stdout-json:listening")

    return Anchor("pycrdt", f"pycrdt-websocket {ws_version} (pycrdt {crdt_version})", make_spec)


PROBES: dict[str, Callable[[argparse.Namespace], Anchor | str]] = {
    "ours": probe_ours,
    "node": probe_node,
    "pycrdt": probe_pycrdt,
}


# ---------------------------------------------------------------------------------------------
# Generator


class Generator:
    """One Node load-generator process, driven over stdio with JSON lines."""

    def __init__(self, args: argparse.Namespace, log_path: Path) -> None:
        env = {**os.environ, "NODE_PATH": str(args.node_dir / "node_modules")}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    shutil.which(args.node) or args.node,
                    *shlex.split(os.environ.get("FOCUSMATE_BENCH_GEN_NODE_ARGS", "")),
                    str(GENERATOR_SCRIPT),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        self.log_path = log_path
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="gen-reader", daemon=True).start()
        hello = self.expect("hello", 30)
        self.versions = {"node": hello["node"], "yjs": hello["yjs"]}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self._events.put(json.loads(line))
        self._events.put(None)

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise BenchError(f"generator is gone: {exc}") from exc

    def expect(self, event: str, timeout_s: float) -> dict[str, Any]:
        try:
            got = self._events.get(timeout=timeout_s)
        except queue.Empty:
            raise BenchError(f"generator: no {event!r} within {timeout_s:.0f} s") from None
        if got is None:
            raise BenchError(f"generator exited ({self.proc.poll()}); see {self.log_path}")
        if got.get("ev") == "error":
            raise BenchError(f"generator {got.get('cmd')}: {got.get('message')}")
        if got.get("ev") != event:
            raise BenchError(f"generator: expected {event!r}, got {got!r}")
        return got

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds([self.proc.pid])

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BenchError):
                self.send({"cmd": "quit"})
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)


# ---------------------------------------------------------------------------------------------
# Load description and result arithmetic


def room_url(port: int, rng_bytes: bytes) -> str:
    return f"ws://{HOST}:{port}/doc/{room_id_for(rng_bytes)}?token={relay_token(rng_bytes)}"


def new_room_urls(port: int, count: int) -> list[str]:
    return [room_url(port, os.urandom(SECRET_BYTES)) for _ in range(count)]


def merge_hist(hists: list[dict[str, Any] | None]) -> dict[str, Any]:
    buckets: dict[int, int] = {}
    merged: dict[str, Any] = {"count": 0, "max_ms": 0.0, "base": 1.01}
    for hist in hists:
        if not hist:
            continue
        merged["base"] = hist["base"]
        merged["count"] += hist["count"]
        merged["max_ms"] = max(merged["max_ms"], hist["max_ms"])
        for bucket, count in hist["buckets"].items():
            buckets[int(bucket)] = buckets.get(int(bucket), 0) + count
    merged["buckets"] = buckets
    return merged


def percentile_ms(hist: dict[str, Any], q: float) -> float | None:
    """The q-quantile (0..1) of a log histogram, to its 1 % bucket width; None when empty."""
    if hist["count"] == 0:
        return None
    rank = max(1, math.ceil(q * hist["count"]))
    seen = 0
    for bucket in sorted(hist["buckets"]):
        seen += hist["buckets"][bucket]
        if seen >= rank:
            mid_us = hist["base"] ** (bucket + 0.5)
            return min(mid_us / 1000, hist["max_ms"])
    return float(hist["max_ms"])


SUMMED_FIELDS = (
    "sent_total",
    "unsent",
    "sent_measured",
    "expected_deliveries",
    "received_deliveries",
    "lost_deliveries",
    "delivered_in_window",
    "duplicates",
    "echoes",
    "stale",
    "unmatched",
    "bytes_identical",
    "bytes_different",
    "unexpected_closes",
)


def summarize_run(
    results: list[dict[str, Any]],
    *,
    level: str,
    offered: float | None,
    server_cpu_s: float,
    gen_cpu_s: float,
    other_cpu_s: float,
    gen_procs: int,
    peak_rss: int,
    settle_s: float,
    settle_max_s: float,
) -> dict[str, Any]:
    duration = results[0]["duration_s"]
    total = {name: sum(r[name] for r in results) for name in SUMMED_FIELDS}
    latency = merge_hist([r["latency"] for r in results])
    lag = merge_hist([r["schedule_lag"] for r in results])
    checked = total["bytes_identical"] + total["bytes_different"]
    gen_cpu_pct = 100 * gen_cpu_s / duration
    lag_p99 = percentile_ms(lag, 0.99)
    summary: dict[str, Any] = {
        "level": level,
        "mode": results[0]["mode"],
        "offered_ups": offered,
        "sent_ups": total["sent_measured"] / duration,
        "delivered_per_s": total["delivered_in_window"] / duration,
        "expected_deliveries": total["expected_deliveries"],
        "received_deliveries": total["received_deliveries"],
        "lost_deliveries": total["lost_deliveries"],
        "p50_ms": percentile_ms(latency, 0.50),
        "p99_ms": percentile_ms(latency, 0.99),
        "max_ms": latency["max_ms"] if latency["count"] else None,
        "server_cpu_s": server_cpu_s,
        "server_cpu_pct": 100 * server_cpu_s / duration,
        "gen_cpu_pct": gen_cpu_pct,
        "other_cpu_pct": 100 * other_cpu_s / duration,
        "peak_rss_mib": peak_rss / MIB,
        "sched_lag_p99_ms": lag_p99,
        "bytes_identical_pct": 100 * total["bytes_identical"] / checked if checked else None,
        "drain_s": max(r["drain_s"] for r in results),
        "settle_s": settle_s,
        "max_send_buffer_bytes": max(r["max_send_buffer_bytes"] for r in results),
        "duration_s": duration,
        "window": results[0]["window"],
        "counts": total,
        "flags": [
            flag
            for flag, on in (
                ("LOST", total["lost_deliveries"] > 0),
                ("gen-cpu", gen_cpu_pct / gen_procs >= GEN_BOUND_CPU_PCT),
                ("gen-late", lag_p99 is not None and lag_p99 > GEN_LAG_BOUND_MS),
                ("noisy", 100 * other_cpu_s / duration > NOISY_OTHER_CPU_PCT),
                ("no-settle", settle_s >= settle_max_s),
            )
            if on
        ],
    }
    return summary


def is_overloaded(run: dict[str, Any], args: argparse.Namespace) -> bool:
    if run["lost_deliveries"] or run["counts"]["unexpected_closes"] or "no-settle" in run["flags"]:
        return True
    offered = run["offered_ups"] or 0
    if run["sent_ups"] < KEEP_UP_FRACTION * offered:
        return True
    expected_rate = offered * (args.clients - 1)
    if run["delivered_per_s"] < KEEP_UP_FRACTION * expected_rate:
        return True
    return run["p99_ms"] is not None and run["p99_ms"] > args.overload_p99_ms


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass
class LoadTarget:
    """A server under load with its generator processes and connected clients."""

    name: str
    server: ServerProcess
    gens: list[Generator]
    shares: list[float]  # fraction of the writers (and so of the offered rate) per generator
    workdir: Path
    overloaded_at: str | None = None


def measure_idle(
    anchor: Anchor, args: argparse.Namespace, workdir: Path, mode: str
) -> dict[str, Any]:
    """RSS growth of a fresh server per idle, synced connection."""
    server = ServerProcess(anchor.make_spec(workdir), workdir, f"{anchor.name}-idle-{mode}")
    gen: Generator | None = None
    try:
        port = server.wait_listening()
        gen = Generator(args, workdir / f"gen-{anchor.name}-idle-{mode}.log")
        # Warm the server's code paths with one small room (left connected) before the baseline.
        warm = [{"url": u, "clients": 2, "writers": 0, "index": 0} for u in new_room_urls(port, 1)]
        gen.send({"cmd": "connect", "rooms": warm, "concurrency": 1, "timeout_s": 30})
        gen.expect("connected", 40)
        time.sleep(args.idle_settle)
        server.refresh_tree()
        before = server.rss_bytes()
        n = args.idle_conns
        if mode == "shared":
            rooms = [{"url": new_room_urls(port, 1)[0], "clients": n, "writers": 0, "index": 0}]
        else:
            rooms = [
                {"url": url, "clients": 1, "writers": 0, "index": i}
                for i, url in enumerate(new_room_urls(port, n))
            ]
        gen.send({"cmd": "idle", "rooms": rooms, "concurrency": 32, "timeout_s": 60})
        connected = gen.expect("idle_connected", CONNECT_TIMEOUT_S + 30)
        time.sleep(args.idle_settle)
        server.refresh_tree()
        after = server.rss_bytes()
        return {
            "mode": mode,
            "conns": n,
            "connect_s": connected["elapsed_s"],
            "rss_before_mib": before / MIB,
            "rss_after_mib": after / MIB,
            "bytes_per_conn": (after - before) / n,
        }
    finally:
        if gen is not None:
            gen.close()
        server.stop()


def start_load_target(
    anchor: Anchor, args: argparse.Namespace, workdir: Path, sampler: RssSampler
) -> LoadTarget:
    server = ServerProcess(anchor.make_spec(workdir), workdir, f"{anchor.name}-load")
    target = LoadTarget(anchor.name, server, [], [], workdir)
    try:
        port = server.wait_listening()
        writers = args.writers or args.clients
        rooms = [
            {"url": url, "clients": args.clients, "writers": writers, "index": i}
            for i, url in enumerate(new_room_urls(port, args.rooms))
        ]
        procs = max(1, min(args.gen_procs, len(rooms)))
        parts = [rooms[i::procs] for i in range(procs)]
        for i, part in enumerate(parts):
            gen = Generator(args, workdir / f"gen-{anchor.name}-load-{i}.log")
            target.gens.append(gen)
            target.shares.append(len(part) / len(rooms))
            gen.send({"cmd": "connect", "rooms": part, "concurrency": 16, "timeout_s": 30})
        for gen in target.gens:
            gen.expect("connected", CONNECT_TIMEOUT_S + 30)
        server.refresh_tree()
        sampler.watch(anchor.name, server)
    except BaseException:
        stop_load_target(target)
        raise
    return target


def stop_load_target(target: LoadTarget) -> None:
    for gen in target.gens:
        gen.close()
    target.server.stop()


def wait_machine_quiet(max_s: float) -> float:
    """Wait (at most max_s) until the machine has a core to spare: busy < 30 % of one core
    over 0.5 s, while our own servers and generators are idle. The time waited."""
    start = time.monotonic()
    while time.monotonic() - start < max_s:
        before = machine_busy_seconds()
        time.sleep(0.5)
        if machine_busy_seconds() - before < 0.5 * NOISY_OTHER_CPU_PCT / 100:
            break
    return time.monotonic() - start


def run_level(
    target: LoadTarget,
    args: argparse.Namespace,
    sampler: RssSampler,
    *,
    level: str,
    rate: float | None,
) -> dict[str, Any]:
    if not target.server.alive():
        raise BenchError(f"{target.name} is not running any more")
    waited = wait_machine_quiet(args.quiet_wait)
    t_start = time.monotonic_ns() + int(RUN_LEAD_S * 1e9)
    win_start = t_start + int(args.warmup * 1e9)
    win_end = win_start + int(args.duration * 1e9)
    for gen, share in zip(target.gens, target.shares, strict=True):
        gen.send(
            {
                "cmd": "run",
                "mode": "rate" if rate is not None else "saturate",
                "rate": (rate or 0) * share,
                "window": args.window,
                "t_start_ns": str(t_start),
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "drain_s": args.drain,
            }
        )
    sleep_until(win_start)
    server_cpu0 = target.server.cpu_seconds()
    gen_cpu0 = sum(gen.cpu_seconds() for gen in target.gens)
    busy0 = machine_busy_seconds()
    sampler.reset(target.name)
    sleep_until(win_end)
    server_cpu1 = target.server.cpu_seconds()
    gen_cpu1 = sum(gen.cpu_seconds() for gen in target.gens)
    busy1 = machine_busy_seconds()
    peak = sampler.peak(target.name)
    timeout = args.drain + RUN_LEAD_S + 30
    results = [gen.expect("result", timeout) for gen in target.gens]
    settle = target.server.wait_quiet(args.settle_max)
    summary = summarize_run(
        results,
        level=level,
        offered=rate,
        server_cpu_s=server_cpu1 - server_cpu0,
        gen_cpu_s=gen_cpu1 - gen_cpu0,
        other_cpu_s=max(0.0, (busy1 - busy0) - (server_cpu1 - server_cpu0) - (gen_cpu1 - gen_cpu0)),
        gen_procs=len(target.gens),
        peak_rss=peak,
        settle_s=settle,
        settle_max_s=args.settle_max,
    )
    summary["waited_for_quiet_s"] = waited
    return summary


# ---------------------------------------------------------------------------------------------
# Report


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def compute_ratios(report: dict[str, Any]) -> dict[str, Any]:
    servers = report["servers"]
    subject = report["subject"]
    anchors = [name for name in servers if name != subject]
    out: dict[str, Any] = {"subject": subject, "anchors": anchors, "rows": []}
    if subject is None or servers[subject]["status"] != "ok":
        return out

    def runs_by_level(name: str) -> dict[str, dict[str, Any]]:
        return {run["level"]: run for run in servers[name].get("runs", [])}

    def idle_by_mode(name: str) -> dict[str, dict[str, Any]]:
        return {idle["mode"]: idle for idle in servers[name].get("idle", [])}

    rows: list[dict[str, Any]] = []
    mine = runs_by_level(subject)
    for level, run in mine.items():
        # In saturation latency is in-flight window / throughput (Little's law): only the
        # throughput is compared there.
        if run["mode"] == "saturate":
            metrics = [("delivered_per_s", "max throughput (deliveries/s)", "higher")]
        else:
            metrics = [("p50_ms", "p50 latency", "lower"), ("p99_ms", "p99 latency", "lower")]
        for key, label, better in metrics:
            row = {"metric": f"{label} @ {level}", "better": better, "values": {}, "flagged": {}}
            for anchor in anchors:
                theirs = (
                    runs_by_level(anchor).get(level) if servers[anchor]["status"] == "ok" else None
                )
                row["values"][anchor] = ratio(run[key], theirs[key]) if theirs else None
                row["flagged"][anchor] = bool(
                    theirs and (set(run["flags"]) | set(theirs["flags"])) & CAVEAT_FLAGS
                )
            rows.append(row)
    for mode, idle in idle_by_mode(subject).items():
        row = {
            "metric": f"memory per idle conn ({mode})",
            "better": "lower",
            "values": {},
            "flagged": {},
        }
        for anchor in anchors:
            theirs = idle_by_mode(anchor).get(mode)
            row["values"][anchor] = (
                ratio(idle["bytes_per_conn"], theirs["bytes_per_conn"]) if theirs else None
            )
        rows.append(row)
    out["rows"] = rows
    return out


FANOUT_COLUMNS = (
    "load",
    "server",
    "offered upd/s",
    "sent upd/s",
    "delivered msg/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "lost",
    "server CPU %",
    "gen CPU %",
    "other CPU %",
    "sched lag p99 ms",
    "peak RSS MiB",
    "bytes identical %",
    "flags",
)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    load = meta["load"]
    lines = [
        "# Relay fan-out benchmark",
        "",
        f"{meta['started_at']} · {meta['machine']} · load average at start {meta['loadavg']}",
        "",
        f"Load: {load['rooms']} rooms × {load['clients']} clients ({load['writers']} writers "
        f"per room), warm-up {load['warmup_s']} s, measured {load['duration_s']} s, drain ≤ "
        f"{load['drain_s']} s; saturation window {load['window']} updates per writer; "
        f"generator: {meta['generator']}.",
        "",
        "| server | what | status |",
        "| --- | --- | --- |",
    ]
    for name, entry in report["servers"].items():
        status = (
            entry["status"] if entry["status"] == "ok" else f"{entry['status']}: {entry['reason']}"
        )
        lines.append(f"| {name} | {entry.get('version', SERVER_LABELS[name])} | {status} |")
    ratios = report["ratios"]
    lines += ["", f"## Ratios ({ratios['subject'] or 'no subject'} ÷ anchor)", ""]
    if ratios["rows"]:
        lines.append(
            "| metric | better | "
            + " | ".join(f"{ratios['subject']}/{a}" for a in ratios["anchors"])
            + " |"
        )
        lines.append("| --- | --- |" + " --- |" * len(ratios["anchors"]))
        for row in ratios["rows"]:
            values = " | ".join(
                _fmt(row["values"][a], 2) + ("*" if row["flagged"].get(a) else "")
                for a in ratios["anchors"]
            )
            lines.append(f"| {row['metric']} | {row['better']} | {values} |")
        if any(any(row["flagged"].values()) for row in ratios["rows"]):
            lines += [
                "",
                "\\* one of the two runs is flagged (LOST, gen-cpu, gen-late or noisy: see below); "
                "read that ratio with care.",
            ]
    else:
        lines.append(f"n/a: {ratios['subject'] or 'the subject'} has no results in this run.")
    lines += [
        "",
        "## Fan-out",
        "",
        "| " + " | ".join(FANOUT_COLUMNS) + " |",
        "| --- | --- |" + " ---: |" * (len(FANOUT_COLUMNS) - 3) + " --- |",
    ]
    for level in report["levels"]:
        for name, entry in report["servers"].items():
            run = next((r for r in entry.get("runs", []) if r["level"] == level), None)
            skipped = next(
                (s for s in entry.get("skipped_levels", []) if s["level"] == level), None
            )
            if run is None:
                if skipped:
                    lines.append(
                        f"| {level} | {name} |"
                        + " |" * (len(FANOUT_COLUMNS) - 3)
                        + f" skipped: {skipped['reason']} |"
                    )
                continue
            lines.append(
                f"| {level} | {name} | {_fmt(run['offered_ups'], 0)} | {_fmt(run['sent_ups'], 0)} "
                f"| {_fmt(run['delivered_per_s'], 0)} | {_fmt(run['p50_ms'], 2)} "
                f"| {_fmt(run['p99_ms'], 2)} | {_fmt(run['max_ms'], 1)} | {run['lost_deliveries']} "
                f"| {_fmt(run['server_cpu_pct'], 0)} | {_fmt(run['gen_cpu_pct'], 0)} "
                f"| {_fmt(run['other_cpu_pct'], 0)} "
                f"| {_fmt(run['sched_lag_p99_ms'], 2)} | {_fmt(run['peak_rss_mib'], 1)} "
                f"| {_fmt(run['bytes_identical_pct'], 0)} | {' '.join(run['flags'])} |"
            )
    lines += [
        "",
        "## Idle connections",
        "",
        "| server | mode | conns | RSS before MiB | RSS after MiB | KiB per conn |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in report["servers"].items():
        for idle in entry.get("idle", []):
            lines.append(
                f"| {name} | {idle['mode']} | {idle['conns']} | {_fmt(idle['rss_before_mib'])} "
                f"| {_fmt(idle['rss_after_mib'])} | {_fmt(idle['bytes_per_conn'] / 1024)} |"
            )
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"* {note}" for note in report["notes"]]
    lines += [
        "",
        "Latency: receive − send time per (update, receiver) pair; p50/p99 to 1 %. *delivered "
        "msg/s*: fan-out deliveries received during the measured window. CPU %: of one core "
        "over the window. Flags: LOST deliveries; gen-cpu (generator ≥ 90 % of a core) or "
        "gen-late (generator p99 lag > 10 ms): the server may be faster than shown; noisy "
        "(other jobs used > 30 % of a core); no-settle (server still busy after the run: it was "
        "restarted). See bench/README.md.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Where the servers under test come from (shared with ``bench.conn_scaling``)."""
    parser.add_argument("--node", default="node", help="node executable")
    parser.add_argument(
        "--node-dir",
        type=Path,
        default=DEFAULT_NODE_DIR,
        help="directory whose node_modules has yjs, y-websocket 2.1.0, ws",
    )
    parser.add_argument(
        "--relay-exe", help="focusmate-relay executable (default: beside python, then PATH)"
    )
    parser.add_argument(
        "--relay-limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra `--limit` for focusmate-relay serve (repeatable)",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="relay_fanout",
        description="Fan-out benchmark: focusmate-relay vs y-websocket (Node) vs pycrdt-websocket.",
    )
    parser.add_argument(
        "--servers", default=",".join(SERVER_NAMES), help="comma-separated, from ours,node,pycrdt"
    )
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--clients", type=int, default=5, help="clients per room (>= 2)")
    parser.add_argument("--writers", type=int, default=0, help="writers per room (0: all clients)")
    parser.add_argument(
        "--levels",
        default="500,2000,8000",
        help="offered updates/s in total, comma-separated ('' for none)",
    )
    parser.add_argument(
        "--saturate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the closed-loop saturation mode",
    )
    parser.add_argument(
        "--window", type=int, default=4, help="saturation: updates in flight per writer"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument(
        "--drain", type=float, default=5.0, help="max seconds to wait for stragglers"
    )
    parser.add_argument(
        "--settle-max",
        type=float,
        default=15.0,
        help="max seconds for a server to go quiet after a run",
    )
    parser.add_argument(
        "--overload-p99-ms",
        type=float,
        default=1000.0,
        help="p99 above which higher levels are skipped",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per server and level; the table keeps the least disturbed one",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="max seconds to wait before each run for other jobs to leave a core free",
    )
    parser.add_argument("--idle-conns", type=int, default=1000)
    parser.add_argument(
        "--idle-modes", default="shared,per-doc", help="shared,per-doc ('' for none)"
    )
    parser.add_argument("--idle-settle", type=float, default=1.0, help="seconds before reading RSS")
    parser.add_argument(
        "--gen-procs", type=int, default=1, help="generator processes per server (1-2)"
    )
    add_server_options(parser)
    parser.add_argument(
        "--out-dir",
        "--out",
        type=Path,
        dest="out_dir",
        help=f"default {DEFAULT_RESULTS_DIR} (--quick: a temp dir)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only rewrite the Markdown, ratios and Result of an existing details JSON",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny smoke run (~10 s per server pair)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rooms, args.clients, args.levels = 4, 3, "40"
        args.warmup, args.duration, args.drain, args.settle_max = 0.2, 0.8, 2.0, 3.0
        args.quiet_wait = 0.0
        args.idle_conns, args.idle_modes, args.idle_settle = 20, "shared", 0.3
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.level_list = sorted(float(x) for x in args.levels.split(",") if x.strip())
    args.idle_mode_list = [m.strip() for m in args.idle_modes.split(",") if m.strip()]
    unknown = set(args.server_list) - set(SERVER_NAMES)
    if unknown or not args.server_list:
        parser.error(f"--servers: unknown {sorted(unknown)}; choose from {', '.join(SERVER_NAMES)}")
    if set(args.idle_mode_list) - {"shared", "per-doc"}:
        parser.error("--idle-modes: shared and/or per-doc")
    if args.clients < 2 or args.rooms < 1 or not 0 <= args.writers <= args.clients:
        parser.error("need --rooms >= 1, --clients >= 2 and 0 <= --writers <= --clients")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if not 1 <= args.gen_procs <= 4:
        parser.error("--gen-procs: 1 to 4 (this is a 2-core machine: 1-2)")
    return args


def machine_description() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE / 1024**3
    return (
        f"{os.cpu_count()} × {model}, {mem_gib:.0f} GiB, {platform.system()} {platform.release()}"
    )


def raise_fd_limit() -> None:
    import resource  # noqa: PLC0415 - Unix only, like the rest of this script

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def level_name(rate: float) -> str:
    return f"{rate:g}/s"


def new_report(args: argparse.Namespace) -> dict[str, Any]:
    levels = [level_name(r) for r in args.level_list] + (["saturate"] if args.saturate else [])
    return {
        "meta": {
            "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "machine": machine_description(),
            "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "python": platform.python_version(),
            "generator": "Node (bench/loadgen/fanout_gen.cjs)",
            "argv": sys.argv[1:],
            "quick": args.quick,
            "load": {
                "rooms": args.rooms,
                "clients": args.clients,
                "writers": args.writers or args.clients,
                "levels_ups": args.level_list,
                "saturate": args.saturate,
                "window": args.window,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "drain_s": args.drain,
                "idle_conns": args.idle_conns,
                "idle_modes": args.idle_mode_list,
                "gen_procs": args.gen_procs,
                "repeat": args.repeat,
            },
        },
        "subject": None,
        "levels": levels,
        "servers": {},
        "ratios": {},
        "notes": [],
    }


def log(message: str) -> None:
    print(f"[relay_fanout] {message}", file=sys.stderr, flush=True)


def discover(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Anchor]:
    anchors: dict[str, Anchor] = {}
    for name in args.server_list:
        found = PROBES[name](args)
        if isinstance(found, str):
            log(f"{name}: skipped: {found}")
            report["servers"][name] = {"status": "skipped", "reason": found}
        else:
            anchors[name] = found
            report["servers"][name] = {
                "status": "ok",
                "version": found.version,
                "runs": [],
                "idle": [],
                "skipped_levels": [],
            }
    report["subject"] = args.server_list[0]
    return anchors


def fail(
    report: dict[str, Any], name: str, exc: BaseException, server: ServerProcess | None
) -> None:
    entry = report["servers"][name]
    entry["status"] = "error"
    entry["reason"] = str(exc)
    tail = server.log_tail() if server is not None else ""
    log(f"{name}: ERROR: {exc}" + (f"\n{tail}" if tail else ""))


def run_idle_phase(
    args: argparse.Namespace, anchors: dict[str, Anchor], report: dict[str, Any], workdir: Path
) -> None:
    for name, anchor in anchors.items():
        for mode in args.idle_mode_list:
            if report["servers"][name]["status"] != "ok":
                break
            log(f"{name}: idle memory, {args.idle_conns} conns ({mode})")
            try:
                idle = measure_idle(anchor, args, workdir, mode)
            except BenchError as exc:
                fail(report, name, exc, None)
                break
            report["servers"][name]["idle"].append(idle)
            log(f"{name}: {idle['bytes_per_conn'] / 1024:.1f} KiB per idle conn ({mode})")


def run_load_phase(
    args: argparse.Namespace,
    anchors: dict[str, Anchor],
    report: dict[str, Any],
    workdir: Path,
    stack: contextlib.ExitStack,
) -> None:
    sampler = stack.enter_context(RssSampler())
    targets: dict[str, LoadTarget] = {}
    for name, anchor in anchors.items():
        if report["servers"][name]["status"] != "ok":
            continue
        log(f"{name}: connecting {args.rooms} rooms × {args.clients} clients")
        try:
            targets[name] = start_load_target(anchor, args, workdir, sampler)
        except BenchError as exc:
            fail(report, name, exc, None)
            continue
        stack.callback(stop_load_target, targets[name])
    plan: list[tuple[str, float | None]] = [(level_name(r), r) for r in args.level_list]
    if args.saturate:
        plan.append(("saturate", None))
    for level, rate in plan:
        active = []
        for name, target in targets.items():
            entry = report["servers"][name]
            if entry["status"] != "ok":
                continue
            if rate is not None and target.overloaded_at is not None:
                reason = f"overloaded at {target.overloaded_at}"
                entry["skipped_levels"].append({"level": level, "reason": reason})
                log(f"{name} @ {level}: skipped ({reason})")
                continue
            active.append(name)
        attempts: dict[str, list[dict[str, Any]]] = {name: [] for name in active}
        for _ in range(args.repeat):
            for name in active:
                if report["servers"][name]["status"] != "ok":
                    continue
                before = targets[name]
                run = run_one(
                    targets, name, args, sampler, level=level, rate=rate, anchor=anchors[name]
                )
                if targets[name] is not before:  # restarted
                    stack.callback(stop_load_target, targets[name])
                if isinstance(run, BenchError):
                    fail(report, name, run, targets[name].server)
                    continue
                attempts[name].append(run)
        for name, runs in attempts.items():
            if not runs:
                continue
            # Of the repeats, keep the least disturbed window (other jobs' CPU): a criterion
            # blind to the server's own figures. All repeats stay in the JSON.
            chosen = min(runs, key=lambda run: run["other_cpu_pct"])
            chosen["repeats"] = [{k: run[k] for k in REPEAT_FIELDS if k in run} for run in runs]
            report["servers"][name]["runs"].append(chosen)
            if rate is not None and is_overloaded(chosen, args):
                targets[name].overloaded_at = level
        if rate is not None:
            for name, target in targets.items():
                report["servers"][name]["overloaded_at"] = target.overloaded_at


REPEAT_FIELDS = (
    "sent_ups",
    "delivered_per_s",
    "p50_ms",
    "p99_ms",
    "lost_deliveries",
    "server_cpu_pct",
    "gen_cpu_pct",
    "other_cpu_pct",
    "flags",
)


def run_one(
    targets: dict[str, LoadTarget],
    name: str,
    args: argparse.Namespace,
    sampler: RssSampler,
    *,
    level: str,
    rate: float | None,
    anchor: Anchor,
) -> dict[str, Any] | BenchError:
    """One measured run; a server left busy by it is restarted (targets[name] replaced)."""
    target = targets[name]
    try:
        run = run_level(target, args, sampler, level=level, rate=rate)
    except BenchError as exc:
        return exc
    log(
        f"{name} @ {level}: sent {run['sent_ups']:.0f}/s, delivered "
        f"{run['delivered_per_s']:.0f}/s, p50 {_fmt(run['p50_ms'], 2)} ms, p99 "
        f"{_fmt(run['p99_ms'], 2)} ms, lost {run['lost_deliveries']}, server CPU "
        f"{run['server_cpu_pct']:.0f} %, gen CPU {run['gen_cpu_pct']:.0f} %, other "
        f"{run['other_cpu_pct']:.0f} % {' '.join(run['flags'])}"
    )
    if "no-settle" in run["flags"]:
        # Still chewing on a backlog: it would steal CPU from the next server's run.
        log(f"{name}: still busy {args.settle_max:.0f} s after the run: restarting it")
        stop_load_target(target)
        try:
            targets[name] = start_load_target(anchor, args, target.workdir, sampler)
        except BenchError as exc:
            return exc
        targets[name].overloaded_at = target.overloaded_at
    return run


def add_notes(report: dict[str, Any]) -> None:
    notes = report["notes"]
    for name, entry in report["servers"].items():
        for run in entry.get("runs", []):
            if run["lost_deliveries"]:
                notes.append(
                    f"{name} @ {run['level']}: {run['lost_deliveries']} of "
                    f"{run['expected_deliveries']} deliveries did not arrive within the drain time."
                )
            if {"gen-cpu", "gen-late"} & set(run["flags"]):
                notes.append(
                    f"{name} @ {run['level']}: the generator was near its limit or starved (CPU "
                    f"{run['gen_cpu_pct']:.0f} %, sched lag p99 "
                    f"{_fmt(run['sched_lag_p99_ms'], 1)} ms, other jobs "
                    f"{run['other_cpu_pct']:.0f} %): the server may be faster than shown."
                )
            if run["counts"]["unexpected_closes"]:
                notes.append(
                    f"{name} @ {run['level']}: {run['counts']['unexpected_closes']} "
                    "connections were closed by the server."
                )
    notes.append(
        "First connections per room are opened one at a time (then the rest of the room) for every "
        "server: pycrdt-websocket deadlocks when two clients create a room at the same moment."
    )


@contextlib.contextmanager
def work_directory(prefix: str = "relay-fanout-") -> Iterator[Path]:
    """A scratch directory, removed on success and kept (and named) for its logs on failure."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    ok = False
    try:
        yield path
        ok = True
    finally:
        if ok:
            shutil.rmtree(path, ignore_errors=True)
        else:
            log(f"logs kept in {path}")


def terminate(signum: int, frame: object) -> None:
    """SIGTERM handler: unwinds through the ExitStack and finally blocks, so servers stop."""
    del frame
    raise SystemExit(128 + signum)


def rerender(path: Path) -> int:
    """Recompute the ratios and rewrite the Markdown and Result of an existing details JSON."""
    report = json.loads(path.read_text())
    if "meta" not in report or "servers" not in report:
        print(f"{path}: not a relay_fanout details JSON", file=sys.stderr)
        return 2
    report["ratios"] = compute_ratios(report)
    print(write_outputs(report, path.parent))
    return 0


# ---------------------------------------------------------------------------------------------
# The common Result (bench/common.py): the headline figures, for bench/report.py

RESULT_LABELS = {
    "ours": "FocusMate relay",
    "node": "y-websocket (Node)",
    "pycrdt": "pycrdt-websocket",
}
KB_AS_KIB = 30 * 1000 / 1024  # issue 3: under 30 KB per idle connection


def common_result(report: dict[str, Any]) -> Result:
    """Saturated throughput, latency per offered level and idle memory, per server."""
    meta, load = report["meta"], report["meta"]["load"]
    figures: dict[str, dict[str, float]] = {}
    units: dict[str, str] = {}
    line_points: dict[str, list[list[float]]] = {}
    bars: dict[str, dict[str, list[list[Any]]]] = {"throughput": {}, "idle": {}}
    for server, entry in report["servers"].items():
        if entry["status"] != "ok":
            continue
        label = RESULT_LABELS[server]
        mine = figures.setdefault(label, {})
        for run in entry.get("runs", []):
            if run["mode"] == "saturate":
                mine["saturated throughput"] = run["delivered_per_s"]
                mine["saturated p99 latency"] = run["p99_ms"]
                units["saturated throughput"] = "deliveries/s"
                units["saturated p99 latency"] = "ms"
                bars["throughput"][label] = [["saturated", run["delivered_per_s"]]]
                continue
            for q in ("p50", "p99"):
                if run[f"{q}_ms"] is not None:
                    metric = f"{q} latency @ {run['offered_ups']:g} upd/s"
                    mine[metric], units[metric] = run[f"{q}_ms"], "ms"
            metric = f"server CPU @ {run['offered_ups']:g} upd/s"
            mine[metric], units[metric] = run["server_cpu_pct"], "% of a core"
            if run["p99_ms"] is not None:
                line_points.setdefault(label, []).append([run["offered_ups"], run["p99_ms"]])
        for idle in entry.get("idle", []):
            room = "one shared room" if idle["mode"] == "shared" else "a room each"
            metric = f"idle memory per connection, {room}"
            mine[metric], units[metric] = idle["bytes_per_conn"] / 1024, "KiB"
            bars["idle"].setdefault(label, []).append([room, idle["bytes_per_conn"] / 1024])
    subject_label = RESULT_LABELS[report["subject"]]
    subject = figures.pop(subject_label, {})
    # The goals are relative to the anchors: the ratios go in as subject figures.
    for anchor, metric, name in (
        ("y-websocket (Node)", "saturated throughput", "saturated throughput ÷ Node's"),
        ("y-websocket (Node)", "saturated p99 latency", "saturated p99 latency ÷ Node's"),
        ("pycrdt-websocket", "saturated throughput", "saturated throughput ÷ pycrdt-websocket's"),
    ):
        theirs = figures.get(anchor, {}).get(metric)
        if theirs and metric in subject:
            subject[name], units[name] = subject[metric] / theirs, "×"
    try:
        started = datetime.strptime(meta["started_at"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    except (KeyError, ValueError):
        started = datetime.now(UTC)
    cpus = meta.get("machine", "").split(" ")[0]
    series: dict[str, Any] = {}
    if line_points:
        series["p99 delivery latency vs offered load"] = {
            "x": "offered load (updates/s, all rooms)",
            "y": "p99 latency (ms, log scale)",
            "log": "xy",
            "data": line_points,
        }
    if bars["throughput"]:
        series["max fan-out throughput (closed loop)"] = {
            "x": "",
            "y": "deliveries/s",
            "kind": "bar",
            "data": bars["throughput"],
        }
    if bars["idle"]:
        series["memory per idle connection"] = {
            "x": "",
            "y": "KiB per connection",
            "kind": "bar",
            "data": bars["idle"],
        }
    return Result(
        name=RESULT_STEM,
        title="Relay fan-out: y-websocket updates to every client of a room",
        subject_name=subject_label,
        subject=subject,
        anchors=figures,
        units=units,
        targets=[
            Target("saturated throughput ÷ Node's", ">=", 1.0, "×"),
            Target("saturated p99 latency ÷ Node's", "<=", 1.0, "×"),
            Target("saturated throughput ÷ pycrdt-websocket's", ">=", 3.0, "×"),
            Target("idle memory per connection, one shared room", "<=", KB_AS_KIB, "KiB"),
            Target("idle memory per connection, a room each", "<=", KB_AS_KIB, "KiB"),
        ],
        series=series,
        notes=_result_notes(report),
        params={
            "rooms": load["rooms"],
            "clients_per_room": load["clients"],
            "writers_per_room": load["writers"],
            "offered_levels_ups": load["levels_ups"],
            "saturation_window": load["window"],
            "measured_s": load["duration_s"],
            "repeat": load["repeat"],
            "idle_conns": load["idle_conns"],
            "loadavg": meta["loadavg"],
            "argv": " ".join(meta["argv"]),
        },
        quick=bool(meta.get("quick")),
        machine={
            "python": meta.get("python"),
            "platform": meta.get("machine"),
            "cpus": int(cpus) if cpus.isdigit() else None,
        },
        started_at=started.timestamp(),
    )


def _result_notes(report: dict[str, Any]) -> list[str]:
    """The run's notes, plus what the Result's reader needs to weigh the figures."""
    notes = list(report["notes"])
    notes += [
        f"{name}: {entry['status']}: {entry.get('reason', '')}"
        for name, entry in report["servers"].items()
        if entry["status"] != "ok"
    ]
    noisy = [
        f"{name} @ {run['level']}"
        for name, entry in report["servers"].items()
        for run in entry.get("runs", [])
        if "noisy" in run["flags"]
    ]
    if noisy:
        notes.append(
            f"Other jobs used > {NOISY_OTHER_CPU_PCT:.0f} % of a core during {', '.join(noisy)}: "
            "trust the ratios more than the absolute figures, or rerun on a quiet machine."
        )
    notes.append(
        f"Every run, with generator and machine CPU and flags: {RESULT_STEM}.md and "
        f"{RESULT_STEM}{DETAILS_SUFFIX} next to this result."
    )
    return notes


def write_outputs(report: dict[str, Any], out_dir: Path) -> str:
    """Write the details JSON, the Markdown and the common Result; return the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (out_dir / f"{RESULT_STEM}{DETAILS_SUFFIX}").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{RESULT_STEM}.md").write_text(markdown)
    common_result(report).write(out_dir)
    return markdown


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return rerender(args.render)
    signal.signal(signal.SIGTERM, terminate)
    raise_fd_limit()
    report = new_report(args)
    anchors = discover(args, report)
    with work_directory() as workdir, contextlib.ExitStack() as stack:
        run_idle_phase(args, anchors, report, workdir)
        run_load_phase(args, anchors, report, workdir, stack)
    report["ratios"] = compute_ratios(report)
    add_notes(report)
    out_dir = args.out_dir or (
        Path(tempfile.gettempdir()) / "focusmate-bench" if args.quick else DEFAULT_RESULTS_DIR
    )
    print(write_outputs(report, out_dir))
    log(f"wrote {out_dir / RESULT_STEM}.json, {DETAILS_SUFFIX} and .md")
    errors = [n for n, e in report["servers"].items() if e["status"] == "error"]
    lost = any(r["lost_deliveries"] for e in report["servers"].values() for r in e.get("runs", []))
    if errors or (args.quick and lost):
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
