"""``make screenshots``: a PNG of each main view, from a demo profile, offscreen.

``python -m ui.screenshots DIR [--scale 2] [--theme light|dark]`` seeds a lived-in profile
(:mod:`focusmate.demo`) in a temporary directory, opens the real window on it with no network,
and saves first-run, room, messages, stats and settings views. The README and docs show them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":  # before Qt loads: no display needed, and the scale factor
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from focusmate.clock import SystemClock, local_zone
from focusmate.demo import seed_demo
from focusmate.settings import Theme
from focusmate.workspace import Workspace
from ui.app import build_window
from ui.session import Session
from ui.theme import apply_theme
from ui.widgets.main_window import MainWindow
from ui.widgets.settings_dialog import SettingsDialog
from ui.widgets.sidebar import MESSAGES, STATS


async def _settle(seconds: float = 0.3) -> None:
    """Let layouts, the first ticks and paint events run before a grab."""
    await asyncio.sleep(seconds)


async def capture(out: Path, work: Path) -> list[Path]:
    """Seed a demo profile under ``work`` and save each view's PNG in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    demo = seed_demo(work / "demo", now=time.time())
    workspace = Workspace(demo.profile, clock=SystemClock())
    session = Session(workspace, relays=(), lan=False)
    await session.start()
    saved: list[Path] = []

    def save(widget: QWidget, name: str) -> None:
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        saved.append(path)

    try:
        window = build_window(session, tz=local_zone(), cache_dir=work / "cache", tray=False)
        window.resize(1200, 760)
        window.show()
        steps: list[tuple[str, Callable[[MainWindow], None]]] = [
            ("room", lambda w: w.show_room(demo.room_ids[0])),
            ("messages", _open_messages),
            ("stats", lambda w: w.show_page(STATS)),
        ]
        for name, show in steps:
            show(window)
            await _settle()
            save(window, name)
        dialog = SettingsDialog(window.models.settings, window)
        dialog.show()
        await _settle()
        save(dialog, "settings")
        dialog.done(QDialog.DialogCode.Rejected)
        await _first_run(work, save)
        window.close()
    finally:
        await session.stop()
        workspace.close()
    return saved


def _open_messages(window: MainWindow) -> None:
    window.show_page(MESSAGES)
    conversations = window.models.messages.conversations
    if conversations:
        window.models.messages.open(conversations[0].peer_id)


async def _first_run(work: Path, save: Callable[[QWidget, str], None]) -> None:
    fresh = Workspace(work / "fresh", clock=SystemClock())
    session = Session(fresh, relays=(), lan=False)
    try:
        window = build_window(session, tz=local_zone(), cache_dir=work / "cache", tray=False)
        window.resize(900, 600)
        window.show()
        await _settle()
        save(window, "first-run")
        window.close()
    finally:
        fresh.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.screenshots")
    parser.add_argument("out", type=Path, help="directory for the PNG files")
    parser.add_argument("--theme", choices=[t.value for t in Theme], default="light")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio (2: HiDPI)")
    args = parser.parse_args(argv)
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # closing a captured window must not stop the loop
    apply_theme(app, Theme(args.theme))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as work, loop:
        saved = loop.run_until_complete(capture(args.out, Path(work)))
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
