"""The desktop app's composition root: one profile, one Qt application, one asyncio loop.

``focusmate`` with no subcommand (or ``focusmate app``) lands here through the launcher. This
module builds everything — the session (workspace + sync engine), the view-models, the window,
the tray or banner, the chimes — and passes each its dependencies; nothing below reaches for a
global. Qt and asyncio share one loop through qasync, so engine tasks, websockets and widgets
all run on the main thread and nothing needs a lock.

Start-up is ordered for a quick first paint: the window shows what the first screen needs (the
rest is built when first visited, see :mod:`ui.widgets.main_window`), and the sync engine starts
right after the window's first paint.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit, QMessageBox

from focusmate.clock import Clock, SystemClock, local_zone
from focusmate.keyfile import PASSPHRASE_ENV, PassphraseRequiredError, WrongPassphraseError
from focusmate.workspace import Workspace
from sync.engine_lock import AlreadyRunningError, EngineLock
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
ASSETS = Path(__file__).parent / "assets"
GC_PAUSE_MS = 5000  # the longest the cyclic garbage collector waits for the first paint
SYNC_AFTER_PAINT_MS = 2000  # the longest syncing waits for the window's first paint


def app_icon() -> QIcon:
    """The SVG icon, or its PNG rendering where Qt's SVG plugin is missing."""
    icon = QIcon(str(ASSETS / "focusmate.svg"))
    if icon.pixmap(64).isNull():  # no SVG image plugin here: use the PNG
        icon = QIcon(str(ASSETS / "focusmate.png"))
    return icon


def open_workspace(
    profile_dir: Path,
    *,
    ask: Callable[[str], str | None] | None = None,
    clock: Clock | None = None,
) -> Workspace | None:
    """The profile, asking for its key's passphrase when it is sealed (the terminal would
    prompt; a desktop user gets a dialog); None when the user cancels. ``$FOCUSMATE_PASSPHRASE``
    is tried first, as the CLI does."""
    ask = ask or _ask_passphrase
    passphrase = os.environ.get(PASSPHRASE_ENV)
    prompt = f"FocusMate's key in {profile_dir} is sealed. Passphrase:"
    while True:
        try:
            return Workspace(profile_dir, clock=clock or SystemClock(), passphrase=passphrase)
        except PassphraseRequiredError:
            pass
        except WrongPassphraseError:
            prompt = "That passphrase does not open the key. Try again:"
        passphrase = ask(prompt)
        if passphrase is None:
            return None


def _ask_passphrase(prompt: str) -> str | None:
    """Before the event loop runs: a modal dialog is safe here."""
    text, ok = QInputDialog.getText(None, APP_NAME, prompt, QLineEdit.EchoMode.Password)
    return text if ok else None


def run_app(
    profile_dir: Path,
    *,
    relays: tuple[str, ...] | None,
    lan: bool | None,
    snapshot: Path | None = None,
) -> int:
    """Open the window on the profile and run until the user quits; the exit code.
    ``snapshot``: instead, save a PNG of the window there once it is up and quit (the desktop
    bundle's smoke test sees the real window this way, with no display).

    Once the profile is open, Python's cyclic garbage collector rests while the window is built
    (reading a large profile allocates a lot, which would make it scan everything, nearly all of
    it alive, more than once) and resumes at the first paint, or after :data:`GC_PAUSE_MS` at
    the latest."""
    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv[:1]))
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("focusmate")
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # the window decides: to the tray, or quit
    workspace = open_workspace(profile_dir)
    if workspace is None:
        return 1
    collecting = gc.isenabled()
    gc.disable()
    try:
        with workspace:
            return _run(
                app, workspace, relays=relays, lan=lan, snapshot=snapshot, resume_gc=collecting
            )
    finally:
        if collecting:
            gc.enable()


def _run(
    app: QApplication,
    workspace: Workspace,
    *,
    relays: tuple[str, ...] | None,
    lan: bool | None,
    snapshot: Path | None,
    resume_gc: bool = False,
) -> int:
    apply_theme(app, workspace.settings.theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(workspace, relays=relays, lan=lan)
    refused: list[str] = []

    async def main() -> int:
        # The window comes first, the sync engine (its relays, the LAN, the watcher's look at
        # what changed while the app was closed) right after its first paint; but no window
        # opens on a profile that another FocusMate is syncing.
        try:
            _check_not_running(workspace)
        except AlreadyRunningError as err:
            refused.append(str(err))  # said once the loop is done: a dialog here would nest it
            return 1
        window = build_window(session, tz=local_zone(), cache_dir=workspace.profile_dir / "cache")
        if resume_gc:  # paused by run_app while the window opens
            window.firstPainted.connect(gc.enable)
            QTimer.singleShot(GC_PAUSE_MS, window, gc.enable)
        painted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_screen() -> None:
            if not painted.done():
                painted.set_result(None)

        window.firstPainted.connect(on_screen)
        QTimer.singleShot(SYNC_AFTER_PAINT_MS, window, on_screen)  # should no paint come
        closed = asyncio.Event()
        window.quitRequested.connect(closed.set)
        window.show()
        try:
            await painted
            try:
                await session.start()
            except AlreadyRunningError as err:  # another FocusMate started meanwhile
                refused.append(str(err))
                return 1
            if snapshot is not None:
                return await save_snapshot(session, window, snapshot)
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


def _check_not_running(workspace: Workspace) -> None:
    """AlreadyRunningError if another process syncs this profile (the engine takes the lock for
    good when it starts)."""
    lock = EngineLock(workspace.profile_dir)
    lock.acquire()
    lock.release()


async def save_snapshot(session: Session, window: MainWindow, path: Path, ticks: int = 2) -> int:
    """Save ``window`` as a PNG at ``path`` once ``ticks`` session ticks ran (the countdowns and
    the room list have been drawn from live state by then); the exit code."""
    ran = asyncio.Event()
    count = 0

    def counted() -> None:
        nonlocal count
        count += 1
        if count >= ticks:
            ran.set()

    session.ticked.connect(counted)
    try:
        await ran.wait()
    finally:
        session.ticked.disconnect(counted)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = window.grab().save(str(path), "PNG")
    except OSError:
        saved = False
    if not saved:
        print(f"focusmate: could not write the snapshot to {path}", file=sys.stderr)
        return 1
    return 0


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
        tray_icon=app_icon() if has_tray else None,
    )
    return MainWindow(models)
