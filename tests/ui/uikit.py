"""Helpers for Qt tests: a qasync loop per test, polling with a deadline, and sessions.

UI scenarios are coroutines run with :func:`run` on the test's qasync loop, the same kind of
loop the app runs on, so engine tasks, websockets and Qt events all make progress while a test
awaits :func:`until`. Nothing waits by sleeping for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from focusmate.clock import Clock, FakeClock
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.workspace import Workspace
from ui.session import Session

DEADLINE = 10.0
T = TypeVar("T")


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """A qasync event loop over the test's QApplication, closed after the test."""
    qapp.setQuitOnLastWindowClosed(False)  # closing a test's window must not stop the loop
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def restored_look(qapp: QApplication) -> Iterator[QApplication]:
    """Put the shared application's style, palette and style sheet back after the test."""
    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    yield qapp
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.setStyleSheet(sheet)
    qapp.styleHints().unsetColorScheme()


def run(loop: asyncio.AbstractEventLoop, scenario: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on the Qt loop; fail (rather than hang) after a generous deadline."""
    return loop.run_until_complete(asyncio.wait_for(scenario, timeout=120))


async def until(predicate: Callable[[], object], what: str, *, timeout: float = DEADLINE) -> None:
    """Poll ``predicate`` (Qt and asyncio both run meanwhile) until it holds or time is up."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def workspace(path: Path, *, clock: Clock | None = None, name: str | None = None) -> Workspace:
    """A fresh profile at ``path`` (on a FakeClock unless told otherwise), optionally named."""
    ws = Workspace(path, clock=clock or FakeClock())
    if name is not None:
        ws.profile_document().update(ws.identity, now=ws.now(), display_name=name)
    return ws


def session(
    ws: Workspace,
    *,
    relays: tuple[str, ...] = (),
    lan: bool = False,
    monotonic: Callable[[], float] | None = None,
) -> Session:
    """A session on ``ws`` syncing only through ``relays`` (none: offline), fast-polling;
    ``monotonic``: its steady clock (the injected wall clock's, if that is a FakeClock)."""
    from sync.backoff import Backoff

    if monotonic is None:
        monotonic = ws.clock.now if isinstance(ws.clock, FakeClock) else time.monotonic
    return Session(
        ws,
        relays=relays,
        lan=lan,
        monotonic=monotonic,
        engine_options={
            "poll_seconds": 0.05,
            "backoff": lambda: Backoff(base=0.05, cap=0.5),
            "lan_host": "127.0.0.1",
            "discover": False,
        },
    )


class RoomPair:
    """Alice (the app under test) and Bob (another member, editing through the core) in one
    room, offline: each side's edits reach the other only when copied, as a sync link would."""

    def __init__(self, tmp_path: Path, name: str = "Board room") -> None:
        self.clock = FakeClock()
        self.alice = workspace(tmp_path / "alice", clock=self.clock, name="Alice")
        self.bob = workspace(tmp_path / "bob", clock=self.clock, name="Bob")
        self.room, invite = self.alice.create_room(name)
        self.bob_room = self.bob.join_room(invite.code)
        self.to_bob()
        self.to_alice()

    @property
    def room_id(self) -> str:
        return self.room.room_id

    def _deliver(self, source: Workspace, target: Workspace) -> None:
        src = source.document(self.room_id, kind=ROOM_KIND)
        dst = target.document(self.room_id, kind=ROOM_KIND)
        dst.apply_remote(src.encode_update(dst.state_vector()), origin="peer", now=self.clock.now())

    def to_alice(self) -> None:
        self._deliver(self.bob, self.alice)

    def to_bob(self) -> None:
        self._deliver(self.alice, self.bob)

    def bob_posts(self, text: str) -> str:
        post_id = self.bob.board(self.bob_room).post(text, now=self.clock.now())
        self.to_alice()
        return post_id


@contextlib.asynccontextmanager
async def running(s: Session) -> AsyncIterator[Session]:
    """The session started (engine, watcher, ticks) for the block, and stopped after it."""
    await s.start()
    try:
        yield s
    finally:
        await s.stop()
