"""Five real sync engines converge under chaos: random edits from every profile while a
fault-injecting proxy duplicates, reorders, delays and drops frames and cuts connections, and
engines and a relay are restarted (and one engine, a daemon process, is killed with SIGKILL).

Topology (each engine with its own SQLite profile; every connection through a
:class:`~tests.integration.faultproxy.FaultProxy`)::

    relay 1: alice, bob*, carol          relay 2: dave, erin
    LAN:     carol ═ dave ═ erin

``bob*`` is ``focusmate daemon`` in its own process. Alice's edits reach erin only through
relay 1, carol's LAN link to dave and relay 2 (or dave's LAN link to erin): relay → LAN → relay.
When the chaos stops (faults off, every engine up), every profile must hold the same room (every
map and the state vector) and every edit any profile committed (:class:`Model` records each)
must be there, also after reopening each profile from disk. The seed drives every choice; the
interleaving still varies from run to run, as real timing does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, TransactionEvent

from focusmate.clock import SystemClock
from focusmate.errors import FocusMateError, StoreError
from focusmate.workspace import Workspace
from relay.config import Limits, RelayConfig
from relay.server import Relay
from tests.integration.faultproxy import FaultPlan, FaultProxy
from tests.integration.relaykit import DocClient, doc_url, relay_value, running_relay
from tests.integration.synckit import (
    DaemonProcess,
    EnginePeer,
    connect,
    room_state,
    running,
    within,
)

RELAY_1 = ("alice", "bob", "carol")
RELAY_2 = ("dave", "erin")
LAN_PAIRS = (("carol", "dave"), ("dave", "erin"))
IN_PROCESS = ("alice", "carol", "dave", "erin")
LAN = {"carol", "dave", "erin"}
REDIAL_SECONDS = 0.1  # discovery redials every 2 s; the test's stand-in for it is quicker


# -- what was written ----------------------------------------------------------------------------


@dataclass
class Model:
    """Every committed edit's outcome. Each record is written only by its author, from one
    profile, in order, so its final value is the author's last write."""

    posts: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # author, body, deleted
    comments: dict[str, tuple[str, str, str, bool]] = field(default_factory=dict)
    likes: set[str] = field(default_factory=set)
    name: str = ""
    kinds: Counter[str] = field(default_factory=Counter)

    def projection(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "comments": self.comments,
            "likes": sorted(self.likes),
            "name": self.name,
        }


def projection(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of a room's state the model predicts."""
    maps = state["maps"]
    return {
        "posts": {
            k: (v["author"], v["body"], v["deleted"]) for k, v in maps.get("posts", {}).items()
        },
        "comments": {
            k: (v["author"], v["post_id"], v["body"], v["deleted"])
            for k, v in maps.get("comments", {}).items()
        },
        "likes": sorted(maps.get("likes", {})),
        "name": maps.get("settings", {}).get("name"),
    }


def random_edit(
    ws: Workspace, room_id: str, rng: random.Random, model: Model, *, n: int, kind: str = ""
) -> None:
    """One edit a user could make (``kind``, else drawn), through the app's APIs, recorded once
    committed. An edit the profile cannot make yet (the post it targets has not arrived) is a
    FocusMateError before anything is written, and is not recorded."""
    ws.refresh()  # the daemon's profile: see what its process wrote meanwhile
    room = ws.find_room(room_id)
    board = ws.board(room)
    me, now = ws.user_id, ws.now()
    posts = room.document.map("posts")
    live = [k for k in sorted(posts.keys()) if not posts[k].get("deleted")]
    mine = [(m, k) for m, k in _own(model, me)]
    kind = (
        kind
        or rng.choices(
            ["post", "comment", "like", "unlike", "edit", "delete", "rename"],
            weights=[30, 25, 15, 5, 12, 8, 10 if room.owner_id == me else 0],
        )[0]
    )
    try:
        if kind == "post" or (kind in ("comment", "like", "unlike") and not live):
            kind = "post"
            body = f"post {n} by {me[:6]}"
            model.posts[board.post(body, now=now)] = (me, body, False)
        elif kind == "comment":
            post_id = rng.choice(live)
            body = f"comment {n} by {me[:6]}"
            comment_id = board.comment(post_id, body, now=now)
            model.comments[comment_id] = (me, post_id, body, False)
        elif kind == "like":
            post_id = rng.choice(live)
            board.like(post_id, now=now)
            model.likes.add(f"{post_id}:{me}")
        elif kind == "unlike":
            post_id = rng.choice(live)
            board.unlike(post_id, now=now)
            model.likes.discard(f"{post_id}:{me}")
        elif kind in ("edit", "delete") and mine:
            which, item_id = rng.choice(mine)
            deleted = kind == "delete"
            body = "" if deleted else f"edited {n}"
            if which == "posts":
                (board.delete_post if deleted else _editor(board.edit_post, body))(item_id, now=now)
                model.posts[item_id] = (me, body, deleted)
            else:
                (board.delete_comment if deleted else _editor(board.edit_comment, body))(
                    item_id, now=now
                )
                _, post_id, _, _ = model.comments[item_id]
                model.comments[item_id] = (me, post_id, body, deleted)
        elif kind == "rename":
            name = f"Room {n}"
            room.update_settings(now=now, name=name)
            model.name = name
        else:
            return
    except FocusMateError:
        model.kinds["refused"] += 1
        return
    model.kinds[kind] += 1


def _own(model: Model, me: str) -> list[tuple[str, str]]:
    return [("posts", k) for k, (a, _, d) in model.posts.items() if a == me and not d] + [
        ("comments", k) for k, (a, _, _, d) in model.comments.items() if a == me and not d
    ]


def _editor(edit: Callable[..., None], body: str) -> Callable[..., None]:
    return lambda item_id, *, now: edit(item_id, body, now=now)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    steps: int
    edits: Counter[str]
    faults: Counter[str]
    chaos_seconds: float
    converge_seconds: float
    missing: int  # committed edits not found on some profile: must be 0
    relinked: dict[str, list[str]]  # links that came up while converging (after the chaos)
    caught_up: dict[str, float]  # seconds after the chaos until each profile had every edit

    def summary(self) -> str:
        return json.dumps(
            {
                "seed": self.seed,
                "steps": self.steps,
                "edits_committed": sum(v for k, v in self.edits.items() if k != "refused"),
                "edits": dict(sorted(self.edits.items())),
                "faults": dict(sorted(self.faults.items())),
                "chaos_seconds": round(self.chaos_seconds, 2),
                "converge_seconds": round(self.converge_seconds, 2),
                "missing": self.missing,
                "relinked_while_converging": self.relinked,
                "caught_up_seconds": self.caught_up,
            }
        )


class Cluster:
    """The five profiles, their engines, the proxies between them and the two relays."""

    def __init__(self, tmp_path: Path, rng: random.Random, plan: FaultPlan) -> None:
        self.tmp_path = tmp_path
        self.rng = rng

        def proxy() -> FaultProxy:
            return FaultProxy(None, rng=random.Random(rng.random()), plan=plan)

        self.relay_proxies = {name: proxy() for name in (*RELAY_1, *RELAY_2)}
        self.lan_proxies = {pair: proxy() for pair in LAN_PAIRS}
        self.relays: list[Relay] = []
        self.engines: dict[str, EnginePeer] = {}
        self.daemon: DaemonProcess | None = None
        self.daemon_workspace: Workspace | None = None  # a CLI's view of bob's profile
        self.down: set[str] = set()
        self.faults: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def proxies(self) -> list[FaultProxy]:
        return [*self.relay_proxies.values(), *self.lan_proxies.values()]

    def workspace(self, name: str) -> Workspace:
        if name == "bob":
            assert self.daemon_workspace is not None
            return self.daemon_workspace
        return self.engines[name].workspace

    def names(self) -> list[str]:
        return ["alice", "bob", "carol", "dave", "erin"]

    def _engine(self, name: str) -> EnginePeer:
        relays = [self.relay_proxies[name].url]
        return EnginePeer(self.tmp_path / name, relays=relays, lan=name in LAN)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Cluster]:
        async with contextlib.AsyncExitStack() as stack:
            for p in self.proxies:
                await stack.enter_async_context(p)
            for i in range(2):
                self.relays.append(await self._start_relay(i))
            self.engines = {name: self._engine(name) for name in IN_PROCESS}
            bob = self.tmp_path / "bob"
            self.daemon = DaemonProcess(bob, relays=[self.relay_proxies["bob"].url])
            self.daemon_workspace = Workspace(bob, clock=SystemClock())
            stack.push_async_callback(self._stop_all)
            yield self

    async def _start_relay(self, i: int) -> Relay:
        """Relay ``i`` on a fresh port, on its data directory; its members' proxies point at
        it. The handshake is bound to the address a client dialled: the proxy's."""
        members = (RELAY_1, RELAY_2)[i]
        urls = tuple(self.relay_proxies[n].url for n in members)
        config = RelayConfig(
            host="127.0.0.1",
            port=0,
            data_dir=self.tmp_path / f"relay{i + 1}",
            limits=Limits(),
            public_urls=urls,
        )
        relay = Relay(config)
        await relay.start()
        for n in members:
            self.relay_proxies[n].target = f"ws://127.0.0.1:{relay.port}"
        return relay

    async def start(self) -> None:
        for peer in self.engines.values():
            await peer.engine.start()
        assert self.daemon is not None
        await self.daemon.start()
        task = asyncio.get_running_loop().create_task(self._keep_lan_up())
        self._tasks.add(task)

    async def _keep_lan_up(self) -> None:
        """What discovery's redial does: dial LAN peers that are up but not connected, through
        the pair's proxy (pointed at the listener's current port)."""
        while True:
            for pair in LAN_PAIRS:
                if self.down & set(pair):
                    continue
                a, b = (self.engines[n] for n in pair)
                dialer, listener = (a, b) if a.workspace.user_id < b.workspace.user_id else (b, a)
                proxy = self.lan_proxies[pair]
                proxy.target = f"ws://127.0.0.1:{listener.port}"
                assert dialer.engine.lan is not None
                if dialer.engine.lan.should_dial(listener.workspace.user_id):
                    connect(dialer, listener, port=proxy.port)
            await asyncio.sleep(REDIAL_SECONDS)

    def restart(self, name: str, downtime: float) -> None:
        """Stop an engine cleanly and start a new one on the same profile after ``downtime``
        (bob: ``kill -9`` his daemon instead). Edits go on meanwhile, offline."""
        self.down.add(name)
        task = asyncio.get_running_loop().create_task(self._restart(name, downtime))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, name: str, downtime: float) -> None:
        try:
            if name.startswith("relay"):
                i = int(name[-1]) - 1
                await self.relays[i].stop()
                self.faults["relay_restart"] += 1
                await asyncio.sleep(downtime)
                self.relays[i] = await self._start_relay(i)
                return
            if name == "bob":
                assert self.daemon is not None
                await self.daemon.kill()
                self.faults["kill_9"] += 1
            else:
                await self.engines[name].engine.stop()
                self.faults["restart"] += 1
            await asyncio.sleep(downtime)  # the peer is down this long while others edit
            if name == "bob":
                assert self.daemon is not None
                await self.daemon.start()
            else:
                old = self.engines[name]
                self.engines[name] = new = self._engine(name)  # edits go here from now on
                old.workspace.close()
                await new.engine.start()
        finally:
            self.down.discard(name)

    async def settle(self) -> None:
        """Faults off, every engine up again."""
        for p in self.proxies:
            p.faults = False
        try:
            await within(30, lambda: not self.down, "every engine back up")
        except AssertionError as err:
            stuck = [_where(task) for task in self._tasks if not task.done()]
            raise AssertionError(f"{err}: {sorted(self.down)} still down; {stuck}") from None
        assert self.daemon is not None
        assert self.daemon.running, str(self.daemon)

    async def _stop_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for peer in self.engines.values():
            await peer.engine.stop()
        if self.daemon is not None and self.daemon.proc is not None:
            await self.daemon.stop(deadline=30)
        for relay in self.relays:
            await relay.stop()
        for p in self.proxies:
            self.faults.update(p.counts)


async def run_chaos(
    tmp_path: Path,
    *,
    seed: int,
    steps: int,
    pace: float = 0.05,
    plan: FaultPlan | None = None,
    converge_within: float = 30.0,
) -> Report:
    """Set up the five profiles in one room, run ``steps`` random steps (mostly edits; cuts,
    restarts and kills now and then) with faults on, then check convergence."""
    rng = random.Random(seed)
    cluster = Cluster(tmp_path, rng, plan or FaultPlan())
    model = Model()
    async with cluster.running():
        alice = cluster.engines["alice"].workspace
        room, invite = alice.create_room("Chaos")
        model.name = "Chaos"
        for name in cluster.names()[1:]:
            cluster.workspace(name).join_room(invite.code)
        await cluster.start()

        def arrived(name: str) -> bool:
            ws = cluster.workspace(name)
            ws.refresh()  # bob's daemon writes in another process
            return ws.find_room(room.room_id).exists

        await within(30, lambda: all(map(arrived, cluster.names())), "the room on every profile")
        for p in cluster.proxies:
            p.faults = True
        started = time.monotonic()
        await _chaos(cluster, room.room_id, rng, model, steps=steps, pace=pace)
        chaos_seconds = time.monotonic() - started
        await cluster.settle()
        settled = time.monotonic()
        ups = {n: len(_link_ups(cluster, n)) for n in cluster.names()}
        expected = model.projection()

        def states() -> dict[str, dict[str, Any]]:
            return {n: room_state(cluster.workspace(n), room.room_id) for n in cluster.names()}

        caught_up: dict[str, float] = {}  # seconds after the chaos until each had every edit

        def converged() -> bool:
            seen = states()
            for n, state in seen.items():
                if n not in caught_up and projection(state) == expected:
                    caught_up[n] = round(time.monotonic() - settled, 2)
            first = seen["alice"]
            return all(s == first for s in seen.values()) and projection(first) == expected

        try:
            await within(converge_within, converged, "every profile to hold the same room")
        except AssertionError:
            raise AssertionError(_divergence(states(), expected) + _daemon_story(cluster)) from None
        converge_seconds = time.monotonic() - settled
        missing = _missing(states(), expected)
        relinked = {n: _link_ups(cluster, n)[ups[n] :] for n in cluster.names()}
        final = states()["alice"]
    # after a clean stop, each profile reopened from disk still holds it all
    for name in cluster.names():
        with Workspace(tmp_path / name, clock=alice.clock) as ws:
            assert room_state(ws, room.room_id) == final, f"{name}'s profile on disk"
    return Report(
        seed=seed,
        steps=steps,
        edits=model.kinds,
        faults=cluster.faults,
        chaos_seconds=chaos_seconds,
        converge_seconds=converge_seconds,
        missing=missing,
        relinked={n: links for n, links in relinked.items() if links},
        caught_up=caught_up,
    )


async def _chaos(
    cluster: Cluster, room_id: str, rng: random.Random, model: Model, *, steps: int, pace: float
) -> None:
    """The random steps: edits (single or in bursts), cuts, restarts and kills."""
    # besides the random ones, each kind of restart at least once, at a fixed step
    scheduled = {
        steps // 5: "bob",  # kill -9 of the daemon
        2 * steps // 5: "carol",  # the bridge between relay 1 and the LAN
        3 * steps // 5: "relay1",
        4 * steps // 5: "dave",  # the bridge between the LAN and relay 2
    }
    for n in range(steps):
        roll = rng.random()
        up = [name for name in cluster.names() if name not in cluster.down]
        if n in scheduled and scheduled[n] not in cluster.down:
            cluster.restart(scheduled[n], downtime=rng.uniform(0.2, 0.8))
        elif n % 50 == 25:
            random_edit(cluster.workspace("alice"), room_id, rng, model, n=n, kind="rename")
        elif roll < 0.03:
            rng.choice(cluster.proxies).cut_all()
        elif roll < 0.045 and up and len(cluster.down) < 2:
            cluster.restart(rng.choice(up), downtime=rng.uniform(0.1, 0.8))
        else:  # one edit, or a burst from one user (they overtake each other in flight)
            name = rng.choice(cluster.names())
            for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 6)):
                random_edit(cluster.workspace(name), room_id, rng, model, n=n)
        await asyncio.sleep(rng.uniform(0, 2 * pace))  # the pace of the workload


def _where(task: asyncio.Task[None]) -> str:
    """Where a task is waiting, outermost call first (for the message when a restart never
    finishes)."""
    where = []
    coro: Any = task.get_coro()
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        where.append(f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}")
        coro = coro.cr_await
    return " -> ".join(where) + (f" -> {coro!r}" if coro is not None else "")


def _missing(states: dict[str, dict[str, Any]], expected: dict[str, Any]) -> int:
    """Committed edits (records and likes) that some profile lacks or holds otherwise."""
    wrong = 0
    for state in states.values():
        got = projection(state)
        for part in ("posts", "comments"):
            wrong += sum(got[part].get(k) != v for k, v in expected[part].items())
        wrong += len(set(expected["likes"]) - set(got["likes"]))
    return wrong


def _link_ups(cluster: Cluster, name: str) -> list[str]:
    if name == "bob":
        assert cluster.daemon is not None
        lines = cluster.daemon.events(all_runs=True)
    else:
        lines = cluster.engines[name].events
    return [e["link"] for e in lines if e.get("event") == "link_up"]


def _daemon_story(cluster: Cluster) -> str:
    """What bob's daemon logged (its errors) and reported about its links (for the message)."""
    assert cluster.daemon is not None
    quiet = {"doc_synced", "presence", "post_received", "comment_received", "timer_phase"}
    events = [e for e in cluster.daemon.events(all_runs=True) if e.get("event") not in quiet]
    stderr = cluster.daemon.stderr_log.read_text(errors="replace")[-4000:]
    lines = [json.dumps(e) for e in events[-30:]]
    return "\nbob's daemon events:\n" + "\n".join(lines) + "\nbob's daemon stderr:\n" + stderr


def _divergence(states: dict[str, dict[str, Any]], expected: dict[str, Any]) -> str:
    """What each profile lacks or has extra, against the model (for the failure message)."""
    lines = []
    for name, state in states.items():
        got = projection(state)
        for part in ("posts", "comments"):
            missing = {k: v for k, v in expected[part].items() if got[part].get(k) != v}
            extra = set(got[part]) - set(expected[part])
            if missing or extra:
                lines.append(f"{name} {part}: wrong or missing {missing}, unexpected {extra}")
        if got["likes"] != expected["likes"]:
            lines.append(f"{name} likes differ: {set(got['likes']) ^ set(expected['likes'])}")
        if got["name"] != expected["name"]:
            lines.append(f"{name} name {got['name']!r} != {expected['name']!r}")
        lines.append(f"{name} state vector {state['state_vector']}")
    return "profiles diverged:\n" + "\n".join(lines)


@pytest.mark.slow
async def test_five_engines_converge_through_relays_and_lan_under_faults(tmp_path: Path) -> None:
    report = await run_chaos(tmp_path, seed=8, steps=150)
    print(report.summary())
    assert report.missing == 0
    assert sum(v for k, v in report.edits.items() if k != "refused") >= 200
    # the chaos really happened: every kind of fault was injected and survived
    for kind in (
        "duplicate",
        "reorder",
        "delay",
        "drop",
        "cut",
        "restart",
        "kill_9",
        "relay_restart",
    ):
        assert report.faults[kind] > 0, (kind, report.faults)


async def test_a_gap_closing_passes_on_what_is_new_not_the_whole_room(tmp_path: Path) -> None:
    """Bob bridges two relays. Two updates of one writer reach him through relay 1 in the
    wrong order: the second waits for the first. Meanwhile a CLI command posts on his profile,
    and then the first arrives; each time his document rebuilds from its log. What he passes on
    to relay 2 must be the new post and the two edits, not the whole room again (which, stored
    and passed on by every peer still waiting, grew into a storm under reordering)."""
    alice = Workspace(tmp_path / "alice", clock=SystemClock())
    room, invite = alice.create_room("Big room")
    board = alice.board(room)
    for i in range(200):
        board.post(f"post number {i} with a little text to make it weigh something", now=i)
    whole = len(room.document.doc.get_update())
    async with (
        FaultProxy(None, rng=random.Random(0)) as proxy,  # faults off: it counts bytes
        running_relay(tmp_path / "relay-1") as relay_1,
        running_relay(tmp_path / "relay-2", public_urls=(proxy.url,)) as relay_2,
    ):
        proxy.target = f"ws://127.0.0.1:{relay_2.port}"
        links = [f"ws://127.0.0.1:{relay_1.port}", proxy.url]
        bob = EnginePeer(tmp_path / "bob", relays=links)
        bob.workspace.join_room(invite.code)
        async with running(bob):

            def synced() -> bool:
                events = [e for e in bob.events if e.get("doc_id") == room.room_id]
                done = {e["link"] for e in events if e["event"] == "doc_synced"}
                return done >= set(links)

            # Both handshakes over first: relay 2's sync step 1 answered later would carry the
            # whole room a second time, still in flight when ``sent`` is read below.
            await within(10, synced, "bob synced with both relays")
            writer = await DocClient.open(doc_url(relay_1, invite.secret))
            await writer.push(room.document.doc.get_update())  # the room reaches relay 1
            await within(10, lambda: bob.posts(room.room_id) != [], "the room at bob")
            await within(
                10,
                lambda: relay_value(relay_2, room.room_id, "owner", name="meta") is not None,
                "the room passed on to relay 2",
            )
            first, second = _two_updates(room.document.doc.get_update())
            sent = proxy.counts["doc_bytes"]
            await writer.push(second)  # overtakes the first: bob's document waits for it
            store = bob.workspace.store
            await within(
                10,
                lambda: second in store.read_log(room.room_id).updates,
                "the second edit stored at bob",
            )
            cli = Workspace(tmp_path / "bob", clock=SystemClock())  # another process on it
            post_id = cli.board(cli.find_room(room.room_id)).post("from the CLI", now=cli.now())
            cli.close()
            await within(
                10,
                lambda: relay_value(relay_2, room.room_id, post_id, name="posts") is not None,
                "the CLI's post on relay 2",
            )
            while_waiting, sent = proxy.counts["doc_bytes"] - sent, proxy.counts["doc_bytes"]
            await writer.push(first)  # closes the gap

            def on_relay_2() -> bool:
                keys = ("first", "second")
                return all(relay_value(relay_2, room.room_id, k, name="x") == k for k in keys)

            await within(10, on_relay_2, "both edits on relay 2")
            closing = proxy.counts["doc_bytes"] - sent
            await writer.close()
    assert while_waiting < whole / 10, (while_waiting, whole)
    assert closing < whole / 10, (closing, whole)


def _two_updates(state: bytes) -> tuple[bytes, bytes]:
    """Two consecutive edits of one writer to the room; the second depends on the first."""
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    updates: list[bytes] = []

    def record(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(record)
    for key in ("first", "second"):
        doc.get("x", type=Map)[key] = key
    first, second = updates
    return first, second


async def test_a_commit_from_another_process_while_the_engine_starts_goes_out(
    tmp_path: Path,
) -> None:
    """The daemon loads its rooms (to know what is already there) before its engine starts. A
    CLI command that commits in between must still reach the relay: neither the link's first
    sync (the document in memory lacks it) nor the store poll (if its first look at the store
    came after that commit) would carry it, until some later commit by another process."""
    with Workspace(tmp_path / "alice", clock=SystemClock()) as setup:
        room, _ = setup.create_room("Start-up")
    async with running_relay(tmp_path / "relay") as relay:
        alice = EnginePeer(tmp_path / "alice", relays=[f"ws://127.0.0.1:{relay.port}"])
        assert alice.workspace.find_room(room.room_id).exists  # loaded, as the daemon does
        with Workspace(tmp_path / "alice", clock=SystemClock()) as cli:  # another process
            post_id = cli.board(cli.find_room(room.room_id)).post("from the CLI", now=cli.now())
        async with running(alice):
            await within(
                10,
                lambda: relay_value(relay, room.room_id, post_id, name="posts") is not None,
                "the CLI's post on the relay",
            )


async def test_a_commit_the_engine_failed_to_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading another process's commit can fail for a moment (the first re-read after a CLI
    command raises here). The engine must try again at its next poll: nothing else would make
    it look, until some other process commits again."""
    with Workspace(tmp_path / "alice", clock=SystemClock()) as setup:
        room, _ = setup.create_room("Retry")
    async with running_relay(tmp_path / "relay") as relay:
        alice = EnginePeer(tmp_path / "alice", relays=[f"ws://127.0.0.1:{relay.port}"])
        async with running(alice):
            await within(
                10,
                lambda: relay_value(relay, room.room_id, "owner", name="meta") is not None,
                "the room on the relay",
            )
            refresh = alice.workspace.refresh
            failures: list[str] = []

            def flaky_refresh() -> list[str]:
                if not failures:
                    failures.append("refresh")
                    raise StoreError("the profile could not be read for a moment")
                return refresh()

            monkeypatch.setattr(alice.workspace, "refresh", flaky_refresh)
            with Workspace(tmp_path / "alice", clock=SystemClock()) as cli:  # another process
                post_id = cli.board(cli.find_room(room.room_id)).post("from the CLI", now=cli.now())
            await within(
                10,
                lambda: relay_value(relay, room.room_id, post_id, name="posts") is not None,
                "the CLI's post on the relay",
            )
            assert failures == ["refresh"]
