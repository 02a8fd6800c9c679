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
from typing import cast

from focusmate.cli.commands import Context
from focusmate.settings import parse_setting
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from sync.relay_link import Event
from sync.watch import BoardAndTimerReporter, PresenceKeeper

TICK_SECONDS = 0.1


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
    reporter.check(None, announce=False)  # what is already there is not news
    changed: set[str] = set()
    engine = SyncEngine(
        workspace,
        relays=relays,
        events=emit,
        on_change=lambda doc_id, origin: changed.add(doc_id),
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
                reporter.check(set(changed))
                changed.clear()
    finally:
        await engine.stop()
        emit({"event": "daemon_stopped"})
