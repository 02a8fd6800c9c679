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

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
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
