"""Test kit for sync engines: a profile with a running engine, started and stopped together;
the same engine in its own process (``focusmate daemon``) for ``kill -9``; and a room's state
as plain data, to compare profiles."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pycrdt import Map

from focusmate.clock import Clock, SystemClock
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.workspace import Workspace
from sync.backoff import Backoff
from sync.engine import SyncEngine
from sync.wire import Decoder


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


def connect(a: EnginePeer, b: EnginePeer, *, port: int | None = None) -> None:
    """What LAN discovery does: the peer with the smaller user id dials (the listener's port,
    or ``port``: a proxy in front of it)."""
    dialer, listener = (a, b) if a.workspace.user_id < b.workspace.user_id else (b, a)
    dialer.engine.dial(listener.workspace.user_id, "127.0.0.1", port or listener.port)


class DaemonPeer:
    """A profile synced by ``focusmate daemon`` in its own process (relays only), which a test
    can ``kill -9`` and start again. Its JSON lines go to ``<profile>.events`` (appended across
    restarts), so a test never blocks on an unread pipe. Edits go through :attr:`workspace`, a
    second process on the profile as far as the daemon can tell (like a CLI command)."""

    def __init__(self, profile: Path, *, relays: Sequence[str]) -> None:
        self.profile = profile
        self.relays = list(relays)
        self.workspace = Workspace(profile, clock=SystemClock())
        self.log = profile.with_suffix(".events")
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        relays = [arg for url in self.relays for arg in ("--relay", url)]
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "ui.launcher", "--profile", str(self.profile), "daemon", *relays),
                "--no-lan",
                cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """``kill -9``: no clean close, no flush, nothing the process meant to do next."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    def events(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def room_state(workspace: Workspace, room_id: str) -> dict[str, Any]:
    """The room document as this profile has it on disk now, as plain data: every non-empty
    top-level map, and the state vector as {client id: clock}. Two profiles holding the same
    state give equal values."""
    workspace.refresh()
    doc = workspace.document(room_id, kind=ROOM_KIND).doc
    maps = {name: doc.get(name, type=Map).to_py() for name in sorted(doc.keys())}
    return {
        "maps": {name: value for name, value in maps.items() if value},
        "state_vector": decode_state_vector(doc.get_state()),
    }


def decode_state_vector(state: bytes) -> dict[int, int]:
    decoder = Decoder(state)
    return {
        decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())
    }
