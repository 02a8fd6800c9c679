"""The main window: first run, then the sidebar beside the room, messages or stats page.

Menus carry every common action with its shortcut (Space starts, pauses or resumes the open
room's timer), so the keyboard reaches all of it and the shortcuts are discoverable. The window
title shows the remaining time. Notices arrive as a banner at the top of the window, through
the tray when there is one, and as a chime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeyEvent, QKeySequence, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from focusmate import __version__
from ui.sound import ChimePlayer
from ui.theme import apply_theme
from ui.viewmodels.app import AppViewModel
from ui.viewmodels.board import BoardViewModel
from ui.viewmodels.messages import MessagesViewModel
from ui.viewmodels.notices import NoticeCenter
from ui.viewmodels.room import RoomViewModel
from ui.viewmodels.settings import SettingsViewModel
from ui.viewmodels.stats import StatsViewModel
from ui.widgets.banner import Banner
from ui.widgets.board_view import BoardView
from ui.widgets.first_run import FirstRunPage
from ui.widgets.room_page import RoomPage
from ui.widgets.sidebar import MESSAGES, STATS, Sidebar

if TYPE_CHECKING:
    from ui.widgets.messages_page import MessagesPage
    from ui.widgets.stats_page import StatsPage
    from ui.widgets.tray import Tray

# The window opens on a room: the Messages and Stats pages, the dialogs and the tray are
# imported and built when first needed (a page on its first visit), not before the first paint.
CHIMES_AFTER_MS = 3000  # the chimes load this long after the first paint (or when first played)


@dataclass
class Models:
    """Everything the window shows, built by the composition root (ui/app.py)."""

    app: AppViewModel
    messages: MessagesViewModel
    stats: StatsViewModel
    settings: SettingsViewModel
    notices: NoticeCenter
    room: Callable[[str], tuple[RoomViewModel, BoardViewModel]]  # view-models for one room
    chimes: ChimePlayer | None = None
    tray_icon: QIcon | None = None  # None: no system tray here (the banner stands in)


class MainWindow(QMainWindow):
    quitRequested = Signal()
    firstPainted = Signal()  # the window is on screen: what can wait may start

    def __init__(self, models: Models, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models = models
        self.vm = models.app
        self.setWindowTitle("FocusMate")
        self.resize(1120, 720)
        self.setMinimumSize(820, 560)
        self.room_pages: dict[str, RoomPage] = {}
        self._pending: set[asyncio.Future[None]] = set()  # timer commands under way
        self.room_models: dict[str, RoomViewModel] = {}
        self.board_models: dict[str, BoardViewModel] = {}
        self._messages_page: MessagesPage | None = None  # built on the first visit
        self._stats_page: StatsPage | None = None  # built on the first visit
        self._painted = False
        self._build_pages()
        self._build_actions()
        self.tray = self._build_tray()
        self._connect()
        self.root.setCurrentWidget(self.main if self.vm.onboarded else self.first_run)
        self.menuBar().setVisible(self.vm.onboarded)  # first run: one question, nothing else
        self._update_actions()

    # -- building -------------------------------------------------------------------------------

    def _build_pages(self) -> None:
        self.first_run = FirstRunPage(self.vm)
        self.sidebar = Sidebar(self.vm)
        self.sidebar.setMinimumWidth(220)
        self.content = QStackedWidget()
        self.empty = _empty_page()
        self.content.addWidget(self.empty)
        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(self.content)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 860])
        splitter.setChildrenCollapsible(False)
        self.banner = Banner()
        self.main = QWidget()
        column = QVBoxLayout(self.main)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.banner)
        column.addWidget(splitter, 1)
        self.root = QStackedWidget()
        self.root.addWidget(self.first_run)
        self.root.addWidget(self.main)
        self.setCentralWidget(self.root)

    def _action(
        self, text: str, shortcut: QKeySequence | str | None, slot: Callable[[], object]
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work while the menu bar is hidden too
        return action

    def _build_actions(self) -> None:
        seq = QKeySequence.StandardKey
        self.create_action = self._action("&Create room…", "Ctrl+N", self.create_room)
        self.join_action = self._action("&Join room…", "Ctrl+J", self.join_room)
        self.settings_action = self._action(
            "&Settings…", QKeySequence(seq.Preferences), self.open_settings
        )
        if self.settings_action.shortcut().isEmpty():
            self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.quit_action = self._action("&Quit", QKeySequence(seq.Quit), self.quitRequested.emit)
        if self.quit_action.shortcut().isEmpty():
            self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.toggle_action = self._action("&Start / Pause", "Space", self._timer("toggle"))
        self.skip_action = self._action("S&kip phase", "Ctrl+Right", self._timer("skip"))
        self.reset_action = self._action("&Reset timer", "Ctrl+R", self._timer("reset"))
        self.messages_action = self._action("&Messages", "Ctrl+2", lambda: self.show_page(MESSAGES))
        self.stats_action = self._action("S&tats", "Ctrl+3", lambda: self.show_page(STATS))
        self.rooms_action = self._action("&Rooms", "Ctrl+1", self.sidebar.rooms.setFocus)
        self.away_action = self._action("I'm &away", "Ctrl+Shift+A", lambda: None)
        self.away_action.setCheckable(True)
        self.away_action.toggled.connect(self.vm.set_away)
        about = self._action("&About FocusMate", None, self.about)
        menus = self.menuBar()
        file = menus.addMenu("&File")
        for action in (self.create_action, self.join_action, self.settings_action):
            file.addAction(action)
        file.addSeparator()
        file.addAction(self.quit_action)
        timer = menus.addMenu("&Timer")
        for action in (self.toggle_action, self.skip_action, self.reset_action):
            timer.addAction(action)
        timer.addSeparator()
        timer.addAction(self.away_action)
        view = menus.addMenu("&View")
        for action in (self.rooms_action, self.messages_action, self.stats_action):
            view.addAction(action)
        menus.addMenu("&Help").addAction(about)

    @property
    def messages_page(self) -> MessagesPage:
        """The Messages page, built on its first visit."""
        if self._messages_page is None:
            from ui.widgets.messages_page import MessagesPage  # noqa: PLC0415 - see the imports

            self._messages_page = MessagesPage(self.models.messages)
            self.content.addWidget(self._messages_page)
        return self._messages_page

    @property
    def stats_page(self) -> StatsPage:
        """The Stats page, built on its first visit."""
        if self._stats_page is None:
            from ui.widgets.stats_page import StatsPage  # noqa: PLC0415 - see the imports

            self._stats_page = StatsPage(self.models.stats)
            self.content.addWidget(self._stats_page)
        return self._stats_page

    def _build_tray(self) -> Tray | None:
        if self.models.tray_icon is None:
            return None
        from ui.widgets.tray import Tray  # noqa: PLC0415 - only where there is a system tray

        tray = Tray(
            self.models.tray_icon,
            self,
            [self.toggle_action, self.skip_action],
            self.quit_action,
        )
        tray.show()
        return tray

    def _connect(self) -> None:
        self.first_run.finished.connect(self._onboarded)
        self.sidebar.roomPicked.connect(self.show_room)
        self.sidebar.pagePicked.connect(self.show_page)
        self.sidebar.createRoom.connect(self.create_room)
        self.sidebar.joinRoom.connect(self.join_room)
        self.vm.roomOpened.connect(self._room_opened)
        self.vm.titleChanged.connect(self._title_changed)
        self.models.messages.unreadChanged.connect(self.sidebar.set_unread)
        self.sidebar.set_unread(self.models.messages.unread_total)
        self.content.currentChanged.connect(lambda _i: self._page_changed())
        notices = self.models.notices
        notices.banner.connect(self.banner.show_notice)
        if self.tray is not None:
            notices.systemNotice.connect(self.tray.notify)
        if self.models.chimes is not None:
            chimes = self.models.chimes
            volume = self.models.settings
            notices.sound.connect(lambda name: chimes.play(name, volume.settings.sound_volume))
        self.models.settings.themeChanged.connect(self._apply_theme)
        # Space on a focused button: see eventFilter. Only the focused button or box is watched
        # (a filter on the whole application would see every event of every widget).
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)
            self._focus_changed(None, app.focusWidget())

    def _onboarded(self) -> None:
        self.root.setCurrentWidget(self.main)
        self.menuBar().setVisible(True)

    # -- navigation -----------------------------------------------------------------------------

    def show_room(self, room_id: str) -> None:
        page = self.room_pages.get(room_id)
        if page is None:
            room_vm, board_vm = self.models.room(room_id)
            room_vm.setParent(self)
            board_vm.setParent(self)
            # Built inside the window, so that nothing is moved (and restyled) once built.
            page = RoomPage(room_vm, BoardView(board_vm), self.content)
            room_vm.left.connect(lambda: self._room_left(room_id))
            self.room_pages[room_id] = page
            self.room_models[room_id] = room_vm
            self.board_models[room_id] = board_vm
            self.content.addWidget(page)
        self.vm.select_room(room_id)
        self.content.setCurrentWidget(page)
        self.sidebar.select_room(room_id)

    def show_page(self, name: str) -> None:
        self.vm.select_room(None)
        self.sidebar.select_page(name)
        self.content.setCurrentWidget(self.messages_page if name == MESSAGES else self.stats_page)

    def current_room(self) -> RoomViewModel | None:
        for room_id, page in self.room_pages.items():
            if self.content.currentWidget() is page:
                return self.room_models[room_id]
        return None

    def _room_opened(self, room_id: str) -> None:
        self.show_room(room_id)

    def _room_left(self, room_id: str) -> None:
        """The room is no longer ours (left here or elsewhere): its page goes; the window shows
        the empty page only if it was showing this room."""
        page = self.room_pages.pop(room_id, None)
        showing = page is not None and self.content.currentWidget() is page
        vm = self.room_models.pop(room_id, None)
        board = self.board_models.pop(room_id, None)
        if board is not None:
            board.deleteLater()
        if page is not None:
            self.content.removeWidget(page)
            page.deleteLater()
        if vm is not None:
            vm.deleteLater()
        if showing:
            self.vm.select_room(None)
            self.content.setCurrentWidget(self.empty)

    def _page_changed(self) -> None:
        """Only what is on screen keeps redrawing: hidden room pages and boards rest."""
        current, shown = self.content.currentWidget(), self.isVisible()
        messages = self._messages_page
        self.models.messages.set_visible(messages is not None and current is messages and shown)
        for room_id, page in self.room_pages.items():
            active = page is current and shown
            self.room_models[room_id].set_active(active)
            self.board_models[room_id].set_active(active)
        self._update_actions()

    def _update_actions(self) -> None:
        in_room = self.current_room() is not None
        for action in (self.toggle_action, self.skip_action, self.reset_action):
            action.setEnabled(in_room)

    # -- actions --------------------------------------------------------------------------------

    def _timer(self, name: str) -> Callable[[], None]:
        def run() -> None:
            vm = self.current_room()
            if vm is not None:
                method: Callable[[], Coroutine[Any, Any, None]] = getattr(vm, name)
                future = asyncio.ensure_future(method())
                self._pending.add(future)
                future.add_done_callback(self._pending.discard)

        return run

    def _open(self, dialog: QDialog) -> QDialog:
        """Show a dialog window-modally without a nested event loop (``exec`` would run one,
        and the engine's asyncio tasks must not be stepped from inside it); it deletes itself
        when closed."""
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def create_room(self) -> None:
        from ui.widgets.room_dialogs import CreateRoomDialog  # noqa: PLC0415 - see the imports

        self._open(CreateRoomDialog(self.vm, self))

    def join_room(self) -> None:
        from ui.widgets.room_dialogs import JoinRoomDialog  # noqa: PLC0415 - see the imports

        self._open(JoinRoomDialog(self.vm, self))

    def open_settings(self) -> None:
        from ui.widgets.settings_dialog import SettingsDialog  # noqa: PLC0415 - see the imports

        self._open(SettingsDialog(self.models.settings, self))

    def about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About FocusMate", "", parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(f"FocusMate {__version__}\nFocus together, peer to peer.")
        box.setInformativeText(self.vm.about_text())
        self._open(box)

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if isinstance(new, QAbstractButton | QComboBox):
            new.installEventFilter(self)  # until it loses the focus

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Space belongs to a focused button or box (pressing it), not to the timer: claim
        the key for the widget before the window's Start / Pause shortcut sees it."""
        kind = event.type()
        if kind == QEvent.Type.FocusOut:
            watched.removeEventFilter(self)
        elif (
            kind == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Space
            and isinstance(watched, QAbstractButton | QComboBox)
        ):
            event.accept()
        return False

    def _apply_theme(self, theme: object) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)  # type: ignore[arg-type]

    def _title_changed(self, title: str) -> None:
        self.setWindowTitle(title)
        if self.tray is not None:
            self.tray.set_status(title)

    # -- window events --------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.ActivationChange:
            self.models.notices.window_active = self.isActiveWindow()
        super().changeEvent(event)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._page_changed()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            self._after_first_paint()

    def _after_first_paint(self) -> None:
        """What can wait until the window is on screen."""
        chimes = self.models.chimes
        if chimes is not None:
            QTimer.singleShot(CHIMES_AFTER_MS, chimes, chimes.prepare)
        self.firstPainted.emit()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self._page_changed()

    def closeEvent(self, event: QCloseEvent) -> None:
        """With a tray the window hides and FocusMate keeps the timer; without one, closing
        the window quits."""
        if self.tray is not None and self.tray.isVisible():
            event.ignore()
            self.hide()
            self.tray.notify("FocusMate is still running", "The timer keeps going in the tray.")
            return
        event.accept()
        self.quitRequested.emit()


def _empty_page() -> QWidget:
    page = QWidget()
    text = QLabel(
        "<h2>Focus together</h2>"
        "<p>Create a room and invite your team, or join one with its code.<br>"
        "People on your network appear in the sidebar.</p>"
        "<p>Ctrl+N creates a room, Ctrl+J joins one.</p>"
    )
    text.setAlignment(Qt.AlignmentFlag.AlignCenter)
    text.setWordWrap(True)
    layout = QVBoxLayout(page)
    layout.addWidget(text)
    return page
