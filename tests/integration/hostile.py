"""Hostile connections for the relay fuzz tests (CI's short run and the soak's long one).

Each hostile connection comes from its own loopback address and sends a few frames built by the
real encoders and then mutated (see tests/integration/test_relay_fuzz.py for what they cover);
``legit_round`` is the legitimate clients' check that the room still syncs.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
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
from tests.integration.relaykit import DocClient
from tests.pycrdt_panics import poison_for

MAX_FRAME = 64 * 1024
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


async def legit_round(a: DocClient, b: DocClient, key: str) -> float:
    """A value set by one legitimate client arrives at the other; returns the latency."""
    started = time.perf_counter()
    await a.set(key, key)
    await b.wait_value(key, key)
    return time.perf_counter() - started
