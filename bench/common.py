"""What every benchmark in ``bench/`` shares: its result file, its anchors, its time bound.

A benchmark is a module ``bench/<name>.py`` with a ``main(argv) -> int`` that accepts at least
``--quick`` (a seconds-long smoke run of the same code paths, for CI) and ``--out DIR`` (where
``<name>.json`` goes; default ``bench/results``). It measures our subject and, in the same run,
one or more *anchors* (a reference implementation, or the naive way), and writes a
:class:`Result`: the figures of each, the subject's ratios to each anchor, and the targets from
the issue with whether they were met. ``bench/run_all.py`` (``make bench``) runs every
benchmark in its own process under a time limit; ``bench/report.py`` turns the JSON files into
``docs/benchmarks.md`` with tables and plots.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "executable": sys.executable,
    }


@dataclass
class Target:
    """A goal from the issue: ``metric`` of the subject ``op`` (``<=`` or ``>=``) ``value``."""

    metric: str
    op: str
    value: float
    unit: str = ""
    met: bool | None = None  # filled in by Result.check_targets

    def check(self, figures: Mapping[str, float]) -> None:
        got = figures.get(self.metric)
        if got is None:
            self.met = None
        else:
            self.met = got <= self.value if self.op == "<=" else got >= self.value


@dataclass
class Result:
    """One benchmark run. ``subject`` and each anchor map metric names to numbers; ``units``
    names each metric's unit; ``series`` holds data for plots (name -> list of points)."""

    name: str
    title: str
    subject_name: str
    subject: dict[str, float] = field(default_factory=dict)
    anchors: dict[str, dict[str, float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    machine: dict[str, Any] = field(default_factory=machine)
    started_at: float = field(default_factory=time.time)

    def ratios(self) -> dict[str, dict[str, float]]:
        """anchor -> metric -> subject / anchor, for every metric both have (non-zero)."""
        out: dict[str, dict[str, float]] = {}
        for anchor, figures in self.anchors.items():
            out[anchor] = {
                metric: self.subject[metric] / value
                for metric, value in figures.items()
                if metric in self.subject and value
            }
        return out

    def check_targets(self) -> None:
        for target in self.targets:
            target.check(self.subject)

    def write(self, out: Path | None = None) -> Path:
        self.check_targets()
        directory = out or RESULTS
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        body = {**asdict(self), "ratios": self.ratios()}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True, allow_nan=False) + "\n")
        os.replace(tmp, path)
        return path


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN-free input, at least one value."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(values: Iterable[float], prefix: str) -> dict[str, float]:
    """``<prefix>_p50``, ``_p99``, ``_max`` and ``_mean`` of ``values``."""
    data = list(values)
    return {
        f"{prefix}_p50": percentile(data, 50),
        f"{prefix}_p99": percentile(data, 99),
        f"{prefix}_max": max(data),
        f"{prefix}_mean": statistics.fmean(data),
    }


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (default: this one), from /proc (Linux)."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


# --- Helpers for benchmarks that drive a relay subprocess (conn_churn, flood_fairness, gc_storm)

# Per-address limits lifted for a harness that (re)connects far faster than any user would.
LIFTED_LIMITS = (
    "connects_per_ip_per_second=1000000",
    "connect_burst_per_ip=1000000",
    "max_connections_per_ip=100000",
    "ip_messages_per_second=1000000",
    "ip_message_burst=1000000",
    "ip_frames_per_turn=1000000",
)
LOOP_LAG = "focusmate_relay_event_loop_lag_seconds"
_METRIC = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$")


def bench_parser(name: str, doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The options every benchmark has: ``--quick`` and ``--out``."""
    parser = argparse.ArgumentParser(prog=name, description=doc.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, help=f"results directory (default {RESULTS})")
    return parser


def out_directory(out: Path | None, quick: bool) -> Path:
    """``--out``, else a scratch directory for a quick run, else ``bench/results``; created."""
    directory = out or (Path(tempfile.gettempdir()) / "focusmate-bench" if quick else RESULTS)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_details(out: Path, name: str, details: Any) -> None:
    """The raw figures behind ``<name>.json``, as ``<name>.details.json``."""
    (out / f"{name}.details.json").write_text(json.dumps(details, indent=2) + "\n")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_meta() -> dict[str, Any]:
    """When a run started and the machine's load then (``loadavg_end`` is added at the end)."""
    return {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "loadavg": loadavg(),
    }


def finish_details(
    name: str,
    args: argparse.Namespace,
    report: dict[str, Any],
    meta: dict[str, Any],
    started: float,
) -> Path:
    """End a run: ``meta`` (from :func:`run_meta`) gets ``loadavg_end`` and ``elapsed_s`` (since
    ``started``, monotonic) and goes into ``report["meta"]``; the report is written as details
    to ``--out`` (see :func:`out_directory`), which is returned for the result file."""
    meta["loadavg_end"] = loadavg()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    report["meta"] = meta
    out = out_directory(args.out, args.quick)
    write_details(out, name, report)
    return out


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes, from /proc (Linux)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1]) * 1024
    return out


def limit_args(limits: Iterable[str]) -> list[str]:
    """``--limit NAME=VALUE`` arguments for ``python -m relay serve``."""
    return [a for limit in limits for a in ("--limit", limit)]


def scrape(port: int) -> dict[str, float]:
    """The relay's /metrics on loopback: series (name plus labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


async def metrics(port: int) -> dict[str, float]:
    """:func:`scrape`, off the event loop (which is measuring)."""
    return await asyncio.to_thread(scrape, port)


def histogram_delta(
    before: dict[str, float], after: dict[str, float], name: str
) -> dict[float, float]:
    """A relay histogram's cumulative bucket counts over a phase: upper bound -> count."""
    counts: dict[float, float] = {}
    prefix = name + "_bucket"
    for key, value in after.items():
        if key.startswith(prefix):
            le = key.split('le="', 1)[1].rstrip('"}')
            counts[float(le)] = value - before.get(key, 0.0)
    return counts


def tail(counts: dict[float, float], over: float) -> float:
    """Observations above ``over`` (a bucket bound)."""
    total = counts.get(float("inf"), 0.0)
    return total - counts.get(over, total)


def largest(counts: dict[float, float]) -> str | None:
    """The bucket of the largest observation, e.g. "<= 0.05" (s), "> 2" past the last bound."""
    bounds = sorted(counts)
    if not bounds or not counts[bounds[-1]]:
        return None
    bound = next(b for b in bounds if counts[b] >= counts[bounds[-1]])
    return f"<= {bound:g}" if bound != float("inf") else f"> {bounds[-2]:g}"


async def wait_for(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]], limit_s: float
) -> bool:
    """Poll ``predicate`` (plain or async) every 0.1 s for up to ``limit_s``; its last value."""
    deadline = time.monotonic() + limit_s
    while True:
        value = predicate()
        ok = bool(await value) if inspect.isawaitable(value) else bool(value)
        if ok or time.monotonic() >= deadline:
            return ok
        await asyncio.sleep(0.1)
