"""One client connection: a bounded outgoing queue, incoming rate limits, and who it is.

Sending never blocks the sender: :meth:`Peer.send` writes the frame straight to the socket when
the kernel keeps up, and otherwise appends it to a queue that a writer task (started only while
there is something queued, so idle connections cost no task) drains with flow control. A client
that stops reading fills its queue; past ``send_queue_bytes`` it is dropped with 4409 and its
queue freed, so a slow consumer costs bounded memory and never slows the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from focusmate.identity import PublicIdentity
from relay.config import Limits
from relay.ratelimit import TokenBucket
from sync.control import CloseCode, ControlMessage, encode

if TYPE_CHECKING:
    from relay.metrics import RelayMetrics

# Up to this many bytes may wait in the transport before frames go through the queue instead.
DIRECT_WRITE_BUFFER = 64 * 1024
CLOSE_GRACE_SECONDS = 1.0


class Peer:
    __slots__ = (
        "_bytes",
        "_closing",
        "_inflight_room",
        "_messages",
        "_queue",
        "_writer",
        "closed",
        "endpoint",
        "identity",
        "inflight",
        "ip",
        "limits",
        "metrics",
        "queued_bytes",
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
        now: float,
    ) -> None:
        self.ws = ws
        self.ip = ip
        self.endpoint = endpoint
        self.limits = limits
        self.metrics = metrics
        self.identity: PublicIdentity | None = None
        self.subscriptions: set[str] = set()
        self.closed = False
        self.queued_bytes = 0
        self.inflight = 0  # updates received but not yet committed
        self._queue: deque[bytes | str] = deque()
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
        if self.closed:
            return
        size = len(data)
        if self._writer is None and self._write_now(data):
            self.metrics.bytes_out.inc(size)
            return
        if self.queued_bytes and self.queued_bytes + size > self.limits.send_queue_bytes:
            self.metrics.dropped_slow.inc()
            self.close(CloseCode.SLOW_CONSUMER, "too slow: the relay dropped this connection")
            return
        # (one frame is always accepted into an empty queue, however large: a big document's
        # sync step 2 must reach a client on a slow link)
        self._queue.append(data)
        self.queued_bytes += size
        self.metrics.bytes_out.inc(size)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def _write_now(self, data: bytes | str) -> bool:
        """The fast path: hand the frame to the socket at once when nothing is queued and the
        kernel is keeping up. Frames are written whole, so this never interleaves with the
        library's own writes (pings, close)."""
        ws = self.ws
        if ws.protocol.state is not State.OPEN:
            return False
        if ws.transport.get_write_buffer_size() > DIRECT_WRITE_BUFFER:
            return False
        if isinstance(data, str):
            ws.protocol.send_text(data.encode())
        else:
            ws.protocol.send_binary(data)
        ws.send_data()
        return True

    def send_control(self, message: ControlMessage) -> None:
        self.send(encode(message))

    async def _write(self) -> None:
        try:
            while self._queue and not self.closed:
                data = self._queue.popleft()
                self.queued_bytes -= len(data)
                await self.ws.send(data)
        except ConnectionClosed:
            self._discard()
        finally:
            self._writer = None

    def _discard(self) -> None:
        self.closed = True
        self._queue.clear()
        self.queued_bytes = 0

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

    async def wait_for_inflight_room(self) -> None:
        """Backpressure: stop reading while too many of our updates wait for the disk."""
        while self.inflight >= self.limits.max_inflight_updates and not self.closed:
            if self._inflight_room is None:
                self._inflight_room = asyncio.Event()
            self._inflight_room.clear()
            await self._inflight_room.wait()

    def update_committed(self) -> None:
        self.inflight -= 1
        if self._inflight_room is not None:
            self._inflight_room.set()
