"""A seeded stream of hostile connections against one real relay, while two legitimate clients
keep syncing in the same room.

Each hostile connection comes from its own loopback address (127.0.0.2 and up), on ``/doc`` or
``/v1``, and sends a few frames built by the real encoders and then mutated: sync messages with
real updates and state vectors, awareness (giant, NaN, deeply nested, too many entries), control
messages before and after the handshake, document frames, oversized and text frames, and the
5-byte update that makes pycrdt panic. After every batch the legitimate clients must still see
each other's edits and ``/healthz`` must answer; at the end the relay must have forgotten every
hostile peer (connections, subscriptions, presence, sessions, per-address state, documents) and
never have failed internally (close code 1011). ``tests/soak/test_relay_fuzz_soak.py`` runs the
same stream for longer against a relay process, measuring its memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from relay.docs import Shadow
from relay.peer import Peer
from relay.server import Relay
from sync import control, handshake
from sync.wire import write_var_uint
from sync.ysync import (
    AuthDenied,
    AwarenessEntry,
    AwarenessMessage,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_message,
)
from tests.integration.relaykit import (
    ControlClient,
    DocClient,
    healthz,
    limits,
    open_room,
    poll,
    running_relay,
)
from tests.pycrdt_panics import EQUIVOCATION, EQUIVOCATION_BASE, panic_type, poison_for

SEED = int(os.environ.get("FOCUSMATE_FUZZ_SEED", "8"))
MAX_FRAME = 64 * 1024
OPEN_LIMITS = limits(  # every hostile connection gets in, so every frame is really read
    max_frame_bytes=MAX_FRAME,
    max_connections_per_ip=10_000,
    connects_per_ip_per_second=10_000.0,
    connect_burst_per_ip=10_000.0,
    auth_failures_per_ip_per_minute=1e9,
    handshake_seconds=5.0,
)
HOSTILE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 34)]
CLOSE_DEADLINE = 5.0

# -- valid frames, then mutated -----------------------------------------------------------------


def real_updates(rng: random.Random, count: int) -> list[bytes]:
    updates = []
    for _ in range(count):
        doc: Doc[Any] = Doc(client_id=rng.randrange(1, 1 << 53))
        doc.get("t", type=Text).insert(0, "hostile" * rng.randint(1, 5))
        doc.get("m", type=Map)[f"h{rng.randrange(1000)}"] = rng.choice([1, "x", None, [1, 2]])
        updates.append(doc.get_update())
    return updates


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """1–3 structural mutations: truncation, bit flips, inserted or deleted bytes, a var-uint
    replaced by a huge or overlong one, a splice with another frame."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        if kind == 0:
            del out[rng.randint(0, len(out)) :]
        elif kind == 1 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 2:
            out.insert(rng.randint(0, len(out)), rng.randrange(256))
        elif kind == 3 and out:
            del out[rng.randrange(len(out))]
        elif kind == 4 and out:
            at = rng.randrange(len(out))
            out[at : at + 1] = rng.choice(
                [b"\xff" * 7 + b"\x0f", b"\x80" * 7 + b"\x10", b"\xff" * 9 + b"\x01", b"\x80" * 8]
            )
        elif kind == 5 and others:
            other = rng.choice(others)
            out[rng.randint(0, len(out)) :] = other[rng.randint(0, len(other)) :]
    return bytes(out)


def awareness(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    client_id = rng.randrange(1, 1 << 32)
    if kind == 0:  # a plausible one
        entries = tuple(
            AwarenessEntry(client_id + i, rng.randrange(5), {"user": {"name": "h"}})
            for i in range(rng.randint(1, 10))
        )
        return encode_message(AwarenessMessage(entries))
    states = {
        1: '{"name":"' + "x" * rng.choice([9000, 60000]) + '"}',  # giant
        2: '{"a":NaN}',
        3: '{"a":' + "[" * 200 + "]" * 200 + "}",
        4: "not json",
        5: '{"a":1e999}',
    }
    entry = AwarenessEntry(client_id, 1, {"n": 1})
    frame = encode_message(AwarenessMessage((entry,)))
    body = states[kind].encode()
    payload = bytearray(b"\x01")
    write_var_uint(payload, client_id)
    payload += b"\x01"
    write_var_uint(payload, len(body))
    payload += body
    out = bytearray(frame[:1])
    write_var_uint(out, len(payload))
    return bytes(out + payload)


@dataclass
class Context:
    """What the generators draw from: the legitimate room and some real Yjs bytes."""

    secret: bytes
    victim_client_id: int
    updates: list[bytes]
    states: list[bytes]
    other_secret: bytes = field(default_factory=new_room_secret)

    def y_frames(self, rng: random.Random) -> list[bytes]:
        return [
            encode_message(SyncStep1(rng.choice(self.states))),
            encode_message(SyncStep2(rng.choice(self.updates))),
            encode_message(SyncUpdate(rng.choice(self.updates))),
            encode_message(SyncUpdate(poison_for(self.victim_client_id))),
            encode_message(QueryAwareness()),
            encode_message(AuthDenied("no")),
            awareness(rng),
        ]

    def y_frame(self, rng: random.Random) -> bytes:
        frames = self.y_frames(rng)
        frame = rng.choice(frames)
        if rng.random() < 0.1:
            return frame + os.urandom(rng.choice([1, MAX_FRAME]))  # trailing bytes, or too big
        return frame if rng.random() < 0.35 else mutate(rng, frame, frames)


def control_texts(ctx: Context, rng: random.Random) -> list[str]:
    doc_id = room_id_for(ctx.secret)
    return [
        control.encode(control.Ping(id="p", t0=time.time())),
        control.encode(control.Subscribe(doc_id=doc_id, token=relay_token(ctx.secret))),
        control.encode(control.Subscribe(doc_id=doc_id, token="0" * 64)),
        control.encode(control.Subscribe(doc_id="../" + doc_id, token=relay_token(ctx.secret))),
        control.encode(control.Unsubscribe(doc_id=doc_id)),
        control.encode(control.TimerRequest(id="t", doc_id=doc_id, command="start")),
        control.encode(control.DmSend(envelope={"to": "x", "body": [1] * rng.randrange(50)})),
        control.encode(control.DmAck(ids=("a",) * rng.randrange(300))),
        '{"v":1,"type":["ping"]}',
        '{"v":1,"type":"ping","id":"p","t0":' + "9" * 400 + "}",
        '{"v":1,"type":"dm_send","envelope":{"a":NaN}}',
        '{"v":1,"type":"subscribe","doc_id":"\\ud800","token":"t"}',
        '{"v":1,"type":"dm_send","envelope":' + "[" * 5000 + "]" * 5000 + "}",
        '{"v":1,"type":"nope"}',
        '{"v":2,"type":"ping"}',
    ]


def control_frame(ctx: Context, rng: random.Random) -> str | bytes:
    if rng.random() < 0.4:  # a document frame, for the legit room or another
        doc_id = room_id_for(rng.choice([ctx.secret, ctx.other_secret]))
        frame = control.encode_doc_frame(doc_id, ctx.y_frame(rng))
        return frame if rng.random() < 0.7 else mutate(rng, frame, [])
    texts = control_texts(ctx, rng)
    text = rng.choice(texts)
    if rng.random() < 0.5:
        return text
    return mutate(rng, text.encode(), [t.encode() for t in texts]).decode("utf-8", "replace")


@dataclass
class Plan:
    """One hostile connection: where it comes from, where it goes, and what it sends."""

    address: str
    path: str
    handshake: str  # "none" (doc), "valid", "garbage"
    frames: list[str | bytes]


def plan(ctx: Context, rng: random.Random) -> Plan:
    address = rng.choice(HOSTILE_ADDRESSES)
    count = rng.randint(1, 5)
    if rng.random() < 0.5:
        secret = rng.choice([ctx.secret, ctx.secret, ctx.other_secret])
        token = relay_token(secret) if rng.random() < 0.9 else "f" * 64
        path = f"/doc/{room_id_for(secret)}?token={token}"
        frames: list[str | bytes] = [ctx.y_frame(rng) for _ in range(count)]
        if rng.random() < 0.05:
            frames.append("a text frame")
        return Plan(address, path, "none", frames)
    if rng.random() < 0.15:
        texts = control_texts(ctx, rng)
        garbage = mutate(rng, rng.choice(texts).encode(), []).decode("utf-8", "replace")
        return Plan(address, "/v1", "garbage", [garbage])
    subscribe = control.Subscribe(doc_id=room_id_for(ctx.secret), token=relay_token(ctx.secret))
    sequence: list[str | bytes] = [control.encode(subscribe)]
    sequence += [control_frame(ctx, rng) for _ in range(count)]
    return Plan(address, "/v1", "valid", sequence)


# -- running hostile connections ------------------------------------------------------------


@dataclass
class Tally:
    connections: int = 0
    frames: int = 0
    refused: int = 0  # HTTP refusals before the upgrade
    close_codes: collections.Counter[int | None] = field(default_factory=collections.Counter)
    user_ids: set[str] = field(default_factory=set)


async def run_hostile(port: int, p: Plan, tally: Tally) -> None:
    url = f"ws://127.0.0.1:{port}{p.path}"
    tally.connections += 1
    try:
        ws = await connect(
            url,
            compression=None,
            max_size=None,
            open_timeout=CLOSE_DEADLINE,
            local_addr=(p.address, 0),
        )
    except InvalidHandshake:
        tally.refused += 1
        return
    async with ws:
        try:
            if p.handshake != "none":
                challenge = control.decode(await ws.recv())
                assert isinstance(challenge, control.Challenge)
                if p.handshake == "valid":
                    identity = Identity.generate()
                    tally.user_ids.add(identity.user_id)
                    answer = handshake.answer(identity, challenge, address=f"ws://127.0.0.1:{port}")
                    await ws.send(control.encode(answer))
            for frame in p.frames:
                await ws.send(frame)
                tally.frames += 1
            # A frame no decoder accepts ends every plan, so the relay closes the connection
            # once it has read everything before it, and the close code says how it went.
            await ws.send(b"\xff" if p.path.startswith("/doc") else "\xff")
            async with asyncio.timeout(CLOSE_DEADLINE):
                async for _ in ws:
                    pass
        except ConnectionClosed:
            pass
    tally.close_codes[ws.close_code] += 1


def peers_in_memory() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Peer))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Baseline:
    peers: set[Peer]
    tracked: int
    peer_objects: int
    docs: set[str]


async def forget_idle(relay: Relay, advance: Callable[[float], None]) -> None:
    """Let an hour pass on the relay's clock and run its housekeeping: buckets refill and are
    pruned, idle documents leave memory."""
    advance(3600.0)
    await relay.housekeep()


def assert_forgotten(relay: Relay, baseline: Baseline, tally: Tally, doc_id: str) -> None:
    assert relay.peers == baseline.peers, "hostile peers are still connected"
    state = relay.hub.docs[doc_id]
    assert set(state.subs) == baseline.peers, "a hostile peer is still subscribed"
    hostile_presence = [p for p in state.awareness.values() if p.owner not in baseline.peers]
    assert hostile_presence == [], "a hostile peer's presence outlived it"
    assert all(not relay.sessions.online(user) for user in tally.user_ids)
    assert relay.admission.open == len(baseline.peers)
    assert relay.admission.tracked() == baseline.tracked, "per-address state was not forgotten"
    assert relay.control.tracked() == 0, "subscribe-failure budgets were not forgotten"
    assert set(relay.hub.docs) == baseline.docs, "a document opened by a hostile peer stayed"
    assert peers_in_memory() == baseline.peer_objects, "Peer objects leaked"


async def legit_round(a: DocClient, b: DocClient, key: str) -> float:
    """A value set by one legitimate client arrives at the other; returns the latency."""
    started = time.perf_counter()
    await a.set(key, key)
    await b.wait_value(key, key)
    return time.perf_counter() - started


# -- the test -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    tally: Tally
    latencies: list[float]
    rss_before: int
    rss_after: int


async def fuzz_relay(
    tmp_path: Path, *, connections: int, batch: int, seed: int, report: bool = False
) -> Outcome:
    rng = random.Random(seed)
    offset = [0.0]

    def monotonic() -> float:
        return time.monotonic() + offset[0]

    def advance(seconds: float) -> None:
        offset[0] += seconds

    tally = Tally()
    latencies: list[float] = []
    async with running_relay(tmp_path, limits=OPEN_LIMITS, monotonic=monotonic) as relay:
        secret = new_room_secret()
        doc_id = room_id_for(secret)
        a, b = await open_room(relay, secret, 2)
        await legit_round(a, b, "warm-up")
        await forget_idle(relay, advance)
        baseline = Baseline(
            set(relay.peers), relay.admission.tracked(), peers_in_memory(), set(relay.hub.docs)
        )
        ctx = Context(secret, a.doc.client_id, real_updates(rng, 6), [])
        ctx.states = [a.doc.get_state(), b"\x00", b"\x01\x01\x00"]
        rss_before = rss_bytes()
        done = 0
        while done < connections:
            plans = [plan(ctx, rng) for _ in range(min(batch, connections - done))]
            await asyncio.gather(*(run_hostile(relay.port, p, tally) for p in plans))
            done += len(plans)
            latencies.append(await legit_round(a, b, f"a{done}"))
            latencies.append(await legit_round(b, a, f"b{done}"))
            assert (await healthz(relay))["status"] == "ok"
            if report:
                print(
                    f"{done} hostile connections, {tally.frames} frames, {dict(tally.close_codes)}"
                )
        await poll(lambda: relay.peers == baseline.peers, "every hostile peer to be gone")
        await forget_idle(relay, advance)
        gc.collect()
        rss_after = rss_bytes()
        assert_forgotten(relay, baseline, tally, doc_id)
        assert a.map().to_py() == b.map().to_py()  # the room converged
        await a.close()
        await b.close()
    return Outcome(tally, latencies, rss_before, rss_after)


async def test_a_stream_of_hostile_connections_leaves_the_relay_and_the_room_intact(
    tmp_path: Path,
) -> None:
    outcome = await fuzz_relay(tmp_path, connections=240, batch=24, seed=SEED)
    tally = outcome.tally
    assert tally.connections == 240
    # the relay never failed internally (1011 is what an unexpected exception closes with)
    assert tally.close_codes[1011] == 0, tally.close_codes
    assert tally.close_codes[4400] > 100  # most plans really were malformed and refused
    assert tally.refused == 0
    # memory of the whole test process (relay and clients): generous, the leak check is above
    assert outcome.rss_after - outcome.rss_before < 64 * 1024 * 1024


@pytest.mark.parametrize(
    "text",
    [
        '{"v":1,"type":["ping"]}',
        '{"v":1,"type":"ping","id":"p","t0":' + "9" * 400 + "}",
    ],
    ids=["unhashable-type", "integer-beyond-a-double"],
)
async def test_a_control_message_that_once_broke_the_decoder_is_a_clean_refusal(
    tmp_path: Path, text: str
) -> None:
    """Both raised TypeError/OverflowError inside the relay: a logged traceback and close code
    1011 (internal error), reachable before authentication. Now 4400 with a reason."""
    async with running_relay(tmp_path) as relay:
        async with connect(f"ws://127.0.0.1:{relay.port}/v1", compression=None) as ws:
            await ws.recv()  # the challenge
            await ws.send(text)
            with contextlib.suppress(ConnectionClosed):
                async with asyncio.timeout(CLOSE_DEADLINE):
                    async for _ in ws:
                        pass
        assert ws.close_code == control.CloseCode.BAD_FRAME
        assert ws.close_reason is not None and ws.close_reason.startswith("bad frame: ")
        assert (await healthz(relay))["status"] == "ok"


async def test_a_panic_escaping_while_serving_one_connection_closes_only_that_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a pycrdt panic we have not found yet escape the relay's checks (pyo3's
    PanicException is a BaseException, which ``except Exception`` misses), it is still one
    connection's error: closed with 1011, the relay and its other connections go on."""
    secret = new_room_secret()
    panic = panic_type()
    async with running_relay(tmp_path) as relay:
        victim, bystander = await open_room(relay, secret, 2)
        receive = relay.hub.receive

        def panicking(state: Any, peer: Peer, message: Any, raw: bytes) -> None:
            if message == SyncUpdate(b"\x00\x00"):  # the trigger, sent by the victim only
                raise panic("called `Option::unwrap()` on a `None` value")
            receive(state, peer, message, raw)

        monkeypatch.setattr(relay.hub, "receive", panicking)
        await victim.ws.send(encode_message(SyncUpdate(b"\x00\x00")))
        code, why = await victim.wait_closed()
        assert (code, why) == (control.CloseCode.INTERNAL, "internal error")
        (newcomer,) = await open_room(relay, secret, 1)
        await legit_round(bystander, newcomer, "after the panic")
        assert (await healthz(relay))["status"] == "ok"


async def test_the_update_that_makes_pycrdt_panic_is_refused_not_forwarded(
    tmp_path: Path,
) -> None:
    """Five bytes naming a client with no changes: the relay once committed and forwarded
    them, and every pycrdt client holding that client's edits panicked applying them."""
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        victim, attacker = await open_room(relay, secret, 2)
        await legit_round(victim, attacker, "before")
        await attacker.ws.send(encode_message(SyncUpdate(poison_for(victim.doc.client_id))))
        code, why = await attacker.wait_closed()
        assert code == control.CloseCode.BAD_FRAME
        assert why is not None and "no changes" in why
        (other,) = await open_room(relay, secret, 1)
        await legit_round(victim, other, "after")
        assert not victim._reader.done()  # its reader did not die of a panic


@pytest.mark.parametrize("equivocation_first", [False, True], ids=["base-first", "equiv-first"])
async def test_two_updates_that_panic_together_do_not_poison_the_room(
    tmp_path: Path, equivocation_first: bool
) -> None:
    """Each update is valid alone, so the relay once committed both, and every new subscriber's
    sync step 2 (the merged log) panicked its pycrdt client: the room could no longer sync
    through the relay, and compaction raised. In one order the second update panics against the
    first and is refused; in the other it is ignored by pycrdt, but merging its bytes with the
    first's panics, so the relay keeps only what is new in it (nothing)."""
    secret = new_room_secret()
    first, second = (
        (EQUIVOCATION, EQUIVOCATION_BASE)
        if equivocation_first
        else (
            EQUIVOCATION_BASE,
            EQUIVOCATION,
        )
    )
    async with running_relay(tmp_path) as relay:
        member, attacker = await open_room(relay, secret, 2)
        await legit_round(member, attacker, "before")
        await attacker.ws.send(encode_message(SyncUpdate(first)))
        await attacker.ws.send(encode_message(SyncUpdate(second)))
        with contextlib.suppress(ConnectionClosed):
            await attacker.ws.send(b"\xff")  # read up to here, then closed
        code, why = await attacker.wait_closed()
        assert code == control.CloseCode.BAD_FRAME
        assert why is not None
        if not equivocation_first:
            assert "conflicts with the document" in why
        assert not member._reader.done(), member._reader.exception()
        (newcomer,) = await open_room(relay, secret, 1)
        assert not newcomer._reader.done(), newcomer._reader.exception()
        await legit_round(member, newcomer, "after")
        # compaction, then another newcomer from the folded document
        await relay.hub.compact(relay.hub.docs[room_id_for(secret)])
        (late,) = await open_room(relay, secret, 1)
        await legit_round(late, member, "after compaction")
        assert late.map().to_py() == member.map().to_py()


def _json_dump(outcome: Outcome) -> str:
    """The figures, for the soak test's report."""
    lat = sorted(outcome.latencies)
    return json.dumps(
        {
            "connections": outcome.tally.connections,
            "frames": outcome.tally.frames,
            "close_codes": {str(k): v for k, v in outcome.tally.close_codes.items()},
            "legit_latency_p50_ms": round(lat[len(lat) // 2] * 1000, 2),
            "legit_latency_max_ms": round(lat[-1] * 1000, 2),
        }
    )


async def test_subscribes_to_made_up_documents_are_forgotten(tmp_path: Path) -> None:
    """One connection asks for 300 well-formed document ids that no room has: the per-address
    state this creates must go once its refill time has passed, like every other bucket. A
    good subscription creates none at all (it once made a bucket per address and room)."""
    offset = [0.0]
    secret = new_room_secret()
    async with running_relay(
        tmp_path, limits=OPEN_LIMITS, monotonic=lambda: time.monotonic() + offset[0]
    ) as relay:
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(control.Welcome)
        await ctl.send(control.Subscribe(doc_id=room_id_for(secret), token=relay_token(secret)))
        await ctl.expect(control.Subscribed)
        assert relay.control.tracked() == 0, "a good subscription made per-address state"
        for n in range(300):
            await ctl.send(control.Subscribe(doc_id=f"{n:032x}", token="0" * 64))
        for _ in range(300):
            await ctl.expect(control.Error)
        assert relay.control.tracked() == 300
        await ctl.close()
        await poll(lambda: not relay.peers, "the connection to go")
        offset[0] += 3600.0
        await relay.housekeep()
        assert relay.control.tracked() == 0


def pycrdt_docs_in_memory() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Doc))


async def test_timer_commands_leave_no_copy_of_the_room_behind(tmp_path: Path) -> None:
    """Found by the long hostile stream: the relay's memory grew by a copy of the room per
    timer command (3,000 commands on a 5 KB room: +107 MiB). Any room member can send them."""
    secret = new_room_secret()
    doc_id = room_id_for(secret)
    async with running_relay(tmp_path) as relay:
        (member,) = await open_room(relay, secret, 1)
        await member.set("k", "v")
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(control.Welcome)
        await ctl.send(control.Subscribe(doc_id=doc_id, token=relay_token(secret)))
        await ctl.expect(control.Subscribed)
        before = pycrdt_docs_in_memory()
        for n in range(20):
            await ctl.send(control.TimerRequest(id=str(n), doc_id=doc_id, command="start"))
        for _ in range(20):
            await ctl.expect(control.Error)  # not a member: refused, but a copy was made
        assert pycrdt_docs_in_memory() == before
        await ctl.close()


async def test_a_room_nobody_is_in_keeps_no_document_copy_in_memory(tmp_path: Path) -> None:
    """Writes are checked against a pycrdt copy of the room (relay/docs.py Shadow), as big in
    memory as the room itself (11 MiB for 10k posts): once the last subscriber leaves, it must
    go, while the room's bytes stay loaded until it is idle long enough to be evicted."""

    def copies() -> int:
        gc.collect()
        return sum(1 for obj in gc.get_objects() if isinstance(obj, Shadow))

    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        a, b = await open_room(relay, secret, 2)
        await legit_round(a, b, "checked")  # the relay builds its copy for this write
        assert copies() == 1
        await a.close()
        assert copies() == 1  # b is still there
        await b.close()
        await poll(lambda: not relay.peers, "the clients to go")
        assert room_id_for(secret) in relay.hub.docs
        assert copies() == 0
