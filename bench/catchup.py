"""Catch-up after a long offline period: how long until two profiles converge (issue 7, item 6).

Two profiles share a room. While one of them (A) is offline it makes N board posts; the other (B)
makes N posts meanwhile, online. Then A's engine starts, and we measure from that moment until
both profiles hold all 2N posts. N is 1,000 (``--quick``: 100). The subject runs two ways:

* ``relay``: both engines sync through a real relay (``python -m relay serve``, its own process,
  default limits, as deployed). B's posts reach the relay while A is away (the run waits until
  the relay holds them all), so A's catch-up is sync step 1/2 with the relay both ways and the
  relay forwarding A's posts to B.
* ``lan``: no relay; both engines are LAN nodes on loopback (``lan=True``, ``discover=False``) and
  the peer with the smaller user id dials, as discovery would. B's posts stay on B until then.

``relay_ms`` / ``lan_ms`` run from A's ``engine.start()`` to convergence: the moment the last
post is applied to both in-memory documents (a remote update is persisted before it is
applied, so this is on disk; listeners record it, no polling). Just before, A opens its profile
(``open_profile_ms``: a fresh ``Workspace`` reads the room from disk, as an app start would).
After each run a fresh ``Workspace`` per profile re-reads the store and must list all 2N posts
with valid signatures.
Both engines run in this process on one asyncio loop (one core, as in ``tests/integration``);
the relay is a second process.

Anchors, in the same run and on the same data:

* ``pycrdt`` (the floor): the two room documents' states, taken just before A's engine starts,
  exchanged in memory by pycrdt alone (state vectors, diffs, apply both ways): the CRDT work,
  with no I/O, signatures, SQLite or event loop.
* ``node``: two y-websocket 2.1.0 ``WebsocketProvider`` clients (``tests/interop/node``) through
  y-websocket's reference server ``server.cjs`` (in memory): A disconnects, both set the very same
  post records (keys and JSON values taken from the subject's run) in a ``posts`` map, and the
  clock runs from A's ``connect`` until each client has the other's last record (Yjs integrates
  one client's items in order, so the last one implies all; the server's count is checked
  after). Skipped, with a note, when Node or its modules are missing.
* ``yjs`` (the Node path's floor): the same records exchanged in memory by Yjs in one warm Node
  process, so the ``node`` figure can be split into Yjs itself and the rest.

Every repeat runs ``relay``, ``lan``, ``node`` and the floors back to back (so machine noise hits
them alike, with a fresh pair of profiles, room and document each time); medians and maxima are
reported, with the machine's load and the CPU other processes used during each measured window.
Every wait is bounded; the relay and Node processes are stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/catchup.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycrdt import Doc, Map

from bench.common import Result
from bench.machine import cpu_window, settle
from focusmate.clock import SystemClock
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from tests.integration.relaykit import DocClient, RelayProcess
from tests.interop.nodekit import (
    NODE_DIR,
    YClient,
    free_port,
    node_available,
    start_node_server,
    stop_process,
)

NAME = "catchup"
DEADLINE_S = 60.0  # any single wait; a run that needs longer has failed
FLOOR_REPEATS = 5  # in-memory exchanges per repeat (cheap): their median is the repeat's floor
WARMUP_EDITS = 20


class BenchError(Exception):
    """A run did not converge, or converged to the wrong posts."""


@dataclass
class Run:
    """One measured catch-up."""

    mode: str
    converge_ms: float  # engine start (or connect) -> both hold all posts
    open_ms: float = 0.0  # opening A's profile, before the engine starts (subject only)
    other_cpu_pct: float = 0.0  # CPU other processes used during the window (100 = one core)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Payload:
    """What A and B hold before the catch-up: their room states and their post records."""

    state_a: bytes
    state_b: bytes
    posts_a: dict[str, Any]
    posts_b: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Measuring


async def until(predicate: Callable[[], bool], what: str, *, interval: float = 0.05) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {DEADLINE_S:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def posts_map(ws: Workspace, room_id: str) -> Map[Any]:
    return ws.document(room_id, kind=ROOM_KIND).map("posts")


class Converged:
    """Set when a profile's in-memory room document holds ``want`` posts (checked after each
    change, when the update is already on disk); ``at`` is that moment (perf_counter)."""

    def __init__(self, ws: Workspace, room_id: str, want: int) -> None:
        self.done = asyncio.Event()
        self.at = 0.0
        self._ws = ws
        self._room_id = room_id
        self._want = want
        self._unsubscribe = ws.document(room_id, kind=ROOM_KIND).on_change(self._check)
        self._check(b"", "")

    def _check(self, update: bytes, origin: str) -> None:
        if not self.done.is_set() and len(posts_map(self._ws, self._room_id)) >= self._want:
            self.at = time.perf_counter()
            self.done.set()
            self._unsubscribe()

    async def wait(self, what: str) -> float:
        try:
            async with asyncio.timeout(DEADLINE_S):
                await self.done.wait()
        except TimeoutError:
            got = len(posts_map(self._ws, self._room_id))
            raise BenchError(
                f"{what}: {got} of {self._want} posts after {DEADLINE_S:.0f} s"
            ) from None
        return self.at


def verify_store(profile: Path, room_id: str, expected: set[str]) -> None:
    """Re-open the profile from disk: every post must be there, signed by its author."""
    with Workspace(profile, clock=SystemClock()) as ws:
        room = next(r for r in ws.rooms() if r.room_id == room_id)
        posts = ws.board(room).posts()
        bodies = {post.body for post in posts}
        if bodies != expected or len(posts) != len(expected):
            raise BenchError(
                f"{profile.name}: the store holds {len(posts)} posts, "
                f"{len(expected - bodies)} missing, {len(bodies - expected)} unexpected"
            )
        unverified = [post for post in posts if not post.verified]
        if unverified:
            raise BenchError(f"{profile.name}: {len(unverified)} posts fail verification")


def engine(ws: Workspace, *, relays: list[str], lan: bool, events: list[Any]) -> SyncEngine:
    """An engine with production defaults (poll, backoff); LAN on loopback without discovery."""
    return SyncEngine(
        ws, relays=relays, events=events.append, lan=lan, lan_host="127.0.0.1", discover=False
    )


def dial(a: SyncEngine, b: SyncEngine) -> None:
    """What discovery does on a LAN: the peer with the smaller user id dials the other."""
    dialer, listener = (a, b) if a.workspace.user_id < b.workspace.user_id else (b, a)
    assert listener.lan is not None
    dialer.dial(listener.workspace.user_id, "127.0.0.1", listener.lan.port)


async def post_many(ws: Workspace, room_id: str, prefix: str, n: int) -> None:
    """N signed posts, one transaction each (as a user would make them); yields to the loop now
    and then so a running engine forwards them as they come."""
    board = ws.board(ws.find_room(room_id))
    for i in range(n):
        board.post(f"{prefix} {i}", now=ws.now())
        if i % 25 == 24:
            await asyncio.sleep(0)


def all_posts(ws: Workspace, room_id: str) -> dict[str, Any]:
    return {key: dict(value) for key, value in posts_map(ws, room_id).items()}


# ---------------------------------------------------------------------------------------------
# The subject


async def relay_holds(url: str, n: int) -> None:
    """Barrier: the relay has all ``n`` posts (a plain y-websocket client syncs and counts)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        client = await DocClient.open(url)
        try:
            async with asyncio.timeout(DEADLINE_S):
                await client.synced.wait()
            count = len(client.doc.get("posts", type=Map))
        finally:
            await client.close()
        if count >= n:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the relay holds {count} of B's {n} posts after {DEADLINE_S:.0f} s")
        await asyncio.sleep(0.1)


async def running(
    stack: contextlib.AsyncExitStack, ws: Workspace, *, relays: list[str], events: list[Any]
) -> SyncEngine:
    """A started engine, stopped when ``stack`` closes (LAN when no relay is given)."""
    eng = engine(ws, relays=relays, lan=not relays, events=events)
    await eng.start()
    stack.push_async_callback(eng.stop)
    return eng


async def offline_period(
    pa: Path,
    b: Workspace,
    engine_b: SyncEngine,
    n: int,
    *,
    relay: RelayProcess | None,
    events: list[Any],
) -> str:
    """A and B share a new room; then A goes offline and makes ``n`` posts while B makes ``n``
    online (on the relay, when there is one, before this returns). The room id."""
    relays = [relay.url] if relay is not None else []
    async with contextlib.AsyncExitStack() as a_stack:
        a = Workspace(pa, clock=SystemClock())
        a_stack.callback(a.close)
        engine_a = await running(a_stack, a, relays=relays, events=events)
        room, invite = a.create_room("Catch-up")
        room_id = room.room_id
        b.join_room(invite.code)
        await until(lambda: room_id in engine_b.documents, "B tracking the room")
        if relay is None:
            dial(engine_a, engine_b)
        await until(
            lambda: any(r.exists for r in b.rooms() if r.room_id == room_id), "the room at B"
        )
        await engine_a.stop()  # A goes offline ...
        await until(lambda: not engine_b.lan_sessions, "B's LAN session with A closed")
        await post_many(a, room_id, "A offline", n)  # ... and writes
    await post_many(b, room_id, "B online", n)  # meanwhile B writes, online
    if relay is not None:
        await relay_holds(relay.doc_url(invite.secret), n)
    return room_id


async def catch_up(
    workdir: Path, n: int, *, relay: RelayProcess | None, quiet_s: float = 0.0
) -> tuple[Run, Payload]:
    """One catch-up over the relay (``relay`` given) or the LAN (None)."""
    mode = "relay" if relay is not None else "lan"
    tag = secrets.token_hex(4)
    pa, pb = workdir / f"{mode}-{tag}-a", workdir / f"{mode}-{tag}-b"
    relays = [relay.url] if relay is not None else []
    events: list[Any] = []
    async with contextlib.AsyncExitStack() as stack:
        b = Workspace(pb, clock=SystemClock())
        stack.callback(b.close)
        engine_b = await running(stack, b, relays=relays, events=events)
        room_id = await offline_period(pa, b, engine_b, n, relay=relay, events=events)
        payload_b = all_posts(b, room_id)
        state_b = b.document(room_id, kind=ROOM_KIND).encode_update()
        waited = await settle(quiet_s)
        gc.collect()

        with cpu_window() as window:
            t_open = time.perf_counter()
            a = Workspace(pa, clock=SystemClock())  # A comes back: opens its profile ...
            stack.callback(a.close)
            document_a = a.document(room_id, kind=ROOM_KIND)
            t_loaded = time.perf_counter()
            state_a = document_a.encode_update()
            done_a = Converged(a, room_id, 2 * n)
            done_b = Converged(b, room_id, 2 * n)
            t_start = time.perf_counter()
            engine_a = await running(stack, a, relays=relays, events=events)  # ... and syncs
            if relay is None:
                dial(engine_a, engine_b)
            at_a = await done_a.wait("A")
            at_b = await done_b.wait("B")
        payload_a = {k: v for k, v in all_posts(a, room_id).items() if k not in payload_b}
    errors = [e for e in events if e.get("event") in ("relay_error", "lan_refused")]
    if errors:
        raise BenchError(f"{mode}: {errors[:3]}")
    expected = {f"A offline {i}" for i in range(n)} | {f"B online {i}" for i in range(n)}
    for profile in (pa, pb):
        verify_store(profile, room_id, expected)
        shutil.rmtree(profile, ignore_errors=True)
    run = Run(
        mode=mode,
        converge_ms=1000 * (max(at_a, at_b) - t_start),
        open_ms=1000 * (t_loaded - t_open),
        other_cpu_pct=window["other_cpu_pct"],
        extra={
            "a_done_ms": 1000 * (at_a - t_start),
            "b_done_ms": 1000 * (at_b - t_start),
            "waited_s": waited,
        },
    )
    return run, Payload(state_a, state_b, payload_a, payload_b)


# ---------------------------------------------------------------------------------------------
# Anchors


def pycrdt_floor(payload: Payload, n: int) -> Run:
    """The y-sync exchange of the same two states, in memory: median of FLOOR_REPEATS."""
    times = []
    for _ in range(FLOOR_REPEATS):
        doc_a: Doc[Any] = Doc()
        doc_b: Doc[Any] = Doc()
        doc_a.apply_update(payload.state_a)
        doc_b.apply_update(payload.state_b)
        gc.collect()
        t0 = time.perf_counter()
        diff_for_b = doc_a.get_update(doc_b.get_state())
        diff_for_a = doc_b.get_update(doc_a.get_state())
        doc_a.apply_update(diff_for_a)
        doc_b.apply_update(diff_for_b)
        elapsed = time.perf_counter() - t0
        for doc in (doc_a, doc_b):
            if len(doc.get("posts", type=Map)) != 2 * n:
                raise BenchError("pycrdt floor: the documents did not converge")
        times.append(elapsed)
    return Run(mode="pycrdt", converge_ms=1000 * statistics.median(times))


async def node_catch_up(port: int, payload: Payload, n: int, *, quiet_s: float) -> Run:
    """The same records through y-websocket's server with two WebsocketProvider clients."""
    url = f"ws://127.0.0.1:{port}/catchup-{secrets.token_hex(6)}"
    items_a, items_b = list(payload.posts_a.items()), list(payload.posts_b.items())
    last_a, last_b = items_a[-1], items_b[-1]
    async with YClient(url) as ya, YClient(url) as yb:
        await ya.synced(DEADLINE_S)
        await yb.synced(DEADLINE_S)
        await ya.send({"cmd": "disconnect"})
        await ya.expect("ok", DEADLINE_S, cmd="disconnect")
        for client, items in ((ya, items_a), (yb, items_b)):
            for key, value in items:
                await client.send({"cmd": "set", "map": "posts", "key": key, "value": value})
            for _ in items:
                await client.expect("ok", DEADLINE_S, cmd="set")
        async with YClient(url) as barrier:  # the server holds all of B's records
            await barrier.synced(DEADLINE_S)
            await barrier.wait_for("posts", last_b[0], last_b[1], DEADLINE_S)
        await ya.send({"cmd": "wait", "map": "posts", "key": last_b[0], "value": last_b[1],
                       "timeout": DEADLINE_S})  # fmt: skip
        await yb.send({"cmd": "wait", "map": "posts", "key": last_a[0], "value": last_a[1],
                       "timeout": DEADLINE_S})  # fmt: skip
        waited = await settle(quiet_s)
        gc.collect()
        with cpu_window() as window:
            t0 = time.perf_counter()
            await ya.send({"cmd": "connect"})
            done = []
            for client in (ya, yb):
                event = await client.next_event(
                    lambda e: e.get("cmd") == "wait" and e.get("event") in ("ok", "timeout"),
                    DEADLINE_S + 5,
                )
                if event["event"] != "ok":
                    raise BenchError(f"node: a client never got the other's posts: {event}")
                done.append(time.perf_counter())
        # Each client has the other's last record, so all of them (Yjs integrates a client's
        # items in order); the server must hold all 2N. (Not `get`: one JSON line of 2N records
        # exceeds the line limit of the client's stdout reader.)
        checker = await DocClient.open(url)
        try:
            async with asyncio.timeout(DEADLINE_S):
                await checker.synced.wait()
            held = len(checker.doc.get("posts", type=Map))
        finally:
            await checker.close()
        if held != 2 * n:
            raise BenchError(f"node: the server holds {held} of {2 * n} records")
    return Run(
        mode="node",
        converge_ms=1000 * (max(done) - t0),
        other_cpu_pct=window["other_cpu_pct"],
        extra={
            "a_done_ms": 1000 * (done[0] - t0),
            "b_done_ms": 1000 * (done[1] - t0),
            "waited_s": waited,
        },
    )


YJS_FLOOR_JS = """
const Y = require('yjs')
const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'))
function build (items) {  // one transaction per record, as the clients made them
  const doc = new Y.Doc()
  const posts = doc.getMap('posts')
  for (const [key, value] of items) doc.transact(() => posts.set(key, value))
  return doc
}
const ms = []
for (let i = 0; i <= input.repeats; i++) {  // the first one warms the JIT up: dropped
  const a = build(input.a)
  const b = build(input.b)
  const t0 = process.hrtime.bigint()
  const forB = Y.encodeStateAsUpdate(a, Y.encodeStateVector(b))
  const forA = Y.encodeStateAsUpdate(b, Y.encodeStateVector(a))
  Y.applyUpdate(a, forA)
  Y.applyUpdate(b, forB)
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e6
  if (a.getMap('posts').size !== input.n || b.getMap('posts').size !== input.n) process.exit(3)
  if (i > 0) ms.push(elapsed)
}
process.stdout.write(JSON.stringify({ ms }) + '\\n')
"""


async def yjs_floor(payload: Payload, n: int) -> Run:
    """The same exchange in Yjs (what the Node clients and server.cjs run), in one warm Node
    process: explains how much of the ``node`` figure is the CRDT library itself."""
    body = json.dumps(
        {
            "a": list(payload.posts_a.items()),
            "b": list(payload.posts_b.items()),
            "n": 2 * n,
            "repeats": FLOOR_REPEATS,
        }
    ).encode()
    proc = await asyncio.create_subprocess_exec(
        "node", "-e", YJS_FLOOR_JS, cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(body), DEADLINE_S)
    except TimeoutError:
        await stop_process(proc)
        raise BenchError("yjs floor: no answer from node") from None
    if proc.returncode != 0:
        raise BenchError(f"yjs floor: node exited {proc.returncode}: {err.decode()[-500:]}")
    return Run(mode="yjs", converge_ms=statistics.median(json.loads(out)["ms"]))


@contextlib.asynccontextmanager
async def node_server() -> AsyncIterator[int | str]:
    """y-websocket's server.cjs on a free port (its port), or why it cannot run (a str)."""
    reason = node_available()
    if reason is not None:
        yield reason
        return
    port = free_port()
    proc = await start_node_server(port=port)
    try:
        yield port
    finally:
        await stop_process(proc)


# ---------------------------------------------------------------------------------------------
# The run


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def log(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


async def measure(args: argparse.Namespace, workdir: Path) -> tuple[list[Run], list[str]]:
    runs: list[Run] = []
    notes: list[str] = []
    async with RelayProcess(workdir / "relay-data") as relay, node_server() as node:
        if isinstance(node, str):
            notes.append(f"node anchor skipped: {node}")
            log(notes[-1])
        log(f"warm-up ({WARMUP_EDITS} + {WARMUP_EDITS} posts each way)")
        await catch_up(workdir, WARMUP_EDITS, relay=relay)
        await catch_up(workdir, WARMUP_EDITS, relay=None)
        for i in range(args.repeats):
            quiet = args.quiet_wait
            relay_run, payload = await catch_up(workdir, args.edits, relay=relay, quiet_s=quiet)
            lan_run, _ = await catch_up(workdir, args.edits, relay=None, quiet_s=quiet)
            repeat = [relay_run, lan_run]
            if isinstance(node, int):
                repeat.append(await node_catch_up(node, payload, args.edits, quiet_s=quiet))
                repeat.append(await yjs_floor(payload, args.edits))
            repeat.append(pycrdt_floor(payload, args.edits))
            for run in repeat:
                run.extra["repeat"] = i
            runs.extend(repeat)
            log(
                f"repeat {i + 1}/{args.repeats}: "
                + ", ".join(
                    f"{r.mode} {r.converge_ms:.1f} ms (other CPU {r.other_cpu_pct:.0f} %)"
                    for r in repeat
                )
            )
    return runs, notes


def build_result(args: argparse.Namespace, runs: list[Run], notes: list[str]) -> Result:
    by_mode: dict[str, list[Run]] = {}
    for run in runs:
        by_mode.setdefault(run.mode, []).append(run)

    def stats(mode: str, metric: str) -> dict[str, float]:
        values = [r.converge_ms for r in by_mode.get(mode, [])]
        if not values:
            return {}
        return {f"{metric}_p50": statistics.median(values), f"{metric}_max": max(values)}

    n = args.edits
    result = Result(
        name=NAME,
        title=f"Catch-up after a long offline period ({n} local + {n} remote posts)",
        subject_name="FocusMate sync engines (relay, and LAN over loopback)",
        quick=args.quick,
        params={
            "edits_per_side": n,
            "repeats": args.repeats,
            "floor_repeats_per_repeat": FLOOR_REPEATS,
            "relay": "python -m relay serve, default limits, own process",
            "engines": "both in this process, one asyncio loop, production poll/backoff",
            "loadavg_start": args.loadavg_start,
            "loadavg_end": loadavg(),
        },
    )
    result.subject = {
        **stats("relay", "relay_ms"),
        **stats("lan", "lan_ms"),
    }
    opens = [r.open_ms for r in runs if r.mode in ("relay", "lan")]
    if opens:
        result.subject["open_profile_ms_p50"] = statistics.median(opens)
    for floor_name in ("pycrdt", "yjs"):
        floor = stats(floor_name, "relay_ms")
        if floor:
            # A floor is the same in-memory exchange for both paths: listed under both names
            # so each path gets its ratio to it.
            lan = {k.replace("relay_", "lan_"): v for k, v in floor.items()}
            result.anchors[floor_name] = {**floor, **lan}
    node = stats("node", "relay_ms")
    if node:
        result.anchors["node"] = node  # a server in the middle: compares with the relay path
    result.units = {
        metric: "ms" for figures in (result.subject, *result.anchors.values()) for metric in figures
    }
    result.series = {
        "converge_ms": [
            {
                "repeat": r.extra.get("repeat"),
                "mode": r.mode,
                "ms": round(r.converge_ms, 3),
                "other_cpu_pct": round(r.other_cpu_pct, 1),
                **{k: round(v, 3) for k, v in r.extra.items() if k.endswith("_ms")},
            }
            for r in runs
        ]
    }
    others = [r.other_cpu_pct for r in runs if r.mode != "pycrdt"]
    result.notes = [
        *notes,
        "relay_ms / lan_ms: from A's engine start until both profiles hold all "
        f"{2 * n} posts (on disk); open_profile_ms is A opening its profile just before.",
        "pycrdt and yjs are floors, not competitors: the same two room states exchanged in "
        "memory by the CRDT library alone (no I/O, signatures or SQLite), Yjs in a warm Node "
        "process; each appears under both metric names.",
        "node: y-websocket 2.1.0 clients through its in-memory server.cjs, the same post records "
        "(fresh client processes each repeat, so Yjs runs partly unoptimised code); it neither "
        "persists nor signs anything.",
        f"Both engines share one asyncio loop (one core); the relay is its own process. Other "
        f"processes used a median {statistics.median(others) if others else 0:.0f} % of a core "
        f"during the measured windows (max {max(others, default=0):.0f} %); load average "
        f"{args.loadavg_start[0]:.2f} at the start.",
    ]
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100 + 100 posts, one repeat")
    parser.add_argument("--out", type=Path, help="directory for catchup.json")
    parser.add_argument("--edits", type=int, default=1000, help="posts per side (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (default 5)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=2.0,
        metavar="S",
        help="before each measured window, wait up to S seconds for other jobs to leave a core "
        "free (default 2)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.edits, args.repeats, args.quiet_wait = 100, 1, 0.0
    if args.edits < 1 or args.repeats < 1:
        parser.error("--edits and --repeats: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.loadavg_start = loadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    try:
        runs, notes = asyncio.run(measure(args, workdir))
    except BenchError as err:
        log(f"FAILED: {err}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = build_result(args, runs, notes)
    out = args.out or (Path(tempfile.gettempdir()) / "focusmate-bench" if args.quick else None)
    path = result.write(out)
    log(f"wrote {path}")
    print(json.dumps({"subject": result.subject, "anchors": result.anchors,
                      "ratios": result.ratios()}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
