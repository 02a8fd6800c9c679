"""Test kit for sync engines: a profile with a running engine, started and stopped together."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from focusmate.clock import Clock, SystemClock
from focusmate.workspace import Workspace
from sync.backoff import Backoff
from sync.engine import SyncEngine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SkewedClock:
    """This machine's clock, off by ``skew`` seconds (as a badly set computer's would be); a
    test may move ``skew`` to make time pass at once."""

    def __init__(self, skew: float = 0.0) -> None:
        self.skew = skew

    def now(self) -> float:
        return time.time() + self.skew


class EnginePeer:
    """A profile and its engine (relays given; LAN on loopback without discovery when ``lan``);
    ``events`` collects what the engine reported."""

    def __init__(
        self,
        profile: Path,
        *,
        relays: Sequence[str] = (),
        lan: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.profile = profile
        self.workspace = Workspace(profile, clock=clock or SystemClock())
        self.events: list[dict[str, Any]] = []
        self.engine = SyncEngine(
            self.workspace,
            relays=list(relays),
            events=self.events.append,
            poll_seconds=0.05,
            backoff=lambda: Backoff(base=0.05, cap=0.5),
            lan=lan,
            lan_host="127.0.0.1",
            discover=False,
        )

    @property
    def port(self) -> int:
        assert self.engine.lan is not None
        return self.engine.lan.port

    def posts(self, room_id: str) -> list[str]:
        """The room's post bodies as this profile has them now, sorted."""
        self.workspace.refresh()
        room = next(r for r in self.workspace.rooms() if r.room_id == room_id)
        return sorted(post.body for post in self.workspace.board(room).posts())

    def room_name(self, room_id: str) -> str | None:
        """The room's name once its document has arrived, else None."""
        rooms = [r for r in self.workspace.rooms() if r.room_id == room_id]
        return rooms[0].name if rooms and rooms[0].exists else None


@asynccontextmanager
async def running(*peers: EnginePeer) -> AsyncIterator[None]:
    for peer in peers:
        await peer.engine.start()
    try:
        yield
    finally:
        for peer in peers:
            await peer.engine.stop()


@asynccontextmanager
async def peers(tmp_path: Path, count: int, **options: Any) -> AsyncIterator[list[EnginePeer]]:
    """``count`` fresh profiles under ``tmp_path``, their engines running."""
    made = [EnginePeer(tmp_path / f"peer{i}", **options) for i in range(count)]
    async with running(*made):
        yield made


def connect(a: EnginePeer, b: EnginePeer) -> None:
    """What LAN discovery does: the peer with the smaller user id dials."""
    dialer, listener = (a, b) if a.workspace.user_id < b.workspace.user_id else (b, a)
    dialer.engine.dial(listener.workspace.user_id, "127.0.0.1", listener.port)
