"""The desktop app's composition root: one profile, one Qt application, one asyncio loop.

``focusmate`` with no subcommand (or ``focusmate app``) lands here through the launcher. This
module builds everything — the session (workspace + sync engine), the view-models, the window,
the tray or banner, the chimes — and passes each its dependencies; nothing below reaches for a
global. Qt and asyncio share one loop through qasync, so engine tasks, websockets and widgets
all run on the main thread and nothing needs a lock.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import qasync
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from focusmate.clock import local_zone
from focusmate.workspace import Workspace
from sync.engine_lock import AlreadyRunningError
from ui.session import Session
from ui.sound import ChimePlayer
from ui.theme import apply_theme
from ui.viewmodels.app import AppViewModel
from ui.viewmodels.board import BoardViewModel
from ui.viewmodels.messages import MessagesViewModel
from ui.viewmodels.notices import NoticeCenter
from ui.viewmodels.room import RoomViewModel
from ui.viewmodels.settings import SettingsViewModel
from ui.viewmodels.stats import StatsViewModel
from ui.widgets.main_window import MainWindow, Models
from ui.widgets.tray import tray_available

APP_NAME = "FocusMate"
ICON = Path(__file__).parent / "assets" / "focusmate.svg"


def run_app(workspace: Workspace, *, relays: tuple[str, ...] | None, lan: bool | None) -> int:
    """Open the window on ``workspace`` and run until the user quits; the exit code."""
    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv[:1]))
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("focusmate")
    app.setWindowIcon(QIcon(str(ICON)))
    app.setQuitOnLastWindowClosed(False)  # the window decides: to the tray, or quit
    apply_theme(app, workspace.settings.theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(workspace, relays=relays, lan=lan)
    refused: list[str] = []

    async def main() -> int:
        try:
            await session.start()
        except AlreadyRunningError as err:
            refused.append(str(err))  # said once the loop is done: a dialog here would nest it
            await session.stop()
            return 1
        window = build_window(session, tz=local_zone(), cache_dir=workspace.profile_dir / "cache")
        closed = asyncio.Event()
        window.quitRequested.connect(closed.set)
        window.show()
        try:
            await closed.wait()
        finally:
            window.hide()
            await session.stop()
        return 0

    with loop:
        code = int(loop.run_until_complete(main()))
    for message in refused:
        QMessageBox.warning(None, APP_NAME, message)
    return code


def build_window(
    session: Session, *, tz: ZoneInfo, cache_dir: Path, tray: bool | None = None
) -> MainWindow:
    """The window and every view-model behind it, for ``session`` (tests and screenshots use
    this too). ``tray``: None asks the desktop whether it has a system tray."""
    has_tray = tray_available() if tray is None else tray
    models = Models(
        app=AppViewModel(session),
        messages=MessagesViewModel(session),
        stats=StatsViewModel(session, tz),
        settings=SettingsViewModel(session),
        notices=NoticeCenter(session, system_available=has_tray, tz=tz),
        room=lambda room_id: (RoomViewModel(session, room_id), BoardViewModel(session, room_id)),
        chimes=ChimePlayer(cache_dir),
        tray_icon=QIcon(str(ICON)) if has_tray else None,
    )
    return MainWindow(models)
