"""LAN links: peers speak the control channel to each other directly, with no relay.

Every running peer listens on a websocket port (advertised by ``sync.discovery``); of two peers
that find each other, the one with the smaller user id dials, so each pair has one connection.
A session is symmetric once it is up. Rules:

* **Mutual identity handshake.** The listener sends a challenge; the dialer answers with a hello
  signed over the listener's nonce and bound to the address ``focusmate-lan:<listener's user
  id>``, and sends its own challenge; the listener answers with a hello bound to
  ``focusmate-lan:<dialer's user id>``. A hello bound to anyone else is refused, so a man in the
  middle cannot pass one side's proof on to the other. The dialer also refuses a listener that
  is not the user its advert named (adverts are hints, proofs decide).
* **Room membership without revealing rooms.** Each side sends one HMAC per room it holds,
  keyed by the room secret, over the *other* side's nonce and both user ids
  (``focusmate.invite.membership_proof``). No room ids and no secrets cross the wire: each side
  finds the rooms it shares by recomputing the proofs for its own rooms.
* Then each shared room is synced with ``sync.docsync`` over document frames, as on a relay's
  ``/v1``; updates are persisted before anything else sees them. Frames for any other room (one
  the peer does not share with us, or an id it guessed) are ignored.
* **Failed handshakes are limited per address** (``sync.lan_admission``): a host that keeps
  failing them is refused at the upgrade for a while; other hosts still connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Protocol

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.http11 import Request, Response

from focusmate.clock import Clock
from focusmate.dm import Envelope
from focusmate.errors import ValidationError
from focusmate.identity import Identity, PublicIdentity, b64url_decode, b64url_encode
from focusmate.invite import Invite, membership_proof, parse_invite
from sync import control, handshake
from sync.clock import ClockSample, OffsetEstimator
from sync.docsync import DocSync, SyncableDocument, receive_doc_frame
from sync.lan_admission import LanAdmission
from sync.presence import PresenceHooks
from sync.relay_link import Event
from sync.wire import ProtocolError
from sync.ysync import AwarenessMessage, encode_message

log = logging.getLogger("focusmate.sync")
PEER_SERVER = "focusmate-peer/1"
HANDSHAKE_SECONDS = 10.0
MAX_ROOM_PROOFS = 256
MAX_OFFERS = 32
MAX_FRAME_BYTES = 8 * 1024 * 1024
PING_BURST = 8
# A LAN peer that vanishes (cable pulled, Wi-Fi gone) is noticed within three of these: a ping,
# its timeout, and the close handshake's.
KEEPALIVE_SECONDS = 3.0
PING_SECONDS = 5.0


class Socket(Protocol):
    """A websocket, client or server side (websockets' connections are both)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


class LanMail(Protocol):
    """Direct messages straight between LAN peers (no relay in between)."""

    def lan_dm(self, envelope: Envelope, session: LanSession) -> None: ...

    def lan_receipt(self, message_ids: tuple[str, ...], kind: str) -> None: ...


class LanRooms(Protocol):
    """The rooms a peer holds: (room id, secret, document), looked up when a session starts;
    and the invite links it offers to everyone on the LAN (see ``RoomOffers``)."""

    def lan_rooms(self) -> list[tuple[str, bytes, SyncableDocument]]: ...

    def lan_offers(self) -> list[str]: ...

    def offers_received(self, session: LanSession) -> None: ...


def lan_address(user_id: str) -> str:
    return f"focusmate-lan:{user_id}"


def _context(prover: str, verifier: str) -> bytes:
    return f"{prover}>{verifier}".encode()


class LanSession:
    """One authenticated connection to one LAN peer, syncing the rooms both hold."""

    def __init__(
        self,
        ws: Socket,
        *,
        identity: Identity,
        rooms: LanRooms,
        clock: Clock,
        events: Callable[[Event], None],
        presence: PresenceHooks | None = None,
        mail: LanMail | None = None,
    ) -> None:
        self.ws = ws
        self.presence = presence
        self.mail = mail
        self.identity = identity
        self.rooms = rooms
        self.clock = clock
        self.events = events
        self.peer: PublicIdentity | None = None
        self.offset = OffsetEstimator()  # the peer's clock minus ours
        self.origin = "lan:?"
        self.sessions: dict[str, DocSync] = {}
        self.offers: tuple[Invite, ...] = ()  # rooms this peer offers to its LAN
        self._nonces = (b"", b"")  # (mine, theirs) from the handshake, for room proofs
        self._offered: frozenset[str] = frozenset()  # the rooms our last proofs covered
        self._outgoing: asyncio.Queue[str | bytes] = asyncio.Queue()

    # -- the engine's side ------------------------------------------------------------------------

    def local_update(self, doc_id: str, update: bytes, *, origin: str) -> None:
        sync = self.sessions.get(doc_id)
        if sync is None:
            return
        message = sync.local_update(update, origin=origin)
        if message is not None:
            self._outgoing.put_nowait(control.encode_doc_frame(doc_id, message))

    def send_dm(self, envelope: Envelope) -> None:
        """Deliver an envelope to this peer; its ``dm_ack`` marks it delivered."""
        self._outgoing.put_nowait(control.encode(control.DmDeliver(envelope=envelope.to_dict())))

    def send_read(self, message_ids: tuple[str, ...]) -> None:
        """Tell this peer (the sender) that we read these messages."""
        assert self.peer is not None
        read = control.DmRead(sender=self.peer.user_id, message_ids=message_ids)
        self._outgoing.put_nowait(control.encode(read))

    def send_awareness(self, doc_id: str, message: AwarenessMessage) -> None:
        if doc_id in self.sessions:
            self._outgoing.put_nowait(control.encode_doc_frame(doc_id, encode_message(message)))

    # -- handshake ------------------------------------------------------------------------------

    async def _recv(self) -> str | bytes:
        return await asyncio.wait_for(self.ws.recv(), HANDSHAKE_SECONDS)

    async def _send_now(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def _expect(self, kind: type[control.ControlMessage]) -> control.ControlMessage:
        frame = await self._recv()
        message = control.decode(frame)
        if not isinstance(message, kind):
            raise ProtocolError(f"expected {kind.TYPE}, got {message.TYPE}")
        return message

    def _verify(self, hello: control.Hello, nonce: bytes) -> PublicIdentity:
        mine = frozenset({handshake.normalise_address(lan_address(self.identity.user_id))})
        return handshake.check(hello, nonce=nonce, addresses=mine)

    async def handshake_as_listener(self) -> None:
        my_nonce = handshake.new_nonce()
        await self._send_now(control.encode(self._challenge(my_nonce)))
        hello = await self._expect(control.Hello)
        assert isinstance(hello, control.Hello)
        self.peer = self._verify(hello, my_nonce)
        their = await self._expect(control.Challenge)
        assert isinstance(their, control.Challenge)
        answer = handshake.answer(self.identity, their, address=lan_address(self.peer.user_id))
        await self._send_now(control.encode(answer))
        await self._exchange_rooms(my_nonce=my_nonce, their_nonce=their.nonce)

    async def handshake_as_dialer(self, *, expected_user: str) -> None:
        their = await self._expect(control.Challenge)
        assert isinstance(their, control.Challenge)
        await self._send_now(
            control.encode(
                handshake.answer(self.identity, their, address=lan_address(expected_user))
            )
        )
        my_nonce = handshake.new_nonce()
        await self._send_now(control.encode(self._challenge(my_nonce)))
        hello = await self._expect(control.Hello)
        assert isinstance(hello, control.Hello)
        self.peer = self._verify(hello, my_nonce)
        if self.peer.user_id != expected_user:
            raise ValidationError(
                f"the peer advertised as {expected_user} proved to be {self.peer.user_id}"
            )
        await self._exchange_rooms(my_nonce=my_nonce, their_nonce=their.nonce)

    def _challenge(self, nonce: bytes) -> control.Challenge:
        return control.Challenge(nonce=nonce, server=PEER_SERVER, time=self.clock.now())

    async def _exchange_rooms(self, *, my_nonce: bytes, their_nonce: bytes) -> None:
        assert self.peer is not None
        self.origin = f"lan:{self.peer.user_id}"
        self._nonces = (my_nonce, their_nonce)
        await self._send_now(control.encode(self._offer()))
        received = await self._expect(control.RoomProofs)
        assert isinstance(received, control.RoomProofs)
        self._match(received)

    def _offer(self) -> control.RoomProofs:
        """One proof per room we hold, over the other side's nonce."""
        assert self.peer is not None
        me, them = self.identity.user_id, self.peer.user_id
        rooms = self.rooms.lan_rooms()[:MAX_ROOM_PROOFS]
        self._offered = frozenset(room_id for room_id, _, _ in rooms)
        return control.RoomProofs(
            proofs=tuple(
                b64url_encode(
                    membership_proof(secret, nonce=self._nonces[1], context=_context(me, them))
                )
                for _, secret, _ in rooms
            )
        )

    def _match(self, received: control.RoomProofs) -> list[str]:
        """Start syncing the rooms whose proofs we received; the ids newly shared."""
        assert self.peer is not None
        if len(received.proofs) > MAX_ROOM_PROOFS:
            raise ProtocolError("too many room proofs")
        me, them = self.identity.user_id, self.peer.user_id
        theirs = {b64url_decode(proof, what="room proof") for proof in received.proofs}
        new = []
        for room_id, secret, document in self.rooms.lan_rooms():
            if room_id in self.sessions:
                continue
            expected = membership_proof(secret, nonce=self._nonces[0], context=_context(them, me))
            if any(hmac.compare_digest(expected, proof) for proof in theirs):
                self.sessions[room_id] = DocSync(document, origin=self.origin)
                new.append(room_id)
        return new

    def offer_rooms(self) -> None:
        """Offer our rooms again (we joined one while connected); the peer answers likewise
        when that makes a room shared, and both start syncing it."""
        self._outgoing.put_nowait(control.encode(self._offer()))

    def send_offers(self) -> None:
        """Tell the peer which rooms we offer on the LAN (all of them, replacing the last)."""
        offers = tuple(self.rooms.lan_offers()[:MAX_OFFERS])
        self._outgoing.put_nowait(control.encode(control.RoomOffers(offers=offers)))

    def _receive_offers(self, message: control.RoomOffers) -> None:
        if len(message.offers) > MAX_OFFERS:
            raise ProtocolError("too many room offers")
        offers = []
        for link in message.offers:
            with contextlib.suppress(ValidationError):  # one bad offer spoils only itself
                offers.append(parse_invite(link))
        self.offers = tuple(offers)
        self.rooms.offers_received(self)

    def _greet(self, doc_id: str) -> None:
        for greeting in self.sessions[doc_id].start():
            self._outgoing.put_nowait(control.encode_doc_frame(doc_id, greeting))
        here = self.presence.announcement(doc_id) if self.presence else None
        if here is not None:
            self.send_awareness(doc_id, here)

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync the shared rooms until the connection closes."""
        assert self.peer is not None
        writer = asyncio.get_running_loop().create_task(self._write())
        pinger = asyncio.get_running_loop().create_task(self._ping())
        try:
            # A room we started tracking during the handshake (after our proofs went out, before
            # the engine knew this session) would otherwise stay one-sided until a reconnect.
            # Offered before any greeting: the peer ignores frames for a room it does not yet
            # know we share, so a sync step 1 ahead of the proofs would be lost.
            held = self.rooms.lan_rooms()[:MAX_ROOM_PROOFS]
            if frozenset(room_id for room_id, _, _ in held) != self._offered:
                self.offer_rooms()
            for doc_id in list(self.sessions):
                self._greet(doc_id)
            self.send_offers()
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self._doc_frame(frame)
                else:
                    self._control(control.decode(frame), received_at=self.clock.now())
        finally:
            writer.cancel()
            pinger.cancel()
            await asyncio.gather(writer, pinger, return_exceptions=True)

    def _control(self, message: control.ControlMessage, *, received_at: float) -> None:
        if isinstance(message, control.Ping):
            pong = control.Pong(message.id, message.t0, received_at, self.clock.now())
            self._outgoing.put_nowait(control.encode(pong))
        elif isinstance(message, control.Pong):
            sample = ClockSample.from_times(message.t0, message.t1, message.t2, self.clock.now())
            self.offset.add(sample)
        elif isinstance(message, control.RoomProofs):
            new = self._match(message)
            if new:  # so the peer, too, learns the room is shared, before our sync step 1
                self.offer_rooms()  # reaches it (it ignores frames for rooms it does not know)
            for doc_id in new:
                self._greet(doc_id)
        elif isinstance(message, control.RoomOffers):
            self._receive_offers(message)
        elif self.mail is None:
            return
        elif isinstance(message, control.DmDeliver):
            envelope = Envelope.from_dict(message.envelope)
            if self.peer is None or envelope.sender != self.peer.user_id:
                raise ProtocolError("a LAN peer can only deliver its own messages")
            self.mail.lan_dm(envelope, self)  # stored before it is acknowledged
            self._outgoing.put_nowait(control.encode(control.DmAck(ids=(envelope.id,))))
        elif isinstance(message, control.DmAck):
            self.mail.lan_receipt(message.ids, "delivered")
        elif isinstance(message, control.DmRead):
            self.mail.lan_receipt(message.message_ids, "read")

    async def _ping(self) -> None:
        """Clock probes: a burst at the start (a timebase is wanted at once), then steady."""
        for n in itertools.count():
            ping = control.Ping(id=f"p{n}", t0=self.clock.now())
            self._outgoing.put_nowait(control.encode(ping))
            await asyncio.sleep(0.05 if n < PING_BURST else PING_SECONDS)

    def _doc_frame(self, frame: bytes) -> None:
        doc_id, replies, synced = receive_doc_frame(
            frame, sessions=self.sessions, now=self.clock.now(), on_awareness=self._awareness
        )
        for reply in replies:
            self._outgoing.put_nowait(reply)
        if synced:
            self.events({"event": "doc_synced", "link": self.origin, "doc_id": doc_id})

    def _awareness(self, doc_id: str, message: AwarenessMessage) -> None:
        if self.presence is not None:
            self.presence.awareness_received(doc_id, message, self)

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.send(await self._outgoing.get())


class LanNode:
    """Listens for LAN peers, dials the ones it is told about, and hands live sessions to the
    engine through ``on_session`` / ``on_session_end``."""

    def __init__(
        self,
        *,
        identity: Identity,
        rooms: LanRooms,
        clock: Clock,
        events: Callable[[Event], None],
        on_session: Callable[[LanSession], None],
        on_session_end: Callable[[LanSession], None],
        host: str = "0.0.0.0",
        port: int = 0,
        presence: PresenceHooks | None = None,
        mail: LanMail | None = None,
        admission: LanAdmission | None = None,
    ) -> None:
        self.identity = identity
        self.presence = presence
        self.mail = mail
        self.rooms = rooms
        self.clock = clock
        self.events = events
        self.on_session = on_session
        self.on_session_end = on_session_end
        self.host = host
        self.port = port
        self.admission = admission or LanAdmission()
        self.sessions: dict[str, LanSession] = {}  # by peer user id
        self._server: Server | None = None
        # Dials in flight, by where they go, not only by whom they expect: an advert is a hint
        # anyone can publish, so a spoofed one for a peer must not hold back the dial to the
        # real one (both run; the one that proves to be the peer wins).
        self._dialing: set[tuple[str, str, int]] = set()

    async def start(self) -> None:
        self._server = await serve(
            self._accept,
            self.host,
            self.port,
            process_request=self._admit,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=KEEPALIVE_SECONDS,
            ping_timeout=KEEPALIVE_SECONDS,
            close_timeout=KEEPALIVE_SECONDS,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def should_dial(self, user_id: str) -> bool:
        """Of two peers, the one with the smaller user id dials: one connection per pair."""
        return self.identity.user_id < user_id and user_id not in self.sessions

    async def dial(self, user_id: str, host: str, port: int) -> None:
        target = (user_id, host, port)
        if target in self._dialing or user_id in self.sessions:
            return
        self._dialing.add(target)
        url = f"ws://{host}:{port}" if ":" not in host else f"ws://[{host}]:{port}"
        try:
            async with connect(
                url,
                compression=None,
                max_size=MAX_FRAME_BYTES,
                ping_interval=KEEPALIVE_SECONDS,
                ping_timeout=KEEPALIVE_SECONDS,
                close_timeout=KEEPALIVE_SECONDS,
            ) as ws:
                session = self._session(ws)
                await session.handshake_as_dialer(expected_user=user_id)
                await self._run(session)
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as err:
            log.info("sync.lan_dial_failed", extra={"peer": user_id, "error": str(err)})
        except (ProtocolError, ValidationError) as err:
            self.events({"event": "lan_refused", "peer": user_id, "reason": str(err)})
        finally:
            self._dialing.discard(target)

    def _admit(self, ws: ServerConnection, request: Request) -> Response | None:
        """Refuse, before any challenge, an address that failed too many handshakes."""
        if self.admission.refused(_remote_ip(ws)):
            return ws.respond(HTTPStatus.TOO_MANY_REQUESTS, "too many failed handshakes\n")
        return None

    async def _accept(self, ws: ServerConnection) -> None:
        session = self._session(ws)
        try:
            try:
                await session.handshake_as_listener()
            except (ProtocolError, ValidationError, TimeoutError):
                self.admission.failed(_remote_ip(ws))
                raise
            await self._run(session)
        except (ConnectionClosed, TimeoutError):
            pass
        except (ProtocolError, ValidationError) as err:
            self.events({"event": "lan_refused", "reason": str(err)})
            await ws.close(control.CloseCode.UNAUTHORIZED, str(err)[:120])

    def _session(self, ws: Socket) -> LanSession:
        return LanSession(
            ws,
            identity=self.identity,
            rooms=self.rooms,
            clock=self.clock,
            events=self.events,
            presence=self.presence,
            mail=self.mail,
        )

    async def _run(self, session: LanSession) -> None:
        assert session.peer is not None
        user_id = session.peer.user_id
        if user_id in self.sessions:
            return  # already connected the other way
        self.sessions[user_id] = session
        self.on_session(session)
        self.events({"event": "link_up", "link": session.origin, "rooms": len(session.sessions)})
        try:
            await session.run()
        finally:
            del self.sessions[user_id]
            self.on_session_end(session)
            self.events({"event": "link_down", "link": session.origin})


def _remote_ip(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if address else "unknown"
