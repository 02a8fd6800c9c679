"""LAN: from a peer starting to being discovered and first synced (issue 7, item 5; ≤ 1.5 s).

Real mDNS (zeroconf) on a private Ethernet segment made of network namespaces
(``tests/lan/netns.py``: a bridge and one namespace per host, ``10.77.77.0/24``); nothing is
sent outside them. Needs root: without it (or without ``ip``) the result only says why.

Subject: ``focusmate daemon`` (``ui.launcher.main``, what the ``focusmate`` command runs, its
JSON events on stdout). Daemon A runs throughout in one namespace with a room. For each run a
fresh profile B that joined the room by its invite code (the room itself has never reached B) is
started as a daemon in the other namespace, and we take, from B's process start (``ip netns
exec`` included): its interpreter up and its imports done (two timestamps the launcher line
prints before it calls ``main``), B's engine up (``daemon_started``), B discovers A and A
discovers B (``peer_discovered``), B's ``link_up``, and B's ``doc_synced`` of the room (first
synced; A's too). Then B stops (goodbyes) and A must report it lost before the next run.

Of two LAN peers the one with the smaller user id dials (``sync.lan``), and that decides the
path: if B dials, it needs only A's advert (already on the network); if A dials, it needs B's,
which zeroconf sends only after probing the name (about a second). So B's profile is made so
that the runs alternate between the two (``new dials`` / ``daemon dials``), ``--repeats`` of
each, and each is reported apart: a user gets either, at random.

Anchors, interleaved with the subject runs, same namespaces and interfaces:

* ``zeroconf``: bare python-zeroconf, the way ``sync.discovery`` uses it (``AsyncZeroconf`` on
  every interface, ``AsyncServiceBrowser``, ``async_register_service`` after probing, resolve
  with ``AsyncServiceInfo.async_request``) in two processes, a long-running one beside A and a
  new one beside B: how fast mDNS discovery itself is, from the new process's start.
* ``zeroconf-no-probe``: the same with ``cooperating_responders=True`` (zeroconf skips probing):
  what announcing at once would give.
* ``imports``: the process start of ``python -c pass``, ``import sync.engine`` and
  ``import ui.launcher`` (what the daemon imports), spawn to exit, in B's namespace.

Every wait is bounded; children are stopped and the namespaces deleted at the end, also on
errors. Times come from the children's own clock readings (``at``; one machine, one clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/lan_discovery.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Result, Target
from bench.machine import cpu_window, settle
from focusmate.clock import SystemClock
from focusmate.workspace import Workspace
from tests.lan.netns import REPO, Child, Host, lan, netns_available

NAME = "lan_discovery"
TARGET_MS = 1500.0
DEADLINE_S = 15.0
# What the `focusmate` command runs, plus two timestamps of our own first (JSON lines before the
# daemon's): the interpreter is up, and ui.launcher (everything the daemon imports) is imported.
DAEMON = (
    "import json, sys, time\n"
    "print(json.dumps({'event': 'bench_python_up', 'at': time.time()}), flush=True)\n"
    "from ui.launcher import main\n"
    "print(json.dumps({'event': 'bench_imported', 'at': time.time()}), flush=True)\n"
    "sys.exit(main(sys.argv[1:]))"
)
IMPORTS = {
    "python_ms": "pass",
    "import_engine_ms": "import sync.engine",
    "import_daemon_ms": "import ui.launcher",
}
# A bare zeroconf peer, as sync.discovery drives zeroconf: prints JSON lines (`at`: its clock)
# for `imported`, `registered` and each other instance `found` (resolved); exits when its stdin
# closes, after saying goodbye. argv[1]: "probe" or "no-probe".
ZEROCONF_PEER = r"""
import asyncio, json, secrets, sys, time
import ifaddr
from zeroconf import InterfaceChoice, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

TYPE = "_fmbench._tcp.local."

def emit(event, **fields):
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)

async def main(probe):
    emit("imported")
    loop = asyncio.get_running_loop()
    zc = AsyncZeroconf(interfaces=InterfaceChoice.All)
    label = secrets.token_hex(6)
    me = f"{label}.{TYPE}"
    seen, tasks = set(), set()

    async def resolve(name):
        info = AsyncServiceInfo(TYPE, name)
        if await info.async_request(zc.zeroconf, 3000):
            emit("found", name=name)

    def changed(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added and name != me and name not in seen:
            seen.add(name)
            task = loop.create_task(resolve(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(zc.zeroconf, TYPE, handlers=[changed])
    addresses = sorted({ip.ip for a in ifaddr.get_adapters() for ip in a.ips
                        if isinstance(ip.ip, str) and not ip.ip.startswith("127.")})
    info = AsyncServiceInfo(TYPE, me, port=9, properties={b"v": b"1"}, server=f"{label}.local.",
                            parsed_addresses=addresses, host_ttl=120, other_ttl=120)
    announcing = await zc.async_register_service(info, cooperating_responders=not probe)
    emit("registered", name=me)
    await loop.run_in_executor(None, sys.stdin.read)
    await browser.async_cancel()
    await announcing
    await (await zc.async_unregister_service(info))
    await zc.async_close()

asyncio.run(main(sys.argv[1] == "probe"))
"""


class BenchError(Exception):
    """A peer did not get where it should within the deadline."""


@dataclass
class Run:
    kind: str  # "daemon", "zeroconf", "zeroconf-no-probe", "imports"
    figures: dict[str, float] = field(default_factory=dict)  # ms from the process start
    order: str = ""  # daemon runs: "new dials" or "daemon dials"
    other_cpu_pct: float = 0.0


# ---------------------------------------------------------------------------------------------
# Measuring


def event_is(kind: str, /, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == kind and all(e.get(k) == v for k, v in fields.items())


async def at(
    child: Child,
    predicate: Callable[[dict[str, Any]], bool],
    what: str,
    t0: float,
    *,
    since: int = 0,
) -> float:
    """Milliseconds from ``t0`` (wall clock) to the child's first matching event."""
    try:
        event = await child.wait_for(predicate, what, since=since, timeout=DEADLINE_S)
    except AssertionError as err:
        raise BenchError(str(err)[:2000]) from None
    return 1000 * (float(event["at"]) - t0)


async def stop(child: Child) -> None:
    """SIGTERM (``ip netns exec`` execs, so this is the daemon itself), then close."""
    if child.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signal.SIGTERM)
    await child.close()


def profile_for(workdir: Path, invite: str, owner: str, *, dials: bool) -> tuple[Path, str]:
    """A new profile that joined the room by code, whose user id sorts before the owner's
    (it dials) or after (it is dialled)."""
    while True:
        path = workdir / f"peer-{secrets.token_hex(4)}"
        with Workspace(path, clock=SystemClock()) as ws:
            if (ws.user_id < owner) == dials:
                ws.join_room(invite)
                return path, ws.user_id
        shutil.rmtree(path)


async def daemon_run(
    host: Host, daemon_a: Child, profile: Path, *, user_b: str, user_a: str, room_id: str
) -> dict[str, float]:
    """Start daemon B; ms from its start to each milestone, at B and at A."""
    since = len(daemon_a.events)
    t0 = time.time()
    b = await Child.start(host.netns, DAEMON, "--profile", str(profile), "daemon", name="B")
    try:
        figures = {
            "python_up_ms": await at(b, event_is("bench_python_up"), "python", t0),
            "imported_ms": await at(b, event_is("bench_imported"), "imports", t0),
            "discovered_new_ms": await at(b, event_is("peer_discovered", peer=user_a), "A", t0),
            "discovered_old_ms": await at(
                daemon_a, event_is("peer_discovered", peer=user_b), "B", t0, since=since
            ),
            "link_up_ms": await at(b, event_is("link_up", link=f"lan:{user_a}"), "link", t0),
            "synced_ms": await at(b, event_is("doc_synced", doc_id=room_id), "the room", t0),
            "synced_at_daemon_ms": await at(
                daemon_a,
                event_is("doc_synced", doc_id=room_id, link=f"lan:{user_b}"),
                "the room at A",
                t0,
                since=since,
            ),
            "engine_up_ms": await at(b, event_is("daemon_started"), "started", t0),
        }
    finally:
        await stop(b)
    try:  # the next run is clean only once A has dropped B (from B's goodbye)
        await at(daemon_a, event_is("peer_lost", peer=user_b), "B's goodbye", t0, since=since)
    except BenchError:
        log("daemon A did not report B lost (goodbye missed?)")
    return figures


async def zeroconf_run(hosts: list[Host], old: Child, *, probe: bool) -> dict[str, float]:
    """A new bare zeroconf peer beside B: ms from its start until each finds the other."""
    since = len(old.events)
    t0 = time.time()
    mode = "probe" if probe else "no-probe"
    new = await Child.start(hosts[1].netns, ZEROCONF_PEER, mode, name=f"zeroconf-{mode}")
    try:
        imported = await at(new, event_is("imported"), "imported", t0)
        registered = await new.wait_for(event_is("registered"), "registered", timeout=DEADLINE_S)
        figures = {
            "zeroconf_imported_ms": imported,
            "registered_ms": 1000 * (float(registered["at"]) - t0),
            "discovered_new_ms": await at(new, event_is("found"), "the old peer", t0),
            "discovered_old_ms": await at(
                old, event_is("found", name=registered["name"]), "the new peer", t0, since=since
            ),
        }
    finally:
        await new.close()
    return figures


async def import_run(host: Host) -> dict[str, float]:
    """Spawn to exit of each import floor, in B's namespace (``ip netns exec`` included)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    figures = {}
    for metric, code in IMPORTS.items():
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", host.netns, sys.executable, "-c", code,
            cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if await asyncio.wait_for(proc.wait(), DEADLINE_S) != 0:
            raise BenchError(f"`python -c {code!r}` failed")
        figures[metric] = 1000 * (time.perf_counter() - t0)
    return figures


# ---------------------------------------------------------------------------------------------
# The run


def log(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class Segment:
    """The running side of the LAN: daemon A with its room, and the bare zeroconf peer."""

    hosts: list[Host]
    workdir: Path
    daemon_a: Child
    old: Child
    user_a: str
    room_id: str
    invite_code: str


async def one_round(args: argparse.Namespace, seg: Segment, order: str) -> list[Run]:
    """A daemon run in the given dialling order, then the anchors, each after a quiet wait."""
    await settle(args.quiet_wait)
    profile, user_b = profile_for(
        seg.workdir, seg.invite_code, seg.user_a, dials=order == "new dials"
    )
    with cpu_window() as window:
        figures = await daemon_run(
            seg.hosts[1], seg.daemon_a, profile, user_b=user_b, user_a=seg.user_a,
            room_id=seg.room_id,
        )  # fmt: skip
    runs = [Run("daemon", figures, order, window["other_cpu_pct"])]
    for probe in (True, False) if not args.quick else (True,):
        await settle(args.quiet_wait)
        with cpu_window() as window:
            zc = await zeroconf_run(seg.hosts, seg.old, probe=probe)
        kind = "zeroconf" if probe else "zeroconf-no-probe"
        runs.append(Run(kind, zc, other_cpu_pct=window["other_cpu_pct"]))
    await settle(args.quiet_wait)
    runs.append(Run("imports", await import_run(seg.hosts[1])))
    return runs


def describe(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        f = run.figures
        if run.kind == "imports":
            parts.append(f"import sync.engine {f['import_engine_ms']:.0f} ms")
        else:
            what = f"synced {f['synced_ms']:.0f} ms, " if run.kind == "daemon" else ""
            parts.append(
                f"{run.kind} {what}discovered {f['discovered_new_ms']:.0f}/"
                f"{f['discovered_old_ms']:.0f} ms (new/old; other CPU {run.other_cpu_pct:.0f} %)"
            )
    return "; ".join(parts)


async def measure(args: argparse.Namespace, workdir: Path) -> list[Run]:
    runs: list[Run] = []
    with lan(2) as net:
        profile_a = workdir / "daemon-a"
        with Workspace(profile_a, clock=SystemClock()) as owner:
            room, invite = owner.create_room("LAN bench")
            user_a = owner.user_id
        children: list[Child] = []
        try:
            ns_a = net.hosts[0].netns
            daemon_a = await Child.start(ns_a, DAEMON, "--profile", str(profile_a), "daemon")
            children.append(daemon_a)
            old = await Child.start(ns_a, ZEROCONF_PEER, "probe", name="zeroconf-old")
            children.append(old)
            for child in children:
                await child.wait_for(
                    lambda e: e.get("event") in ("daemon_started", "registered"),
                    "started",
                    timeout=DEADLINE_S,
                )
            seg = Segment(net.hosts, workdir, daemon_a, old, user_a, room.room_id, invite.code)
            plan = ["new dials", "daemon dials"] * args.repeats
            for i, order in enumerate(plan[: args.runs]):
                done = await one_round(args, seg, order)
                runs.extend(done)
                log(f"run {i + 1}/{args.runs} ({order}): {describe(done)}")
        finally:
            for child in children:
                await stop(child)
    return runs


def medians(runs: list[Run], suffix: str = "") -> dict[str, float]:
    """``<metric>_p50<suffix>`` and ``<metric>_max<suffix>`` over the runs."""
    out: dict[str, float] = {}
    for metric in runs[0].figures if runs else ():
        values = [r.figures[metric] for r in runs]
        out[f"{metric}_p50{suffix}"] = statistics.median(values)
        out[f"{metric}_max{suffix}"] = max(values)
    return out


def build_result(args: argparse.Namespace, runs: list[Run]) -> Result:
    result = Result(
        name=NAME,
        title="LAN: from a peer starting to discovered and first synced",
        subject_name="focusmate daemon (sync.discovery on python-zeroconf, async API)",
        quick=args.quick,
        params={
            "runs": args.runs,
            "orders": ["new dials", "daemon dials"],
            "segment": "2 network namespaces on a bridge, 10.77.77.0/24, mDNS on eth0",
            "loadavg_start": args.loadavg_start,
            "loadavg_end": loadavg(),
        },
    )
    daemon = [r for r in runs if r.kind == "daemon"]
    result.subject = medians(daemon)
    for order, suffix in (("new dials", "_new_dials"), ("daemon dials", "_daemon_dials")):
        picked = [r for r in daemon if r.order == order]
        if picked:
            result.subject[f"synced_ms_p50{suffix}"] = statistics.median(
                r.figures["synced_ms"] for r in picked
            )
    for kind in ("zeroconf", "zeroconf-no-probe"):
        floor = [r for r in runs if r.kind == kind]
        figures = medians(floor)
        if figures:
            # The floor of "first synced" is the discovery that triggers the dial: the new peer
            # finding the old one when it dials, the old one finding it otherwise.
            figures["synced_ms_p50_new_dials"] = figures["discovered_new_ms_p50"]
            figures["synced_ms_p50_daemon_dials"] = figures["discovered_old_ms_p50"]
            result.anchors[kind] = figures
    imports = medians([r for r in runs if r.kind == "imports"])
    if imports:
        result.anchors["imports"] = imports
    result.units = {
        metric: "ms" for figures in (result.subject, *result.anchors.values()) for metric in figures
    }
    result.targets = targets()
    result.series = {
        "runs": [
            {
                "kind": r.kind,
                "order": r.order,
                "other_cpu_pct": round(r.other_cpu_pct, 1),
                **{k: round(v, 1) for k, v in r.figures.items()},
            }
            for r in runs
        ]
    }
    others = [r.other_cpu_pct for r in runs if r.kind != "imports"]
    result.notes = [
        "Milliseconds from the new peer's process start (spawned with `ip netns exec`). "
        "python_up / imported: the daemon's interpreter is up / ui.launcher is imported; "
        "discovered_new: the new peer finds the running one; discovered_old: the running one "
        "finds the new peer; engine_up: the daemon's `daemon_started` event; registered (bare "
        "zeroconf): its advert is out, after probing.",
        "Of two peers the smaller user id dials: `new dials` needs only the running peer's "
        "advert; `daemon dials` needs the new peer's, sent only after zeroconf's probing. "
        "synced_ms_p50 over all runs falls between the two; the targets apply to each.",
        "Anchors zeroconf / zeroconf-no-probe: bare python-zeroconf used as sync.discovery uses "
        "it, with and without probing (cooperating_responders=True); their synced_ms_* figures "
        "are the discovery that triggers the dial in each order (a floor).",
        f"Other processes used a median {statistics.median(others) if others else 0:.0f} % of "
        f"a core during the measured windows (max {max(others, default=0):.0f} %); load "
        f"average {args.loadavg_start[0]:.2f} at the start.",
        *breakdown(daemon, result.anchors.get("zeroconf", {})),
    ]
    return result


def breakdown(daemon: list[Run], zc: dict[str, float]) -> list[str]:
    """What the time to first sync is made of in each order: medians, over that order's runs,
    of the daemon's own timestamps (and the bare zeroconf anchor's probing)."""
    notes = []
    for order in ("new dials", "daemon dials"):
        runs = [r for r in daemon if r.order == order]
        if not runs:
            continue
        p50 = {k: statistics.median(r.figures[k] for r in runs) for k in runs[0].figures}
        synced, imported = p50["synced_ms"], p50["imported_ms"]
        head = (
            f"{order}: first synced at {synced:.0f} ms; the interpreter is up at "
            f"{p50['python_up_ms']:.0f} ms, ui.launcher imported at {imported:.0f} ms "
            f"({imported - p50['python_up_ms']:.0f} ms of imports), "
        )
        if order == "new dials":
            notes.append(
                head + f"the running peer found at {p50['discovered_new_ms']:.0f} ms, then "
                f"{synced - p50['discovered_new_ms']:.0f} ms of dial, handshake and sync."
            )
        else:
            probing = zc.get("registered_ms_p50", 0.0) - zc.get("zeroconf_imported_ms_p50", 0.0)
            notes.append(
                head + f"the running peer finds the new one at {p50['discovered_old_ms']:.0f} "
                f"ms (its advert goes out only after zeroconf's probing: {probing:.0f} ms from "
                "start to registered in the bare zeroconf anchor), then "
                f"{synced - p50['discovered_old_ms']:.0f} ms of dial, handshake and sync."
            )
    return notes


def targets() -> list[Target]:
    """The issue's ≤ 1.5 s, for each dialling order (a user gets either, at random)."""
    return [
        Target("synced_ms_p50_new_dials", "<=", TARGET_MS, "ms"),
        Target("synced_ms_p50_daemon_dials", "<=", TARGET_MS, "ms"),
    ]


def unavailable(args: argparse.Namespace, reason: str) -> Result:
    result = Result(
        name=NAME,
        title="LAN: from a peer starting to discovered and first synced",
        subject_name="focusmate daemon (sync.discovery on python-zeroconf, async API)",
        quick=args.quick,
        targets=targets(),
    )
    result.notes = [f"Not measured: network namespaces are unavailable here ({reason})."]
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="one run (the new peer dials), no no-probe anchor"
    )
    parser.add_argument("--out", type=Path, help="directory for lan_discovery.json")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per dialling order (default 5, so 10 runs)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=2.0,
        metavar="S",
        help="before each measured run, wait up to S seconds for other jobs to leave a core free",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats: at least 1")
    args.runs = 2 * args.repeats
    if args.quick:
        args.runs, args.quiet_wait = 1, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.loadavg_start = loadavg()
    out = args.out or (Path(tempfile.gettempdir()) / "focusmate-bench" if args.quick else None)
    reason = netns_available()
    if reason is not None:
        path = unavailable(args, reason).write(out)
        log(f"network namespaces unavailable ({reason}): wrote {path}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-lan-"))
    try:
        runs = asyncio.run(measure(args, workdir))
    except BenchError as err:
        log(f"FAILED: {err}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = build_result(args, runs)
    path = result.write(out)
    log(f"wrote {path}")
    for target in result.targets:
        got = result.subject.get(target.metric, float("nan"))
        log(
            f"target {target.metric} {target.op} {target.value:g} ms: {got:.0f} ms "
            f"(met: {target.met})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
