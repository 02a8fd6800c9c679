"""Attacks on LAN sessions between real engines on loopback: a peer pushing frames for rooms it
does not share, a host hammering bad handshakes, and handshakes captured and replayed."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from focusmate.identity import Identity
from focusmate.workspace import DB_NAME
from sync import control, handshake
from sync.control import CloseCode
from sync.docsync import SyncableDocument
from sync.engine import SyncEngine
from sync.lan import LanNode, LanSession, lan_address
from sync.lan_admission import FAILURE_BURST, LanAdmission
from sync.ysync import (
    AwarenessEntry,
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_message,
)
from tests.integration.relaykit import DEADLINE, poll
from tests.integration.synckit import EnginePeer, peers
from tests.integration.synckit import connect as lan_connect

ATTACKER = "127.0.0.2"  # loopback, but another address than the honest peers' 127.0.0.1


def an_update(key: str, value: str) -> bytes:
    doc: Doc[Map[str]] = Doc()
    doc.get("m", type=Map)[key] = value
    return doc.get_update()


def origins_written(peer: EnginePeer, origin: str) -> set[str]:
    """The documents holding an update that arrived from ``origin`` (read from the file)."""
    with contextlib.closing(sqlite3.connect(peer.profile / DB_NAME)) as db:
        rows = db.execute("SELECT DISTINCT doc_id FROM doc_updates WHERE origin = ?", (origin,))
        return {str(row[0]) for row in rows}


def tracks(peer: EnginePeer, room_id: str) -> Callable[[], bool]:
    return lambda: room_id in peer.engine.documents


def session_with(peer: EnginePeer, other: EnginePeer) -> LanSession | None:
    for session in peer.engine.lan_sessions:
        if session.peer is not None and session.peer.user_id == other.workspace.user_id:
            return session
    return None


# -- 1. frames for a room the peer does not share ----------------------------------------------


async def test_frames_for_rooms_a_peer_does_not_share_are_ignored(tmp_path: Path) -> None:
    """Mallory completes the handshake and shares one room with Bob, then pushes every kind of
    document frame for Bob's private room (whose id she learned) and for ids she made up:
    Bob writes none of it, answers none of it, and the shared room goes on syncing."""
    async with peers(tmp_path, lan=True, count=2) as (bob, mallory):
        shared, invite = bob.workspace.create_room("Shared")
        private, _ = bob.workspace.create_room("Private")
        bob.workspace.board(private).post("bob's diary", now=bob.workspace.now())
        mallory.workspace.join_room(invite.code)
        await poll(lambda: shared.room_id in mallory.engine.documents, "mallory tracking")
        await poll(lambda: len(bob.engine.documents) == 2, "bob tracking both rooms")
        lan_connect(bob, mallory)
        await poll(lambda: mallory.room_name(shared.room_id) == "Shared", "the shared room")
        await poll(lambda: session_with(mallory, bob) is not None, "a session")
        session = session_with(mallory, bob)
        assert session is not None and set(session.sessions) == {shared.room_id}

        heard: list[str] = []  # the document ids of every frame Bob sends Mallory from now on
        receive = session._doc_frame

        def listen(frame: bytes) -> None:
            heard.append(control.decode_doc_frame(frame)[0])
            receive(frame)

        session._doc_frame = listen  # type: ignore[method-assign]
        before = bob.workspace.store.read_log(private.room_id).last_seq
        bob_docs = set(bob.workspace.store.document_ids())
        guessed = [secrets.token_hex(16) for _ in range(3)] + ["x" * 128, "../" + private.room_id]
        presence = AwarenessEntry(7, 1, {"user_id": mallory.workspace.user_id, "name": "Bob"})
        messages: list[Message] = [
            SyncUpdate(an_update("owner", mallory.workspace.user_id)),
            SyncStep2(an_update("title", "pwned")),
            SyncStep1(b"\x00"),  # "send me everything you have"
            AwarenessMessage((presence,)),
            QueryAwareness(),
        ]
        pushed = 0
        for doc_id in [private.room_id, *guessed]:
            for message in messages:
                await session.ws.send(control.encode_doc_frame(doc_id, encode_message(message)))
                pushed += 1

        # barriers: a post each way in the shared room, sent after every frame above
        mallory_room = mallory.workspace.find_room(shared.room_id)
        mallory.workspace.board(mallory_room).post("after the junk", now=mallory.workspace.now())
        await poll(lambda: bob.posts(shared.room_id) == ["after the junk"], "mallory's post")
        bob.workspace.board(shared).post("still here", now=bob.workspace.now())
        await poll(lambda: "still here" in mallory.posts(shared.room_id), "bob's post")

        assert bob.workspace.store.read_log(private.room_id).last_seq == before
        assert set(bob.workspace.store.document_ids()) == bob_docs  # nothing made for guesses
        assert origins_written(bob, f"lan:{mallory.workspace.user_id}") == {shared.room_id}
        assert bob.posts(private.room_id) == ["bob's diary"]
        assert set(heard) == {shared.room_id}  # not a frame about any other room
        assert private.room_id not in mallory.workspace.store.document_ids()
        assert pushed == 30


# -- 2. a host hammering bad handshakes --------------------------------------------------------


async def _bad_handshake(port: int, kind: str) -> int | None:
    """One failed handshake of ``kind`` from the attacker's address; the close code."""
    async with connect(f"ws://127.0.0.1:{port}", compression=None, local_addr=(ATTACKER, 0)) as ws:
        challenge = control.decode(await ws.recv())
        assert isinstance(challenge, control.Challenge)
        me = Identity.generate()
        if kind == "misaddressed":
            hello = handshake.answer(me, challenge, address=lan_address(me.user_id))
            await ws.send(control.encode(hello))
        elif kind == "stale nonce":
            old = control.Challenge(nonce=bytes(32), server="x", time=0.0)
            await ws.send(control.encode(handshake.answer(me, old, address="?")))
        elif kind == "not json":
            await ws.send("hello?")
        elif kind == "binary":
            await ws.send(b"\x00\x01")
        else:  # a challenge where a hello belongs
            await ws.send(control.encode(challenge))
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
        return ws.close_code


async def test_a_host_hammering_bad_handshakes_is_refused_while_others_connect(
    tmp_path: Path,
) -> None:
    kinds = ["misaddressed", "stale nonce", "not json", "binary", "challenge"]
    async with asyncio.timeout(3 * DEADLINE), peers(tmp_path, lan=True, count=2) as (bob, alice):
        assert bob.engine.lan is not None
        now = [1000.0]
        bob.engine.lan.admission.monotonic = lambda: now[0]

        def refusals() -> int:
            return sum(e["event"] == "lan_refused" for e in bob.events)

        for n in range(int(FAILURE_BURST)):
            assert await _bad_handshake(bob.port, kinds[n % len(kinds)]) == CloseCode.UNAUTHORIZED
        await poll(lambda: refusals() == int(FAILURE_BURST), "every failure counted")

        hammered = 20
        for _ in range(hammered):  # refused at the upgrade: no challenge, no signature check
            with pytest.raises(InvalidStatus) as refused:
                await _bad_handshake(bob.port, "misaddressed")
            assert refused.value.response.status_code == 429
            assert b"too many failed handshakes" in refused.value.response.body
        assert refusals() == int(FAILURE_BURST)

        # meanwhile an honest peer on another address connects and syncs
        room, invite = bob.workspace.create_room("Still open")
        alice.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in alice.engine.documents, "alice tracking")
        lan_connect(alice, bob)
        await poll(lambda: alice.room_name(room.room_id) == "Still open", "the room")

        now[0] += 60.0  # a minute later the address may try again
        assert await _bad_handshake(bob.port, "misaddressed") == CloseCode.UNAUTHORIZED


def test_the_failure_table_is_bounded_and_forgets_what_refilled() -> None:
    now = [0.0]
    admission = LanAdmission(burst=2, failures_per_minute=60, max_addresses=100,
                             monotonic=lambda: now[0])  # fmt: skip
    for n in range(1000):
        admission.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(admission) == 100
    admission.failed("10.9.9.9")
    assert not admission.refused("10.9.9.9")
    admission.failed("10.9.9.9")
    assert admission.refused("10.9.9.9")
    assert not admission.refused("10.9.9.8")  # never seen: not refused, not remembered
    assert len(admission) == 100
    now[0] += 1.0
    assert not admission.refused("10.9.9.9")


# -- 3. a handshake captured and replayed ------------------------------------------------------


@dataclass
class Recorder:
    """A websocket proxy that records the text frames going each way."""

    target: int
    upstream: list[str] = field(default_factory=list)  # dialer -> listener
    downstream: list[str] = field(default_factory=list)  # listener -> dialer
    port: int = 0

    async def _pump(
        self, source: ServerConnection | ClientConnection,
        sink: ServerConnection | ClientConnection, log: list[str],
    ) -> None:  # fmt: skip
        with contextlib.suppress(ConnectionClosed):
            async for frame in source:
                if isinstance(frame, str):
                    log.append(frame)
                await sink.send(frame)
        await sink.close()

    async def handle(self, dialer: ServerConnection) -> None:
        async with connect(f"ws://127.0.0.1:{self.target}", compression=None) as listener:
            await asyncio.gather(
                self._pump(dialer, listener, self.upstream),
                self._pump(listener, dialer, self.downstream),
            )


@contextlib.asynccontextmanager
async def recording(target: int) -> AsyncIterator[Recorder]:
    recorder = Recorder(target)
    async with serve(recorder.handle, "127.0.0.1", 0, compression=None) as server:
        recorder.port = server.sockets[0].getsockname()[1]
        yield recorder


def first(frames: list[str], kind: type[control.ControlMessage]) -> str:
    return next(f for f in frames if isinstance(control.decode(f), kind))


async def test_a_captured_lan_handshake_replayed_on_a_new_connection_fails(
    tmp_path: Path,
) -> None:
    """Each side signs the other's fresh nonce, so what was recorded from one session proves
    nothing in the next, in either direction, and no room proof is sent to the replayer."""
    async with asyncio.timeout(3 * DEADLINE), peers(tmp_path, lan=True, count=2) as pair:
        dialer, listener = sorted(pair, key=lambda p: p.workspace.user_id)
        room, invite = listener.workspace.create_room("Recorded")
        dialer.workspace.join_room(invite.code)
        for peer in pair:
            await poll(tracks(peer, room.room_id), "both tracking the room")
        async with recording(listener.port) as tap:
            dialer.engine.dial(listener.workspace.user_id, "127.0.0.1", tap.port)
            await poll(lambda: dialer.room_name(room.room_id) == "Recorded", "a recorded sync")
        await poll(lambda: not dialer.engine.lan_sessions, "the recorded session to end")
        await poll(lambda: not listener.engine.lan_sessions, "the recorded session to end")
        dialer_hello = first(tap.upstream, control.Hello)
        listener_challenge = first(tap.downstream, control.Challenge)
        listener_hello = first(tap.downstream, control.Hello)
        proofs = first(tap.upstream, control.RoomProofs)

        # (a) the dialer's hello replayed to the listener on a new connection
        async with connect(f"ws://127.0.0.1:{listener.port}", compression=None) as ws:
            fresh = control.decode(await ws.recv())
            assert isinstance(fresh, control.Challenge)
            recorded = control.decode(listener_challenge)
            assert isinstance(recorded, control.Challenge) and fresh.nonce != recorded.nonce
            await ws.send(dialer_hello)
            await ws.send(proofs)
            answered = []
            with contextlib.suppress(ConnectionClosed):
                async for frame in ws:
                    answered.append(frame)
        assert answered == []  # no hello, no proofs, no documents: only the close
        assert ws.close_code == CloseCode.UNAUTHORIZED
        assert "does not verify" in (ws.close_reason or "")
        assert not listener.engine.lan_sessions

        # (b) the listener's hello replayed to the dialer by someone posing as the listener
        sent_to_fake: list[str] = []

        async def fake_listener(ws: ServerConnection) -> None:
            await ws.send(listener_challenge)  # the recorded nonce, so the dialer signs it
            with contextlib.suppress(ConnectionClosed):
                sent_to_fake.append(str(await ws.recv()))  # its hello
                sent_to_fake.append(str(await ws.recv()))  # its challenge (a fresh nonce)
                await ws.send(listener_hello)  # signed over the old nonce
                async for frame in ws:
                    sent_to_fake.append(str(frame))

        async with serve(fake_listener, "127.0.0.1", 0, compression=None) as fake:
            port = fake.sockets[0].getsockname()[1]
            assert dialer.engine.lan is not None
            await dialer.engine.lan.dial(listener.workspace.user_id, "127.0.0.1", port)
        refused = [e for e in dialer.events if e["event"] == "lan_refused"]
        assert refused and "does not verify" in refused[-1]["reason"]
        kinds = [type(control.decode(frame)) for frame in sent_to_fake]
        assert kinds == [control.Hello, control.Challenge]  # no room proofs, no documents
        assert not dialer.engine.lan_sessions


# -- found on the way: a room tracked during the handshake ---------------------------------------


class LateRoom:
    """A listener's rooms as its engine has them, except that the first look (the proofs it
    sends in the handshake) misses them: the engine picked the room up a moment later, while
    the handshake was under way."""

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.looks = 0

    def lan_rooms(self) -> list[tuple[str, bytes, SyncableDocument]]:
        self.looks += 1
        return [] if self.looks == 1 else self.engine.lan_rooms()

    def lan_offers(self) -> list[str]:
        return self.engine.lan_offers()

    def offers_received(self, session: LanSession) -> None:
        self.engine.offers_received(session)


async def test_a_room_tracked_during_the_handshake_is_shared_both_ways(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (joiner, owner):
        room, invite = owner.workspace.create_room("Just made")
        joiner.workspace.join_room(invite.code)
        for peer in (joiner, owner):
            await poll(tracks(peer, room.room_id), "both tracking the room")
        rooms = LateRoom(owner.engine)
        node = LanNode(
            identity=owner.workspace.identity,
            rooms=rooms,
            clock=owner.workspace.clock,
            events=owner.events.append,
            on_session=owner.engine.lan_sessions.add,
            on_session_end=owner.engine.lan_sessions.discard,
            host="127.0.0.1",
            presence=owner.engine,
            mail=owner.engine,
        )
        await node.start()
        try:
            joiner.engine.dial(owner.workspace.user_id, "127.0.0.1", node.port)
            await poll(lambda: joiner.room_name(room.room_id) == "Just made", "the room")
            assert rooms.looks >= 2
        finally:
            await node.stop()


# -- 4. a spoofed advert must not keep the real peer out -----------------------------------------


async def test_a_spoofed_advert_does_not_hold_back_the_dial_to_the_real_peer(
    tmp_path: Path,
) -> None:
    """Discovery hands the dialer two adverts for Victor's id: Mallory's (her own listener, as
    herself) and Victor's. Both are dialled at once; the handshake with Mallory fails and
    Victor's connects. (Dials used to be deduplicated by user id alone, so while the impostor's
    dial was in flight the real one was dropped, and the redial loop, meeting her advert first,
    dropped it every time.)"""
    async with peers(tmp_path, lan=True, count=3) as trio:
        diane, victor, mallory = [*sorted(trio[:2], key=lambda p: p.workspace.user_id), trio[2]]
        room, invite = victor.workspace.create_room("Real one")
        diane.workspace.join_room(invite.code)
        for peer in (diane, victor):
            await poll(tracks(peer, room.room_id), "both tracking the room")
        victor_id = victor.workspace.user_id
        diane.engine.dial(victor_id, "127.0.0.1", mallory.port)  # the spoofed advert
        diane.engine.dial(victor_id, "127.0.0.1", victor.port)  # the real one, a moment later
        await poll(lambda: diane.room_name(room.room_id) == "Real one", "the room from victor")
        # Mallory's listener saw a hello bound to Victor's id, useless to her, and hung up
        await poll(lambda: any(e["event"] == "lan_refused" for e in mallory.events), "refusal")
        assert session_with(diane, mallory) is None and not mallory.engine.lan_sessions
        assert session_with(diane, victor) is not None
