"""A link to one relay: the ``/v1`` control channel with documents multiplexed over it.

Lifecycle: connect → identity handshake (sign the relay's nonce and the address we dialled) →
subscribe every document with its token → y-sync each one (``sync.docsync``) → live updates both
ways, clock pings, hosted timer commands, DMs. When the connection drops the link reconnects
with exponential backoff and jitter (``sync.backoff``) and syncs again from the state vectors,
so edits made offline merge on reconnect.

Everything the link learns is reported as a plain event dict (``link_up``, ``link_down``,
``doc_synced``, ``dm``, ``receipt``) for the engine and the daemon's JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from focusmate.clock import Clock
from focusmate.dm import Envelope
from focusmate.errors import FocusMateError, ValidationError
from focusmate.identity import Identity
from sync import control, handshake
from sync.backoff import Backoff
from sync.clock import ClockSample, OffsetEstimator
from sync.docsync import DocSync, SyncableDocument, receive_doc_frame
from sync.presence import PresenceHooks
from sync.wire import ProtocolError
from sync.ysync import AwarenessMessage, encode_message

log = logging.getLogger("focusmate.sync")
Event = dict[str, Any]
PING_SECONDS = 10.0
REQUEST_TIMEOUT = 10.0


class RelayError(FocusMateError):
    """The relay refused a request (its reason is the message) or could not be reached."""


@dataclass(frozen=True)
class LinkDoc:
    document: SyncableDocument
    token: str


class RelayLink:
    def __init__(
        self,
        url: str,
        *,
        identity: Identity,
        clock: Clock,
        events: Callable[[Event], None],
        on_dm: Callable[[Envelope], Awaitable[None]] | None = None,
        on_receipt: Callable[[control.Receipt], Awaitable[None]] | None = None,
        backoff: Backoff | None = None,
        ping_seconds: float = PING_SECONDS,
        presence: PresenceHooks | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.origin = f"relay:{self.url}"
        self.identity = identity
        self.clock = clock
        self.events = events
        self.on_dm = on_dm
        self.on_receipt = on_receipt
        self.backoff = backoff or Backoff()
        self.ping_seconds = ping_seconds
        self.presence = presence
        self.offset = OffsetEstimator()
        self.docs: dict[str, LinkDoc] = {}
        self.sessions: dict[str, DocSync] = {}
        self.connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._outgoing: asyncio.Queue[str | bytes] | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what the engine calls ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.origin)

    async def stop(self) -> None:
        self._stopped.set()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add_document(self, document: SyncableDocument, *, token: str) -> None:
        self.docs[document.doc_id] = LinkDoc(document, token)
        if self.connected.is_set():
            self._send(control.encode(control.Subscribe(doc_id=document.doc_id, token=token)))

    def local_update(self, doc_id: str, update: bytes, *, origin: str) -> None:
        """Forward a change of one of our documents (unless it came from this relay)."""
        sync = self.sessions.get(doc_id)
        if sync is None:
            return  # not subscribed yet: the sync after subscribing carries it
        message = sync.local_update(update, origin=origin)
        if message is not None:
            self._send(control.encode_doc_frame(doc_id, message))

    def send_awareness(self, doc_id: str, message: AwarenessMessage) -> None:
        if doc_id in self.sessions:
            self._send(control.encode_doc_frame(doc_id, encode_message(message)))

    def relay_time(self) -> float | None:
        """Our estimate of the relay's clock now (None before the first pong)."""
        offset = self.offset.offset
        return None if offset is None else self.clock.now() + offset

    async def timer(self, doc_id: str, command: str) -> dict[str, Any]:
        """Have the relay apply a timer command with its clock; the new timer state."""
        request_id = f"t{next(self._ids)}"
        reply = await self._request(
            request_id, control.TimerRequest(id=request_id, doc_id=doc_id, command=command)
        )
        assert isinstance(reply, control.TimerApplied)
        return reply.state

    async def send_dm(self, envelope: Envelope) -> None:
        """Hand an envelope to the relay; returns once it is committed there."""
        await self._request(envelope.id, control.DmSend(envelope=envelope.to_dict()))

    def mark_read(self, sender: str, message_ids: tuple[str, ...]) -> None:
        self._send(control.encode(control.DmRead(sender=sender, message_ids=message_ids)))

    # -- the connection -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                async with connect(self.url + "/v1", compression=None, max_size=None) as ws:
                    await self._session(ws)
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError) as err:
                self._went_down(str(err) or type(err).__name__)
            except (ProtocolError, ValidationError) as err:
                self._went_down(f"protocol error: {err}")
            if self._stopped.is_set():
                break
            delay = self.backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)

    def _went_down(self, reason: str) -> None:
        was_up = self.connected.is_set()
        self.connected.clear()
        self._ws = None
        self.sessions.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RelayError(f"the connection to {self.url} was lost"))
        self._pending.clear()
        if was_up:
            self.events({"event": "link_down", "link": self.url, "reason": reason})

    async def _session(self, ws: ClientConnection) -> None:
        challenge = control.decode(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
        if not isinstance(challenge, control.Challenge):
            raise ProtocolError(f"expected a challenge, got {challenge.TYPE}")
        await ws.send(control.encode(handshake.answer(self.identity, challenge, address=self.url)))
        welcome = control.decode(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
        if not isinstance(welcome, control.Welcome):
            raise ProtocolError(f"expected welcome, got {welcome.TYPE}")
        self._ws = ws
        self._outgoing = asyncio.Queue()
        writer = asyncio.get_running_loop().create_task(self._write(ws, self._outgoing))
        pinger = asyncio.get_running_loop().create_task(self._ping())
        try:
            self.backoff.reset()
            self.connected.set()
            self.events({"event": "link_up", "link": self.url})
            for doc_id, doc in self.docs.items():
                self._send(control.encode(control.Subscribe(doc_id=doc_id, token=doc.token)))
            async for frame in ws:
                if isinstance(frame, bytes):
                    self._doc_frame(frame)
                else:
                    await self._control(control.decode(frame))
        finally:
            writer.cancel()
            pinger.cancel()
            await asyncio.gather(writer, pinger, return_exceptions=True)
        self._went_down(f"closed: {ws.close_code} {ws.close_reason}".strip())

    def _send(self, data: str | bytes) -> None:
        if self._outgoing is not None and self.connected.is_set():
            self._outgoing.put_nowait(data)

    async def _write(self, ws: ClientConnection, queue: asyncio.Queue[str | bytes]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(await queue.get())

    async def _ping(self) -> None:
        while True:
            self._send(control.encode(control.Ping(id=f"p{next(self._ids)}", t0=self.clock.now())))
            await asyncio.sleep(self.ping_seconds)

    def _doc_frame(self, frame: bytes) -> None:
        doc_id, replies, synced = receive_doc_frame(
            frame, sessions=self.sessions, now=self.clock.now(), on_awareness=self._awareness
        )
        for reply in replies:
            self._send(reply)
        if synced:
            self.events({"event": "doc_synced", "link": self.url, "doc_id": doc_id})

    def _awareness(self, doc_id: str, message: AwarenessMessage) -> None:
        if self.presence is not None:
            self.presence.awareness_received(doc_id, message, self)

    async def _control(self, message: control.ControlMessage) -> None:
        if isinstance(message, control.Subscribed):
            doc = self.docs.get(message.doc_id)
            if doc is not None and message.doc_id not in self.sessions:
                sync = DocSync(doc.document, origin=self.origin)
                self.sessions[message.doc_id] = sync
                for frame in sync.start():
                    self._send(control.encode_doc_frame(message.doc_id, frame))
                greeting = self.presence.announcement(message.doc_id) if self.presence else None
                if greeting is not None:
                    self.send_awareness(message.doc_id, greeting)
        elif isinstance(message, control.Pong):
            sample = ClockSample.from_times(message.t0, message.t1, message.t2, self.clock.now())
            self.offset.add(sample)
        elif isinstance(message, control.TimerApplied | control.DmAccepted):
            ref = message.ref if isinstance(message, control.TimerApplied) else message.id
            self._resolve(ref, message)
        elif isinstance(message, control.Error):
            if message.ref is not None and message.ref in self._pending:
                self._resolve(message.ref, RelayError(message.message))
            else:
                self.events(
                    {
                        "event": "relay_error",
                        "link": self.url,
                        "code": message.code,
                        "message": message.message,
                    }
                )
        elif isinstance(message, control.DmDeliver):
            envelope = Envelope.from_dict(message.envelope)
            if self.on_dm is not None:
                await self.on_dm(envelope)  # stored locally before we acknowledge
            self._send(control.encode(control.DmAck(ids=(envelope.id,))))
        elif isinstance(message, control.Receipt):
            if self.on_receipt is not None:
                await self.on_receipt(message)
            self._send(control.encode(control.DmAck(ids=(message.id,))))

    async def _request(self, ref: str, message: control.ControlMessage) -> Any:
        if not self.connected.is_set():
            raise RelayError(f"not connected to {self.url}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        self._send(control.encode(message))
        try:
            return await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError:
            raise RelayError(f"{self.url} did not answer in time") from None
        finally:
            self._pending.pop(ref, None)

    def _resolve(self, ref: str, value: object) -> None:
        future = self._pending.get(ref)
        if future is None or future.done():
            return
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
