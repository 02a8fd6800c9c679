"""The machine a benchmark shares: CPU and memory of process trees from /proc (Linux), and
how busy the other processes are, so runs can wait for a free core and report their noise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
QUIET_OTHER_CPU_PCT = 50.0  # "a core is free": other processes use under half of one


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_tree(root: int) -> list[int]:
    """The root pid and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(pids: list[int]) -> float:
    return sum(stat[1] for pid in pids if (stat := _read_stat(pid)) is not None) / CLK_TCK


def tree_rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return total


def vm_hwm_bytes(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat: everything but idle)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


@contextlib.contextmanager
def cpu_window() -> Iterator[dict[str, float]]:
    """The CPU that processes other than ours (and our children) used during the block, in % of
    one core: a noise indicator (it has the 10 ms resolution of /proc)."""
    tree = process_tree(os.getpid())
    busy0, ours0, t0 = machine_busy_seconds(), tree_cpu_seconds(tree), time.perf_counter()
    out: dict[str, float] = {}
    yield out
    tree = sorted(set(tree) | set(process_tree(os.getpid())))
    wall = time.perf_counter() - t0
    other = (machine_busy_seconds() - busy0) - (tree_cpu_seconds(tree) - ours0)
    out["other_cpu_pct"] = max(0.0, 100 * other / wall) if wall > 0 else 0.0


async def settle(max_s: float) -> float:
    """Wait (at most ``max_s``) until other processes leave a core free: they used under half
    a core over 0.25 s. Returns the time waited (a sign of how busy the machine was)."""
    start = time.monotonic()
    while time.monotonic() - start < max_s:
        with cpu_window() as window:
            await asyncio.sleep(0.25)
        if window["other_cpu_pct"] < QUIET_OTHER_CPU_PCT:
            break
    return time.monotonic() - start
