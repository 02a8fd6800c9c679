"""A websocket proxy that misbehaves on purpose, driven by a seeded ``random.Random``.

It sits between a sync engine and a relay (or between two LAN peers), relays whole websocket
messages both ways, and injects what the real world does to them:

* **cut**: the connection dies abruptly (both TCP connections aborted, no close frame), and
  whatever was in flight is lost. This is what "drop" means here: TCP does not lose single
  messages from a live stream, connections die. A frame the proxy decides to drop is discarded
  together with every frame it was holding back, and the connection is cut, so the protocol must
  resync from the state vectors on reconnect. (A message silently missing from a stream that
  stays up is not modelled: y-sync, like TCP, assumes a reliable stream, and no real network
  produces it.)
* **duplicate**, **reorder** and **delay** of document frames (binary messages): a buggy or
  hostile middlebox. Yjs updates are idempotent and commutative, and so are the sync steps
  (step 1 asks, step 2 answers with a diff; either may arrive any number of times, in any order
  relative to updates). Control messages (text) are *not* reordered or duplicated: they carry
  the handshake and the subscriptions, which are ordered by design (a document frame must
  follow its ``subscribed``, a hello must answer its challenge), so a text message is a barrier:
  the frames held back before it go out first. Duplicating a control message would not test
  convergence but the peer's rejection of a protocol violation (``test_relay_limits.py``).

Counts of what was injected are kept by kind in :attr:`FaultProxy.counts` (with ``frames``, the
document frames that went through while faults were on, ``doc_bytes``, their bytes whether faults
were on or not, and ``connections``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake

_END = object()


@dataclass(frozen=True)
class FaultPlan:
    """Chances per document frame (binary message) of each fault, while faults are on."""

    duplicate: float = 0.05
    reorder: float = 0.10  # held back for a while, so later frames overtake it
    delay: float = 0.03  # the whole stream stalls for a moment (order kept)
    drop: float = 0.005  # discarded with everything held back, and the connection cut
    window: int = 4  # at most this many frames held back at once
    hold_seconds: tuple[float, float] = (0.002, 0.05)
    delay_seconds: tuple[float, float] = (0.005, 0.05)


class FaultProxy:
    """``ws://127.0.0.1:<port>`` forwarding to ``target`` (which may change, e.g. when the peer
    behind it restarts on a new port). ``faults`` switches injection on and off."""

    def __init__(
        self, target: str | None, *, rng: random.Random, plan: FaultPlan | None = None
    ) -> None:
        self.target = target
        self.rng = rng
        self.plan = plan or FaultPlan()
        self.faults = False
        self.counts: Counter[str] = Counter()
        self._server: Server | None = None
        self._pairs: set[tuple[ServerConnection, ClientConnection]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
        )

    async def stop(self) -> None:
        self.cut_all(count=False)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connections(self) -> int:
        return len(self._pairs)

    def cut_all(self, *, count: bool = True) -> int:
        """Abort every connection through the proxy (a cable pulled); how many there were."""
        pairs = list(self._pairs)
        for pair in pairs:
            _abort(*pair)
        if count:
            self.counts["cut"] += len(pairs)
        return len(pairs)

    # -- relaying -------------------------------------------------------------------------------

    async def _handle(self, downstream: ServerConnection) -> None:
        if self.target is None:
            await downstream.close(1013, "nothing behind the proxy")
            return
        path = downstream.request.path if downstream.request is not None else "/"
        try:
            upstream = await connect(
                self.target + path, compression=None, max_size=None, ping_interval=None
            )
        except (OSError, InvalidHandshake, TimeoutError):
            await downstream.close(1013, "the proxy's target is down")
            return
        pair = (downstream, upstream)
        self._pairs.add(pair)
        self.counts["connections"] += 1
        try:
            pumps = [
                asyncio.create_task(self._pump(downstream, upstream, pair)),
                asyncio.create_task(self._pump(upstream, downstream, pair)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pairs.discard(pair)
            _abort(*pair)

    async def _pump(
        self, src: Connection, dst: Connection, pair: tuple[ServerConnection, ClientConnection]
    ) -> None:
        """Carry ``src``'s messages to ``dst``, injecting faults; when ``src`` closes, close
        ``dst`` with the same code (a relay's 4400 reaches its client)."""
        inbox: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.create_task(_read(src, inbox))
        loop = asyncio.get_running_loop()
        held: list[tuple[float, bytes]] = []  # (release at, frame), oldest first
        try:
            while True:
                timeout = None if not held else max(0.0, min(at for at, _ in held) - loop.time())
                try:
                    item = await asyncio.wait_for(inbox.get(), timeout)
                except TimeoutError:
                    await self._release(dst, held, due=loop.time())
                    continue
                if item is _END:
                    await self._release(dst, held, due=None)
                    if src.close_code in (None, 1006):  # src died: so does dst
                        _abort(dst)
                    code = 1000 if src.close_code in (None, 1005, 1006) else src.close_code
                    with contextlib.suppress(ConnectionClosed):
                        await dst.close(code, src.close_reason or "")
                    return
                assert isinstance(item, str | bytes)
                if isinstance(item, bytes):
                    self.counts["doc_bytes"] += len(item)
                if isinstance(item, str) or not self.faults:
                    await self._release(dst, held, due=None)  # a barrier (see the module doc)
                    await dst.send(item)
                    continue
                if not await self._fault(item, dst, held, pair):
                    return
        except ConnectionClosed:
            return
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _fault(
        self,
        frame: bytes,
        dst: Connection,
        held: list[tuple[float, bytes]],
        pair: tuple[ServerConnection, ClientConnection],
    ) -> bool:
        """Forward one document frame with a fault drawn for it; False once the connection was
        cut."""
        self.counts["frames"] += 1
        plan, roll = self.plan, self.rng.random()
        now = asyncio.get_running_loop().time()
        drop, duplicate = plan.drop, plan.drop + plan.duplicate
        reorder = duplicate + plan.reorder
        if roll < drop:
            self.counts["drop"] += 1
            self.counts["lost_in_flight"] += len(held)
            self.counts["cut"] += 1
            held.clear()
            _abort(*pair)
            return False
        if roll < duplicate:
            self.counts["duplicate"] += 1
            await dst.send(frame)
            held.append((now + self.rng.uniform(*plan.hold_seconds), frame))  # and again, later
        elif roll < reorder:
            self.counts["reorder"] += 1
            held.append((now + self.rng.uniform(*plan.hold_seconds), frame))
        elif roll < reorder + plan.delay:
            self.counts["delay"] += 1
            await asyncio.sleep(self.rng.uniform(*plan.delay_seconds))  # injected latency
            await dst.send(frame)
        else:
            await dst.send(frame)
        held.sort(key=lambda entry: entry[0])
        while len(held) > plan.window:
            await dst.send(held.pop(0)[1])
        return True

    @staticmethod
    async def _release(
        dst: Connection, held: list[tuple[float, bytes]], *, due: float | None
    ) -> None:
        """Send the held frames whose time has come (all of them when ``due`` is None)."""
        while held and (due is None or held[0][0] <= due):
            await dst.send(held.pop(0)[1])


async def _read(src: Connection, inbox: asyncio.Queue[object]) -> None:
    try:
        async for message in src:
            inbox.put_nowait(message)
    except ConnectionClosed:
        pass
    finally:
        inbox.put_nowait(_END)


def _abort(*connections: Connection) -> None:
    for connection in connections:
        connection.transport.abort()
