"""One client connection: a bounded outgoing queue, incoming rate limits, and who it is.

Sending never blocks the sender. When the kernel keeps up, frames gather in the connection's
:class:`Outbox` entry and leave together at the end of the loop iteration; otherwise they go to a
queue that a writer task (started only while there is something queued, so idle connections cost
no task) drains with flow control. A client
that stops reading fills its queue; past ``send_queue_bytes`` it is dropped with 4409 and its
queue freed, so a slow consumer costs bounded memory and never slows the others.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from focusmate.identity import PublicIdentity
from relay.config import Limits
from sync.control import CloseCode, ControlMessage, encode
from sync.ratelimit import TokenBucket

if TYPE_CHECKING:
    from relay.metrics import RelayMetrics

# Up to this many bytes may wait in the transport before frames go through the queue instead.
DIRECT_WRITE_BUFFER = 64 * 1024
CLOSE_GRACE_SECONDS = 1.0
_SERIALS = itertools.count(1)


def frame_for(data: bytes | str) -> bytes:
    """A complete server-to-client websocket frame (unmasked, uncompressed) for ``data``."""
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode("utf-8")).serialize(mask=False)
    return Frame(Opcode.BINARY, data).serialize(mask=False)


class Outbox:
    """Coalesces the frames sent during one event-loop iteration into one write per connection:
    a group commit of N updates reaches each subscriber as one syscall instead of N."""

    def __init__(self) -> None:
        self._dirty: dict[Peer, None] = {}  # an ordered set

    def add(self, peer: Peer) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty[peer] = None

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for peer in dirty:
            peer.flush()


class Peer:
    __slots__ = (
        "_bytes",
        "_closing",
        "_inflight_room",
        "_messages",
        "_pending",
        "_pending_bytes",
        "_queue",
        "_writer",
        "closed",
        "endpoint",
        "heard",
        "identity",
        "inflight",
        "ip",
        "keepalive_due",
        "limits",
        "metrics",
        "outbox",
        "pinged",
        "queued_bytes",
        "serial",
        "subscriptions",
        "ws",
    )

    def __init__(
        self,
        ws: ServerConnection,
        *,
        ip: str,
        endpoint: str,
        limits: Limits,
        metrics: RelayMetrics,
        outbox: Outbox,
        now: float,
    ) -> None:
        self.ws = ws
        self.serial = next(_SERIALS)  # names the connection to other relay processes
        self.ip = ip
        self.endpoint = endpoint
        self.limits = limits
        self.metrics = metrics
        self.identity: PublicIdentity | None = None
        self.subscriptions: set[str] = set()
        self.closed = False
        self.queued_bytes = 0
        self.inflight = 0  # updates received but not yet committed
        self.heard = now  # when a frame (or a pong) last came from the client
        self.keepalive_due = now  # when relay/keepalive.py next looks at this connection
        self.pinged = False
        self.outbox = outbox
        self._pending: list[bytes] = []  # frames to write at the end of this loop iteration
        self._pending_bytes = 0
        self._queue: deque[bytes] = deque()  # frames waiting for the kernel (slow path)
        self._writer: asyncio.Task[None] | None = None
        self._inflight_room: asyncio.Event | None = None
        self._closing: asyncio.Task[None] | None = None
        self._messages = TokenBucket.full(limits.messages_per_second, limits.message_burst, now=now)
        self._bytes = TokenBucket.full(limits.bytes_per_second, limits.byte_burst, now=now)

    def __repr__(self) -> str:
        who = self.identity.user_id if self.identity else "anonymous"
        return f"<Peer {self.endpoint} {self.ip} {who}>"

    # -- outgoing -------------------------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        """Send one message (binary for bytes, text for str)."""
        self.metrics.bytes_out.inc(len(data))
        self.send_frame(frame_for(data))

    def send_control(self, message: ControlMessage) -> None:
        self.send(encode(message))

    def send_frame(self, frame: bytes) -> None:
        """Send a websocket frame serialised by :func:`frame_for` (once, for every recipient of a
        broadcast: server frames are unmasked, so the bytes are the same for everyone). The
        caller counts the bytes in the metrics."""
        if self.closed:
            return
        ws = self.ws
        if (
            self._writer is None
            and ws.protocol.state is State.OPEN
            and ws.transport.get_write_buffer_size() + self._pending_bytes <= DIRECT_WRITE_BUFFER
        ):
            if not self._pending:
                self.outbox.add(self)
            self._pending.append(frame)
            self._pending_bytes += len(frame)
            return
        self.flush()  # what is pending goes first, in order
        if self.queued_bytes and self.queued_bytes + len(frame) > self.limits.send_queue_bytes:
            self.metrics.dropped_slow.inc()
            self.close(CloseCode.SLOW_CONSUMER, "too slow: the relay dropped this connection")
            return
        # (one frame is always accepted into an empty queue, however large: a big document's
        # sync step 2 must reach a client on a slow link)
        self._queue.append(frame)
        self.queued_bytes += len(frame)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def flush(self) -> None:
        """Write the frames gathered this loop iteration in one go (one syscall, not one each).
        Frames are whole, so they never interleave with the library's own (pings, close); once
        the connection is closing, they are dropped."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if self.ws.protocol.state is State.OPEN and not self.closed:
            self.ws.transport.write(data)

    async def _write(self) -> None:
        """The slow path: one frame at a time, waiting for the kernel to take each."""
        ws = self.ws
        try:
            while self._queue and not self.closed:
                frame = self._queue.popleft()
                self.queued_bytes -= len(frame)
                if ws.protocol.state is not State.OPEN:
                    break
                ws.transport.write(frame)
                await ws.drain()
        except (ConnectionClosed, ConnectionError):
            self._discard()
        finally:
            self._writer = None

    def _discard(self) -> None:
        self.closed = True
        self._queue.clear()
        self.queued_bytes = 0
        self._pending.clear()
        self._pending_bytes = 0

    def close(self, code: int, reason: str) -> None:
        """Close with a code and a reason the client can show; returns at once."""
        if self.closed:
            return
        self._discard()
        self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        """Send the close frame; a client that does not read it in time is cut off (a slow
        consumer never would, and must not hold its slot until the keepalive gives up)."""
        try:
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self.ws.close(code, reason[:120])
        except TimeoutError:
            self.ws.transport.abort()
        except (ConnectionClosed, OSError):
            pass

    async def finish(self) -> None:
        """Wait until the queue is written and a requested close has been sent: the handler must
        not return before, or the library would close with 1000 instead of our code."""
        pending = [task for task in (self._writer, self._closing) if task is not None]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- incoming -------------------------------------------------------------------------------

    def throttle(self, size: int, *, now: float, ip_bucket: TokenBucket) -> float:
        """Charge one message of ``size`` bytes; seconds to wait before reading the next one."""
        return max(
            self._messages.take(1, now=now),
            self._bytes.take(size, now=now),
            ip_bucket.take(1, now=now),
        )

    def reading_paused(self) -> bool:
        """The relay has stopped reading this connection (its updates wait for the disk): its
        silence says nothing about the client."""
        return self.inflight >= self.limits.max_inflight_updates

    async def wait_for_inflight_room(self) -> None:
        """Backpressure: stop reading while too many of our updates wait for the disk."""
        while self.reading_paused() and not self.closed:
            if self._inflight_room is None:
                self._inflight_room = asyncio.Event()
            self._inflight_room.clear()
            await self._inflight_room.wait()

    def update_committed(self) -> None:
        self.inflight -= 1
        if self._inflight_room is not None:
            self._inflight_room.set()
