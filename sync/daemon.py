"""``focusmate daemon``: the sync engine with no window, reporting one JSON line per event.

An always-on peer, or FocusMate for terminal users: it keeps every room of the profile in sync
over the relays given (``--relay``, default the ``relay_urls`` setting) and with the peers it
finds on the LAN (unless ``--no-lan``), and prints events as
they happen — links up and down, documents synced, posts and comments received, and timer
phase changes with the local wall-clock instant they happened at, and who is present in each
room (it announces itself as focusing, on a break or idle, as the room's timer runs). SIGTERM or
SIGINT stops it. CLI commands keep working on the same profile while it runs; their edits go out
within a poll, and timer commands count on the room's timebase it measured
(:mod:`focusmate.timebase`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from focusmate.cli.commands import Context
from focusmate.room import Room
from focusmate.settings import parse_setting
from focusmate.timer import Phase, Status, TimerView
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from sync.presence import status_for
from sync.relay_link import Event

TICK_SECONDS = 0.1


@dataclass
class RoomWatch:
    """What the daemon last reported for one room, to report only what changed."""

    posts: set[str] = field(default_factory=set)
    comments: set[str] = field(default_factory=set)
    phase: tuple[Phase, Status, int] | None = None


class BoardAndTimerReporter:
    """Turns document changes and the passage of time into events."""

    def __init__(
        self,
        workspace: Workspace,
        emit: Callable[[Event], None],
        now_for: Callable[[str], float] | None = None,
        on_timer: Callable[[Room, TimerView], None] | None = None,
    ) -> None:
        self.workspace = workspace
        self.emit = emit
        self.now_for = now_for  # the room's timebase (sync.engine), else our clock
        self.on_timer = on_timer  # every check, with each room's timer as it reads now
        self.rooms: dict[str, RoomWatch] = {}

    def check(self, *, boards: bool, announce: bool = True) -> None:
        """Timers every tick (cheap); boards only after a document changed (each read checks
        every signature)."""
        for room in self.workspace.rooms():
            if room.exists and not room.deleted:
                watch = self.rooms.setdefault(room.room_id, RoomWatch())
                if boards:
                    self._check_board(room, watch, announce=announce)
                self._check_timer(room, watch, announce=announce)

    def _check_board(self, room: Room, watch: RoomWatch, *, announce: bool) -> None:
        for post in self.workspace.board(room).posts():
            if post.post_id not in watch.posts:
                watch.posts.add(post.post_id)
                if announce and post.author != self.workspace.user_id:
                    self.emit(_post_event(room, post.post_id, post.author_name, post.body))
            for comment in post.comments:
                if comment.comment_id not in watch.comments:
                    watch.comments.add(comment.comment_id)
                    if announce and comment.author != self.workspace.user_id:
                        self.emit(
                            {
                                "event": "comment_received",
                                "room_id": room.room_id,
                                "post_id": post.post_id,
                                "comment_id": comment.comment_id,
                                "author": comment.author_name,
                                "body": comment.body,
                                "verified": comment.verified,
                            }
                        )

    def _check_timer(self, room: Room, watch: RoomWatch, *, announce: bool) -> None:
        now = self.now_for(room.room_id) if self.now_for else self.workspace.now()
        view = room.timer_view(now=now)
        phase = (view.phase, view.status, view.round)
        if phase != watch.phase:
            if announce:  # (a room that arrives after the start is news, with its phase)
                self.emit(
                    {
                        "event": "timer_phase",
                        "room_id": room.room_id,
                        "phase": view.phase.value,
                        "status": view.status.value,
                        "round": view.round,
                        "remaining_s": round(view.remaining_s, 3),
                        "ends_at": view.ends_at,  # on the room's timebase
                        "at": self.workspace.now(),  # this machine's clock
                    }
                )
            watch.phase = phase
        if self.on_timer is not None:
            self.on_timer(room, view)


class PresenceKeeper:
    """Tells each room what we are doing — focusing, on a break or idle, as its timer says, and
    on which task (``focusmate timer start --task``) — and records our finished focus sessions
    in the stats, as the app does."""

    def __init__(self, workspace: Workspace, engine: SyncEngine) -> None:
        self.workspace = workspace
        self.engine = engine
        self.announced: dict[str, tuple[str, str]] = {}
        self.phases: dict[str, tuple[Phase, Status, int]] = {}

    def __call__(self, room: Room, view: TimerView) -> None:
        phase = (view.phase, view.status, view.round)
        if self.phases.get(room.room_id) != phase:
            self.phases[room.room_id] = phase
            self.workspace.record_focus(room)
        state = (status_for(view), self.workspace.current_task(room))
        if self.announced.get(room.room_id) != state:
            self.announced[room.room_id] = state
            self.engine.set_presence(room.room_id, status=state[0], task=state[1] or None)


def _post_event(room: Room, post_id: str, author: str, body: str) -> Event:
    return {
        "event": "post_received",
        "room_id": room.room_id,
        "post_id": post_id,
        "author": author,
        "body": body,
    }


class DaemonExtension:
    """The ``daemon`` subcommand, for ``focusmate.cli.main(extensions=...)``."""

    def __init__(self) -> None:
        self.commands = {"daemon": self.run}

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = sub.add_parser("daemon", help="keep your rooms in sync, headless; JSON lines out")
        p.add_argument(
            "--relay",
            action="append",
            metavar="URL",
            help="a relay to sync through (repeatable; default: the relay_urls setting)",
        )
        p.add_argument(
            "--no-lan",
            action="store_true",
            help="no LAN discovery or LAN peers (as the setting lan_enabled=off)",
        )

    def run(self, ctx: Context) -> int:
        relays = ctx.ws.settings.relay_urls
        if ctx.args.relay:
            _, parsed = parse_setting("relay_urls", ",".join(ctx.args.relay))
            relays = cast(tuple[str, ...], parsed)

        def emit(event: Event) -> None:
            ctx.out.write(json.dumps({"at": ctx.ws.now(), **event}, ensure_ascii=False) + "\n")
            ctx.out.flush()

        lan = ctx.ws.settings.lan_enabled and not ctx.args.no_lan
        asyncio.run(_serve(ctx.ws, relays=relays, lan=lan, emit=emit))
        return 0


async def _serve(
    workspace: Workspace, *, relays: tuple[str, ...], lan: bool, emit: Callable[[Event], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reporter = BoardAndTimerReporter(workspace, emit)
    reporter.check(boards=True, announce=False)  # what is already there is not news
    changed = asyncio.Event()
    engine = SyncEngine(
        workspace,
        relays=relays,
        events=emit,
        on_change=lambda doc_id, origin: changed.set(),
        lan=lan,
    )
    reporter.now_for = engine.now_for
    reporter.on_timer = PresenceKeeper(workspace, engine)
    await engine.start()
    emit(
        {
            "event": "daemon_started",
            "user_id": workspace.user_id,
            "relays": list(relays),
            "lan_port": engine.lan.port if engine.lan is not None else None,
        }
    )
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), TICK_SECONDS)
            except TimeoutError:
                boards = changed.is_set()
                changed.clear()
                reporter.check(boards=boards)
    finally:
        await engine.stop()
        emit({"event": "daemon_stopped"})
