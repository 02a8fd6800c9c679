"""Test kit for sync engines: a profile with a running engine, started and stopped together;
``focusmate daemon`` in its own process (:class:`DaemonProcess`: faketime, ``kill -9``,
restarts); polling with a deadline; and a room's state as plain data, to compare profiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from pycrdt import Map

from focusmate.clock import Clock, SystemClock
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.workspace import Workspace
from sync.backoff import Backoff
from sync.engine import SyncEngine
from sync.wire import Decoder
from tests.integration.relaykit import DEADLINE, REPO


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


Event = dict[str, Any]
T = TypeVar("T")


async def within(
    seconds: float, predicate: Callable[[], bool], what: str, *, interval: float = 0.05
) -> float:
    """Poll ``predicate`` (state with no event to await, e.g. another process's files) until it
    holds; the seconds it took. AssertionError after ``seconds``."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            while not predicate():
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds} s waiting for {what}") from None
    return time.monotonic() - started


class DaemonProcess:
    """``focusmate daemon`` on ``profile`` in its own process and session, which a test can
    ``kill -9``, stop and start again on the same profile.

    Its JSON lines go to ``<profile>.events`` (appended across restarts) and its stderr to
    ``<profile>.stderr``, so the daemon never blocks on a pipe nobody reads; the test reads the
    file as it grows. :meth:`expect` and :meth:`count` look at the current run (since the last
    :meth:`start`), :meth:`events` ``(all_runs=True)`` at every run. ``skew``: the whole process
    runs under faketime, its clock that far off. LAN is off unless ``lan``."""

    POLL_SECONDS = 0.02

    def __init__(
        self,
        profile: Path,
        *,
        relays: Sequence[str] = (),
        lan: bool = False,
        skew: float = 0.0,
        args: Sequence[str] = (),
    ) -> None:
        self.profile = profile
        self.relays = list(relays)
        self.lan = lan
        self.skew = skew
        self.args = list(args)
        self.log = profile.with_suffix(".events")
        self.stderr_log = profile.with_suffix(".stderr")
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0
        self._history: list[Event] = []
        self._run_start = 0  # index in _history of the current run's first event
        self._read_at = 0  # bytes of the log parsed so far

    @classmethod
    async def launch(cls, profile: Path, **options: Any) -> DaemonProcess:
        daemon = cls(profile, **options)
        await daemon.start()
        return daemon

    def command(self) -> list[str]:
        faketime = ["faketime", "-f", f"{self.skew:+.1f}s"] if self.skew else []
        relays = [arg for url in self.relays for arg in ("--relay", url)]
        lan = [] if self.lan else ["--no-lan"]
        daemon = ["-m", "ui.launcher", "--profile", str(self.profile), "daemon"]
        return [*faketime, sys.executable, *daemon, *relays, *lan, *self.args]

    async def start(self) -> None:
        """Start (or restart) the daemon; what the last run reported stays in the history."""
        assert not self.running, "the daemon is already running"
        self._read()
        if self._read_at < (self.log.stat().st_size if self.log.exists() else 0):
            with self.log.open("ab") as out:  # a line a kill cut short: end it (see _read)
                out.write(b"\n")
            self._read()
        self._run_start = len(self._history)
        with self.log.open("ab") as out, self.stderr_log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(),
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=err,
                start_new_session=True,  # signals go to the group: faketime does not forward
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """``kill -9``: no clean close, no flush, nothing the process meant to do next."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), DEADLINE)
        self.kills += 1

    async def stop(self, *, deadline: float = DEADLINE) -> int:
        """SIGTERM, and its exit code once it has stopped. Not stopped within ``deadline``: it
        is killed (so nothing is left running) and the test fails."""
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), deadline)
            except TimeoutError:
                await self.kill()
                raise AssertionError(f"no exit {deadline} s after SIGTERM; {self}") from None
        self._read()
        code = self.proc.returncode
        assert code is not None
        return code

    async def close(self) -> None:
        """Teardown: stop it if it runs, SIGKILL if SIGTERM is not enough; never raises."""
        if self.running:
            with contextlib.suppress(AssertionError):
                await self.stop(deadline=DEADLINE)

    def events(self, *, all_runs: bool = False) -> list[Event]:
        """What the current run (or every run) has reported so far."""
        self._read()
        return list(self._history if all_runs else self._history[self._run_start :])

    def count(self, event: str, **fields: Any) -> int:
        return sum(map(_matcher(event, fields), self.events()))

    async def expect(self, event: str, *, deadline: float = DEADLINE, **fields: Any) -> Event:
        """The first event of this run (seen before or arriving now) with this name and these
        fields."""
        match = _matcher(event, fields)
        return await self._poll(
            lambda: next((e for e in self.events() if match(e)), None),
            f"{event} {fields}",
            deadline,
        )

    async def expect_count(
        self, event: str, n: int, *, deadline: float = DEADLINE, **fields: Any
    ) -> None:
        """Until this run has reported ``event`` (with these fields) ``n`` times."""
        await self._poll(
            lambda: self.count(event, **fields) >= n or None, f"{n} x {event} {fields}", deadline
        )

    async def _poll(self, find: Callable[[], T | None], what: str, deadline: float) -> T:
        try:
            async with asyncio.timeout(deadline):
                while (found := find()) is None:
                    if not self.running:
                        if (found := find()) is not None:  # its last words
                            return found
                        raise AssertionError(f"the daemon exited before {what}; {self}")
                    await asyncio.sleep(self.POLL_SECONDS)
        except TimeoutError:
            raise AssertionError(f"no {what} within {deadline} s; {self}") from None
        return found

    def _read(self) -> None:
        """Parse the log's new complete lines (a line still being written waits)."""
        if not self.log.exists():
            return
        with self.log.open("rb") as log:
            log.seek(self._read_at)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._read_at += len(complete)
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):  # the rest of a line cut short by a kill
                self._history.append(json.loads(line))

    def __str__(self) -> str:
        code = "running" if self.running else f"exit {self.proc and self.proc.returncode}"
        err = (
            self.stderr_log.read_text(errors="replace")[-1500:] if self.stderr_log.exists() else ""
        )
        return (
            f"daemon {self.profile.name} ({code}); last events {self._history[-5:]}; stderr {err!r}"
        )


def _matcher(event: str, fields: dict[str, Any]) -> Callable[[Event], bool]:
    return lambda e: e.get("event") == event and all(e.get(k) == v for k, v in fields.items())


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
