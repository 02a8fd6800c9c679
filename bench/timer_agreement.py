"""Timer agreement: N peers whose clocks are seconds apart still show the same countdown.

Issue 7, item 2. The subject is the real sync engine (``sync.engine.SyncEngine``) of N profiles
in this process, each with an injected clock ``time.time() + skew`` (skews spread over
``±--max-skew`` s, the extremes included), in two modes:

* ``relay``: a real relay subprocess (``focusmate-relay serve --port 0``); every engine links
  to it, so each room counts on the relay's clock (NTP-style offset from the relay link's
  pings: one on connect, then one every 10 s, as in the app).
* ``lan``: LAN on loopback (``lan=True``, no discovery; every pair dialled, as discovery would
  do), so each room counts on the clock of the peer with the smallest user id (offset from
  the LAN session's pings: a burst of 8, then one every 5 s).

What a client displays is ``room.timer_view(now=engine.now_for(room_id))``, what the app shows.
The true clock is ``time.time()`` (the relay's clock too, as it runs on this machine).

Remaining time: the timer is started with a real command (hosted by the relay; applied on the
LAN timebase), then every ``--interval`` s every client's remaining time is read back to back
(the three kinds below interleaved per client, in rotating order). Each read ``i`` is stamped
with the true instant ``t_i`` its clock was read (the injected clock records it, so a
preemption between stamp and read cannot skew it) and corrected to the sample's first stamp
``t_0`` by adding ``t_i - t_0`` (the countdown loses 1 s per s), so the reads count as
simultaneous; disagreement = max - min over clients, per sample. The display is computed as
``timer.view(room.timer_state, room.settings.timer_config(), now=...)``, which is what
``Room.timer_view`` does, with state and settings read once per client per sample (they cost
~0.3 ms a client, the view ~10 µs).

Phase change: a one-minute-long focus would cost a minute per trial, so instead client 0 writes
the room's timer state directly (``Room.set_timer_state``, a document edit that syncs like any
other) as a running focus whose ``phase_started_at`` on the timebase is set so the phase ends
``--lead`` s later. Once every client holds the new state, all of them are polled (back-to-back
reads stamped as above, from state and settings read once then; a trial counts only if no
client's state changed by its end; every 2 ms, continuously within 0.25 s of the end), and per
client two true instants are kept; spread = max - min over clients, per trial:

* ``phase``: its first read showing the short break. Its resolution is the gap since the read
  before (``params.<mode>_poll_gap_ms``: the loop and the machine's scheduler, not the engine),
  which the ``ideal`` anchor's spread shows as the floor.
* ``flip``: when its countdown reached zero, i.e. the read before plus the remaining time it
  showed (kept between the two reads): exact to microseconds unless a new clock sample moved
  the offset between them, so it shows the engine's disagreement without the polling floor.

A skip is not timed: its phase change reaches each client as a document update, so the
spread would be delivery latency, not clock agreement, and with every client on this one loop
they all apply it in one burst between two polls, which the harness cannot see into.

Rounds (``--rounds``): each is a fresh group per mode (new profiles, relay and skews, so new
clock offsets; the offsets set the engine's disagreement and change only with a new clock
sample), the modes interleaved so machine noise hits them alike; the figures pool the rounds.

Anchors, from the same reads of the same samples and trials:

* ``naive``: each client counts on its own clock (``now`` = its skewed clock): disagreement
  is about the clock spread, 2 × max-skew. Its phase change needs a trial whose lead exceeds
  the fastest clock's lead on the timebase (else that clock has passed the end before the
  state arrives), so it is timed in one long trial per mode, where the subject is timed too:
  lead = max(skew) - timebase skew + ``--lead``; the trial lasts 2 × max-skew + ``--lead``.
* ``ideal``: every client reads one exact clock, the true clock plus the timebase's known skew
  (0 for the relay, the host peer's for the LAN): what perfect offsets would show, i.e. the
  floor of the measurement itself (read order, polling granularity).

All clients share one process and one event loop (their pongs wait for each other's work), on a
machine where other jobs run: the load average and the CPU used by other processes are
recorded per round. Output: ``<out>/timer_agreement.json`` (``bench.common.Result``); ``--quick``
(3 clients, ±1 s, a few samples: a smoke test of the same code paths) writes to
``$TMPDIR/focusmate-bench`` unless ``--out`` is given. Exit status 1 when a mode failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, Result, Target, percentile, summary
from bench.machine import machine_busy_seconds, process_tree, tree_cpu_seconds
from focusmate import timer
from focusmate.room import Room
from focusmate.timer import Command, Phase, Status, TimerConfig, TimerState, TimerView
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from sync.lan import PING_BURST

NAME = "timer_agreement"
MODES = ("relay", "lan")
KINDS = ("subject", "naive", "ideal")
LABELS = {"subject": "sync engine", "naive": "naive", "ideal": "ideal"}
TARGET_MS = 20.0
DEADLINE_S = 20.0  # any one wait (start, sync, propagation)
NEAR_END_S = 0.25  # poll continuously this close to an expected phase end
POLL_S = 0.002  # otherwise, between polls
MAX_SERIES_POINTS = 400
PLOT_FLOOR_MS = 1e-3  # 1 µs: about what a time.time() stamp resolves, so shown as zero


class SkewedClock:
    """This machine's clock off by ``skew`` seconds, as a badly set computer's would be.
    ``read_at`` is the true instant of the last reading: the exact moment a display was
    computed for, whatever the scheduler did before or after."""

    def __init__(self, skew: float) -> None:
        self.skew = skew
        self.read_at = 0.0

    def now(self) -> float:
        self.read_at = time.time()
        return self.read_at + self.skew


@dataclass
class Client:
    """One profile, its engine and (once synced) its view of the room."""

    workspace: Workspace
    engine: SyncEngine
    clock: SkewedClock
    room: Room | None = None

    def now(self, kind: str, room_id: str, timebase_skew: float) -> tuple[float, float]:
        """(the true instant read, the ``now`` this kind of display uses)."""
        if kind == "subject":
            now = self.engine.now_for(room_id)  # reads our clock once, plus the offset
            return self.clock.read_at, now
        if kind == "naive":
            now = self.clock.now()
            return self.clock.read_at, now
        t = time.time()
        return t, t + timebase_skew

    def snapshot(self) -> tuple[TimerState, TimerConfig]:
        """What its display is computed from: the room's timer state and settings."""
        room = self.view_room()
        return room.timer_state, room.settings.timer_config()

    def view_room(self) -> Room:
        assert self.room is not None
        return self.room


@dataclass
class ModeRun:
    """What one round of one mode measured: per kind, remaining-time disagreements and phase
    spreads (s), and how the round went."""

    remaining: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    phase: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    flip: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    poll_gaps: list[float] = field(default_factory=list)  # first sighting - the read before
    remaining_t: list[float] = field(default_factory=list)  # sample instants, s from the start
    propagation: list[float] = field(default_factory=list)
    offset_error: list[float] = field(default_factory=list)  # |now_for - ideal| per client, end
    clock_samples: list[int] = field(default_factory=list)
    invalid_trials: int = 0
    offsets: list[float] = field(default_factory=list)  # the clients' clock skews (s)
    naive_lead: float = 0.0
    load: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


# -- processes and machine load ---------------------------------------------------------------


class LoadMeter:
    """CPU that other jobs used during a window (machine busy minus this process tree, which
    holds the relay), in % of one core, and the load average: how disturbed a window was."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        ours = tree_cpu_seconds(process_tree(os.getpid()))
        return time.monotonic(), machine_busy_seconds() - ours, ours

    def done(self) -> dict[str, float]:
        t0, other0, ours0 = self._start
        t1, other1, ours1 = self._read()
        elapsed = max(t1 - t0, 1e-9)
        return {
            "other_cpu_pct": round(100.0 * (other1 - other0) / elapsed, 1),
            "bench_cpu_pct": round(100.0 * (ours1 - ours0) / elapsed, 1),
            "loadavg_1m": os.getloadavg()[0],
        }


def _relay_command(data_dir: Path) -> list[str]:
    exe = Path(sys.executable).with_name("focusmate-relay")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "relay"]
    return [*base, "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1", "--port", "0"]


@contextlib.asynccontextmanager
async def relay_process(data_dir: Path) -> AsyncIterator[str]:
    """A relay subprocess on a free port: yields its URL; killed on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSMATE_RELAY_")}
    proc = await asyncio.create_subprocess_exec(
        *_relay_command(data_dir),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: list[str] = []

    async def listening() -> int:
        async for raw in stderr:
            line = raw.decode(errors="replace").strip()
            lines.append(line)
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "relay.listening":
                    return int(record["port"])
        raise RuntimeError("the relay exited before listening:\n" + "\n".join(lines[-20:]))

    async def drain() -> None:  # keep reading its log so the pipe never fills
        async for _ in stderr:
            pass

    drainer: asyncio.Task[None] | None = None
    try:
        port = await asyncio.wait_for(listening(), DEADLINE_S)
        drainer = asyncio.get_running_loop().create_task(drain())
        yield f"ws://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if drainer is not None:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer


# -- clients -------------------------------------------------------------------------------------


def skews(count: int, max_skew: float, seed: int) -> list[float]:
    """``count`` clock offsets in [-max, +max], both extremes included, in random order."""
    rng = random.Random(seed)
    values = [-max_skew, max_skew][:count]
    values += [rng.uniform(-max_skew, max_skew) for _ in range(count - len(values))]
    rng.shuffle(values)
    return values


async def wait_for(predicate: Callable[[], bool], what: str, *, interval: float = 0.005) -> None:
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not predicate():
                await asyncio.sleep(interval)
    except TimeoutError:
        raise RuntimeError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def clients(
    root: Path, offsets: Sequence[float], *, relay: str | None
) -> AsyncIterator[list[Client]]:
    """Running engines on fresh profiles under ``root``, in one room created by the first and
    joined by the others, synced, with clock offsets to the timebase measured."""
    made: list[Client] = []
    try:
        for i, skew in enumerate(offsets):
            clock = SkewedClock(skew)
            workspace = Workspace(root / f"peer{i}", clock=clock)
            engine = SyncEngine(
                workspace,
                relays=[relay] if relay else [],
                events=lambda event: None,
                lan=relay is None,
                lan_host="127.0.0.1",
                discover=False,
            )
            made.append(Client(workspace, engine, clock))
            await engine.start()
        room, invite = made[0].workspace.create_room("Agreement", auto_advance=True)
        room_id = room.room_id
        for client in made[1:]:
            client.workspace.join_room(invite.code)
        await wait_for(
            lambda: all(room_id in c.engine.documents for c in made), "every engine tracking"
        )
        if relay is None:
            for a in made:  # every pair, the smaller user id dialling (as discovery does)
                for b in made:
                    if a.workspace.user_id < b.workspace.user_id:
                        assert b.engine.lan is not None
                        a.engine.dial(b.workspace.user_id, "127.0.0.1", b.engine.lan.port)
        for client in made:
            client.room = client.workspace.find_room(room_id)
        await wait_for(lambda: all(c.view_room().exists for c in made), "the room everywhere")
        await wait_for(lambda: all(_timebase_ready(c, room_id, len(made)) for c in made), "offsets")
        yield made
    finally:
        for client in made:
            with contextlib.suppress(Exception):
                await client.engine.stop()


def _timebase_ready(client: Client, room_id: str, count: int) -> bool:
    engine = client.engine
    if engine.links:
        link = engine.links[0]
        return link.connected.is_set() and room_id in link.sessions and len(link.offset) >= 1
    sessions = [s for s in engine.lan_sessions if s.peer is not None and room_id in s.sessions]
    return len(sessions) == count - 1 and all(len(s.offset) >= PING_BURST for s in sessions)


def clock_samples(client: Client) -> int:
    engine = client.engine
    if engine.links:
        return len(engine.links[0].offset)
    return min((len(s.offset) for s in engine.lan_sessions), default=0)


# -- measurements --------------------------------------------------------------------------------


def remaining_sample(group: list[Client], room_id: str, tb_skew: float, n: int) -> dict[str, float]:
    """Every client's remaining time under each kind (kinds in an order rotating with ``n``),
    read client after client, each read corrected to its kind's first read's true instant;
    max - min per kind (s)."""
    order = KINDS[n % len(KINDS) :] + KINDS[: n % len(KINDS)]
    reads: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    for client in group:
        state, config = client.snapshot()
        for kind in order:
            t, now = client.now(kind, room_id, tb_skew)
            reads[kind].append((t, timer.view(state, config, now=now).remaining_s))
    out = {}
    for kind, values in reads.items():
        t0 = values[0][0]
        out[kind] = _spread([left + (t - t0) for t, left in values])
    return out


async def wait_revision(group: list[Client], revision: int) -> float:
    """Seconds until every client holds timer revision ``revision`` or later."""
    start = time.time()
    await wait_for(
        lambda: all(c.view_room().timer_state.revision >= revision for c in group),
        f"timer revision {revision}",
        interval=0.001,
    )
    return time.time() - start


async def measure_remaining(
    group: list[Client],
    room_id: str,
    tb_skew: float,
    run: ModeRun,
    *,
    seconds: float,
    interval: float,
) -> None:
    """Start the timer with a real command, then sample the three kinds, in rotating order."""
    state = await group[0].engine.timer_command(room_id, Command.START)
    run.propagation.append(await wait_revision(group, state.revision))
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        run.remaining_t.append(elapsed)
        for kind, value in remaining_sample(group, room_id, tb_skew, n).items():
            run.remaining[kind].append(value)
        n += 1
        await asyncio.sleep(interval)


Reader = Callable[[int, Client, str], tuple[float, TimerView]]  # (true instant, display)


@dataclass(frozen=True)
class Sighting:
    """One client's first read showing the change, and the read before it (true instants)."""

    at: float
    before: float
    left: float  # the remaining time the read before showed

    @property
    def crossing(self) -> float:
        """When its countdown reached zero: the read before plus what it had left, inside the
        bracket (a new clock sample between the reads could move it; never outside)."""
        return min(max(self.before + self.left, self.before), self.at)


def _spread(values: Sequence[float]) -> float:
    return max(values) - min(values)


async def first_seen(
    group: list[Client],
    kinds: Sequence[str],
    read: Reader,
    changed: Callable[[TimerView], bool],
    *,
    expected: float,
    until: float,
) -> dict[str, list[Sighting]] | None:
    """Poll every client under every kind until ``changed`` holds for each: its sightings
    (None when time ran out). Continuous polling near ``expected``, else every POLL_S."""
    last: dict[str, list[tuple[float, float] | None]] = {k: [None] * len(group) for k in kinds}
    seen: dict[str, list[Sighting | None]] = {k: [None] * len(group) for k in kinds}
    while time.time() < until:
        for kind in kinds:
            marks, reads = seen[kind], last[kind]
            for i, client in enumerate(group):
                if marks[i] is None:
                    t, view = read(i, client, kind)
                    if changed(view):
                        before, left = reads[i] or (t, 0.0)
                        marks[i] = Sighting(at=t, before=before, left=left)
                    else:
                        reads[i] = (t, view.remaining_s)
        if all(m is not None for marks in seen.values() for m in marks):
            return {k: [m for m in marks if m is not None] for k, marks in seen.items()}
        near = abs(time.time() - expected) < NEAR_END_S
        await asyncio.sleep(0 if near else POLL_S)
    return None


def _fixed_reader(group: list[Client], room_id: str, tb_skew: float) -> Reader:
    """The same views computed from each client's state and settings read now: reading them
    costs ~0.3 ms a client, which would widen the poll gaps, and nobody edits the timer until
    the trial ends (checked by the caller)."""
    snapshots = [client.snapshot() for client in group]

    def read(i: int, client: Client, kind: str) -> tuple[float, TimerView]:
        state, config = snapshots[i]
        t, now = client.now(kind, room_id, tb_skew)
        return t, timer.view(state, config, now=now)

    return read


async def phase_end_trial(
    group: list[Client],
    room_id: str,
    tb_skew: float,
    run: ModeRun,
    *,
    lead: float,
    kinds: Sequence[str],
) -> None:
    """Client 0 writes a running focus that ends ``lead`` s from now on the timebase; once all
    hold it, the true instant each client (under each kind) first shows the break."""
    writer = group[0].view_room()
    focus_s = writer.settings.timer_config().focus_s
    now_tb = group[0].engine.now_for(room_id)
    state = TimerState(
        status=Status.RUNNING,
        phase=Phase.FOCUS,
        round=1,
        phase_started_at=now_tb - focus_s + lead,
        remaining_s=None,
        revision=writer.timer_state.revision + 1,
        changed_at=now_tb,
        last_command=Command.START,
    )
    writer.set_timer_state(state, now=group[0].workspace.now())
    run.propagation.append(await wait_revision(group, state.revision))
    read = _fixed_reader(group, room_id, tb_skew)
    in_focus = all(
        read(i, c, k)[1].phase is Phase.FOCUS for i, c in enumerate(group) for k in kinds
    )
    if not in_focus:  # the phase ended before every client had it: lead too short
        run.invalid_trials += 1
        return
    end_tb = now_tb + lead
    # a naive client flips when its own clock reads end_tb: the slowest one last
    late = max(0.0, tb_skew - min(c.clock.skew for c in group)) if "naive" in kinds else 0.0
    expected = end_tb - (group[0].engine.now_for(room_id) - time.time())
    seen = await first_seen(
        group,
        kinds,
        read,
        lambda view: view.phase is not Phase.FOCUS,
        expected=expected,
        until=expected + late + 2.0,
    )
    unchanged = all(c.view_room().timer_state == state for c in group)
    if seen is None or not unchanged:
        run.invalid_trials += 1
        return
    for kind, sightings in seen.items():
        run.phase[kind].append(_spread([s.at for s in sightings]))
        run.flip[kind].append(_spread([s.crossing for s in sightings]))
    run.poll_gaps.extend(s.at - s.before for s in seen["subject"])


async def run_mode(mode: str, args: argparse.Namespace, root: Path, round_: int) -> ModeRun:
    """One round of one mode: fresh profiles (and relay), so fresh clock offsets."""
    run = ModeRun(offsets=skews(args.clients, args.max_skew, args.seed + round_))
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        url = None
        if mode == "relay":
            url = await stack.enter_async_context(relay_process(root / "relay"))
        group = await stack.enter_async_context(clients(root / mode, run.offsets, relay=url))
        meter = LoadMeter()
        room_id = group[0].view_room().room_id
        if mode == "relay":
            tb_skew = 0.0  # the relay reads this machine's true clock
        else:
            host = min(group, key=lambda c: c.workspace.user_id)
            tb_skew = host.clock.skew
        await measure_remaining(
            group, room_id, tb_skew, run, seconds=args.sample_seconds, interval=args.interval
        )
        if round_ == 0:
            # the fastest naive clock must not pass the end before the state reaches it
            run.naive_lead = long_lead = max(run.offsets) - tb_skew + args.lead
            await phase_end_trial(group, room_id, tb_skew, run, lead=long_lead, kinds=KINDS)
        for _ in range(args.trials):
            await phase_end_trial(
                group, room_id, tb_skew, run, lead=args.lead, kinds=("subject", "ideal")
            )
        for client in group:
            _, now = client.now("subject", room_id, tb_skew)
            run.offset_error.append(abs(now - (client.clock.read_at + tb_skew)))
            run.clock_samples.append(clock_samples(client))
        run.load = meter.done()
    run.seconds = time.monotonic() - started
    return run


# -- the result ----------------------------------------------------------------------------------


def _ms(values: Sequence[float]) -> list[float]:
    return [v * 1000.0 for v in values]


def _thin(points: list[list[float]]) -> list[list[float]]:
    """Every k-th point, so at most about MAX_SERIES_POINTS."""
    step = max(1, -(-len(points) // MAX_SERIES_POINTS))
    return points[::step]


def _cdf(values: Sequence[float]) -> list[list[float]]:
    """[value, % of values <= it], at most MAX_SERIES_POINTS of them, min and max kept;
    floored at PLOT_FLOOR_MS so a log axis can draw the ideal anchor's zeros."""
    ordered = sorted(values)
    last = len(ordered) - 1
    count = min(len(ordered), MAX_SERIES_POINTS)
    picks = sorted({round(i * last / max(count - 1, 1)) for i in range(count)})
    return [[max(ordered[i], PLOT_FLOOR_MS), 100.0 * (i + 1) / len(ordered)] for i in picks]


def _pool(rounds: Sequence[ModeRun], what: str, kind: str | None = None) -> list[float]:
    """``run.<what>`` (``[kind]`` of it, if given) of every round, in one list."""
    pooled: list[float] = []
    for run in rounds:
        data = getattr(run, what)
        pooled.extend(data if kind is None else data[kind])
    return pooled


def _p99_ms(values: Sequence[float]) -> float | None:
    return percentile(_ms(values), 99) if values else None


def panels(runs: dict[str, list[ModeRun]]) -> dict[str, object]:
    """The plots (``bench/report.py``'s panel format): the remaining-time disagreement of the
    three kinds as CDFs, the phase-change spreads as bars, and the engine's disagreement over
    each round's sampling (it moves with each new clock sample)."""
    cdfs = {
        f"{LABELS[kind]} · {mode}": _cdf(_ms(values))
        for mode, rounds in runs.items()
        for kind in KINDS
        if (values := _pool(rounds, "remaining", kind))
    }
    bars: dict[str, list[list[object]]] = {LABELS[kind]: [] for kind in KINDS}
    for mode, rounds in runs.items():
        for kind in KINDS:
            for what, attr in (("seen", "phase"), ("zero", "flip")):
                spreads = _pool(rounds, attr, kind)
                if spreads:
                    value = max(percentile(_ms(spreads), 99), PLOT_FLOOR_MS)
                    bars[LABELS[kind]].append([f"{mode} {what}", value])
    over_time = {
        f"{mode} #{n}": _thin(
            [[t, v] for t, v in zip(run.remaining_t, _ms(run.remaining["subject"]), strict=True)]
        )
        for mode, rounds in runs.items()
        for n, run in enumerate(rounds, 1)
    }
    return {
        "remaining-time disagreement (CDF)": {
            "x": "max - min over clients (ms)",
            "y": "samples <= x (%)",
            "log": "x",
            "data": cdfs,
        },
        "phase-change spread, p99 over trials": {
            "x": "mode: first seen / countdown at zero",
            "y": "max - min of the instants (ms)",
            "kind": "bar",
            "log": "y",
            "data": bars,
        },
        "sync engine's disagreement during sampling, per round": {
            "x": "time since the timer started (s)",
            "y": "max - min over clients (ms)",
            "data": over_time,
        },
    }


def _round_params(run: ModeRun) -> dict[str, object]:
    gaps = _ms(run.poll_gaps) or [0.0]
    return {
        "skews_s": [round(v, 3) for v in run.offsets],
        "samples": len(run.remaining["subject"]),
        "remaining_p99_ms": _p99_ms(run.remaining["subject"]),
        "phase_p99_ms": _p99_ms(run.phase["subject"]),
        "flip_p99_ms": _p99_ms(run.flip["subject"]),
        "valid_phase_trials": len(run.phase["subject"]),
        "invalid_trials": run.invalid_trials,
        "offset_error_max_ms": max(_ms(run.offset_error), default=0.0),
        "clock_samples_min": min(run.clock_samples, default=0),
        "poll_gap_ms": {"p50": percentile(gaps, 50), "p99": percentile(gaps, 99)},
        "propagation_max_ms": max(_ms(run.propagation), default=0.0),
        "naive_lead_s": round(run.naive_lead, 3),
        "seconds": round(run.seconds, 1),
        "load": run.load,
    }


def build_result(
    args: argparse.Namespace, runs: dict[str, list[ModeRun]], errors: list[str]
) -> Result:
    result = Result(
        name=NAME,
        title="Timer agreement between peers with skewed clocks",
        subject_name=LABELS["subject"],
        quick=args.quick,
        params={
            "clients": args.clients,
            "max_skew_s": args.max_skew,
            "rounds": args.rounds,
            "sample_seconds": args.sample_seconds,
            "interval_s": args.interval,
            "phase_trials": args.trials,
            "phase_lead_s": args.lead,
            "modes": list(runs),
        },
    )
    naive: dict[str, float] = {}
    ideal: dict[str, float] = {}
    for mode, rounds in runs.items():
        for what in ("remaining", "phase", "flip"):
            prefix = f"{mode}_{what}_ms"
            for kind, into in (("subject", result.subject), ("naive", naive), ("ideal", ideal)):
                values = _pool(rounds, what, kind)
                if values:
                    into.update(summary(_ms(values), prefix))
            for suffix in ("p50", "p99", "max", "mean"):
                result.units[f"{prefix}_{suffix}"] = "ms"
        gaps = _ms(_pool(rounds, "poll_gaps")) or [0.0]
        result.params[f"{mode}_poll_gap_ms"] = {
            "p50": percentile(gaps, 50),
            "p99": percentile(gaps, 99),
            "max": max(gaps),
        }
        result.params[f"{mode}_rounds"] = [_round_params(run) for run in rounds]
    result.anchors = {"naive": naive, "ideal": ideal}
    result.series = panels(runs)
    for mode in runs:
        for what in ("remaining", "phase", "flip"):
            result.targets.append(Target(f"{mode}_{what}_ms_p99", "<=", TARGET_MS, "ms"))
    result.notes = [
        "Subject: what each client displays, room.timer_view(now=engine.now_for(room)); "
        "anchor naive: now = the client's own skewed clock; anchor ideal: one exact clock, "
        "the measurement's floor. Ratios are subject / anchor. Figures pool every round "
        "(fresh profiles, relay and clock offsets each); params.<mode>_rounds has each.",
        "remaining: per sample, every client read back to back, each corrected to the first "
        "read's true instant; max - min. phase / flip: a running focus written to end `lead` s "
        "later on the timebase; spread of the true instants each client first shows the break "
        "(phase: resolution = the poll gap, see params) / its countdown reached zero (flip: "
        "the read before + the remaining time it showed). The naive phase figures come from "
        "one long trial per mode (lead > the fastest clock's lead), so p50 = p99 = max.",
        "The engine's disagreement is its clients' offset errors, which change only with a "
        "new clock sample (relay: on connect, then every 10 s; LAN: 8 at once, then every "
        "5 s): samples within a round are far from independent, and rounds differ. On the "
        "relay the first sample is taken while every link is busy syncing; the plot of "
        "disagreement over time shows the step at the second one, 10 s in.",
        "The naive remaining time is clamped to the phase's duration, so a slow clock shows "
        "the full duration until it reaches the start instant: for the first max-skew "
        "seconds of sampling its disagreement is below the full clock spread.",
        "All clients run in one process on one event loop (pongs wait for the others' work); "
        "params.<mode>_rounds[].load records the CPU other jobs used meanwhile.",
        *errors,
    ]
    return result


def print_summary(result: Result) -> None:
    ratios = result.ratios()
    for mode in result.params["modes"]:
        for what in ("remaining", "phase", "flip"):
            prefix = f"{mode}_{what}_ms"
            if f"{prefix}_p99" not in result.subject:
                continue
            line = "  ".join(
                f"{s} {result.subject[f'{prefix}_{s}']:8.3f}" for s in ("p50", "p99", "max")
            )
            naive = result.anchors["naive"].get(f"{prefix}_p99")
            ideal = result.anchors["ideal"].get(f"{prefix}_p99")
            extra = ""
            if naive is not None:
                extra += f"  | naive p99 {naive:10.1f}"
                extra += f" (ratio {ratios['naive'][f'{prefix}_p99']:.2e})"
            if ideal is not None:
                extra += f"  | ideal p99 {ideal:6.3f}"
            print(f"{prefix:22} ms  {line}{extra}")
    for mode in result.params["modes"]:
        gap = result.params[f"{mode}_poll_gap_ms"]
        print(f"{mode}: poll gap p50 {gap['p50']:.2f} p99 {gap['p99']:.2f} max {gap['max']:.2f} ms")
        for n, round_ in enumerate(result.params[f"{mode}_rounds"], 1):
            figures = ", ".join(
                f"{key} {round_[key]:.3f}"
                for key in ("remaining_p99_ms", "flip_p99_ms", "offset_error_max_ms")
                if round_[key] is not None
            )
            print(f"  round {n}: {figures}; other CPU {round_['load']['other_cpu_pct']} %")
    for target in result.targets:
        got = result.subject.get(target.metric)
        print(
            f"target {target.metric} {target.op} {target.value:g} ms: got {got}, met={target.met}"
        )


# -- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", type=Path, default=None, help="directory for the JSON")
    parser.add_argument("--modes", default=",".join(MODES), help="relay,lan")
    parser.add_argument("--clients", type=int, default=None, help="peers (8; quick 3)")
    parser.add_argument("--max-skew", type=float, default=None, help="± s (10; quick 1)")
    parser.add_argument("--sample-seconds", type=float, default=None, help="(12; quick 0.5)")
    parser.add_argument("--interval", type=float, default=0.025, help="between samples, s")
    parser.add_argument(
        "--trials", type=int, default=None, help="phase-end trials a round (8; q 2)"
    )
    parser.add_argument("--lead", type=float, default=None, help="phase end after, s (1; q 0.5)")
    parser.add_argument("--rounds", type=int, default=None, help="fresh groups per mode (2; q 1)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    quick = {"clients": 3, "max_skew": 1.0, "sample_seconds": 0.5, "trials": 2}
    full = {"clients": 8, "max_skew": 10.0, "sample_seconds": 12.0, "trials": 8}
    defaults = {**(quick if args.quick else full), "lead": 0.5 if args.quick else 1.0}
    defaults["rounds"] = 1 if args.quick else 2
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.clients < 2:
        parser.error("--clients must be at least 2")
    args.modes = [m for m in args.modes.split(",") if m]
    if unknown := set(args.modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "focusmate-bench" if args.quick else RESULTS
    return args


async def run_all(args: argparse.Namespace) -> tuple[dict[str, list[ModeRun]], list[str]]:
    """Every round of every mode, the modes interleaved so machine noise hits them alike."""
    runs: dict[str, list[ModeRun]] = {mode: [] for mode in args.modes}
    errors: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="focusmate-timer-"))
    try:
        for round_ in range(args.rounds):
            for mode in args.modes:
                try:
                    run = await run_mode(mode, args, root / f"{mode}{round_}", round_)
                except Exception as exc:  # a failed round still reports the others
                    errors.append(f"{mode} round {round_ + 1} failed: {type(exc).__name__}: {exc}")
                else:
                    runs[mode].append(run)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {mode: rounds for mode, rounds in runs.items() if rounds}, errors


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    runs, errors = asyncio.run(run_all(args))
    result = build_result(args, runs, errors)
    path = result.write(args.out)
    print_summary(result)
    for error in errors:
        print(error, file=sys.stderr)
    print(f"wrote {path}")
    return 1 if errors or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
