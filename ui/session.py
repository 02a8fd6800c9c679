"""One opened profile on the Qt event loop: the workspace, its sync engine, and Qt signals.

View-models never poll and never see the engine's callbacks: they connect to these signals and
re-read what they show from the workspace. The session coalesces bursts (a relay catch-up can
bring hundreds of updates in one loop iteration) into one ``roomChanged`` per room per
:data:`COALESCE_MS`, and a :data:`TICK_MS` tick drives countdowns and the room watcher
(:mod:`sync.watch`), which turns time and changes into phase, post and comment events,
publishes our presence and records finished focus sessions.

A tick must cost next to nothing with dozens of rooms: :attr:`Session.room_cache` (a
:class:`sync.watch.RoomCache`, shared by the watcher and the view-models) keeps the room list,
each room's timer inputs, boards and our tasks, and re-reads each only when its part of a
document changed or something was committed to the store; the tick itself asks the store one
tiny question (has anything been committed?) and works out only the running timers.

Everything runs on the one asyncio loop that qasync shares with Qt; engine callbacks arrive on
it, so signals are emitted directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from focusmate.steady import SteadyTime
from focusmate.timer import Command, TimerState
from focusmate.workspace import Workspace
from sync.engine import SyncEngine
from sync.relay_link import Event
from sync.watch import BoardAndTimerReporter, PresenceKeeper, RoomCache

log = logging.getLogger("focusmate.ui")
TICK_MS = 250
COALESCE_MS = 50


class Session(QObject):
    """The app's model root. ``start()``/``stop()`` run the engine; signals say what changed."""

    roomsChanged = Signal()  # rooms joined, created, left or deleted (here or by a CLI)
    roomChanged = Signal(str)  # a room's document changed (room id), coalesced
    documentChanged = Signal(str)  # any document changed (doc id), coalesced
    presenceChanged = Signal(str)  # who is in a room, or what they are doing (room id)
    peersChanged = Signal()  # LAN peers found or lost, or the rooms they offer changed
    linksChanged = Signal()  # relay links up or down
    messagesChanged = Signal()  # a direct message arrived, left, was delivered or read
    timerPhase = Signal(dict)  # sync.watch "timer_phase" event: a room's phase changed
    postReceived = Signal(dict)  # sync.watch "post_received"
    commentReceived = Signal(dict)  # sync.watch "comment_received"
    dmReceived = Signal(dict)  # engine "dm_received": {"id", "from", "text"}
    ticked = Signal()  # every TICK_MS: redraw countdowns
    engineEvent = Signal(dict)  # every engine event, as the daemon would print it
    started = Signal()  # start() is done: what was there at start-up is accounted for

    def __init__(
        self,
        workspace: Workspace,
        *,
        relays: Sequence[str] | None = None,
        lan: bool | None = None,
        engine_options: dict[str, Any] | None = None,
        tick_ms: int = TICK_MS,
        monotonic: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self._steady = SteadyTime(monotonic)  # countdowns never run backwards
        settings = workspace.settings
        self.engine = SyncEngine(
            workspace,
            relays=list(settings.relay_urls if relays is None else relays),
            events=self._on_event,
            on_change=self._on_change,
            lan=settings.lan_enabled if lan is None else lan,
            **(engine_options or {}),
        )
        self.peers: dict[str, dict[str, Any]] = {}  # LAN peers seen: user id -> last advert
        self.link_state: dict[str, bool] = {link.url: False for link in self.engine.links}
        # What the tick, the watcher and the view-models read, re-read only when it changed.
        self.room_cache = RoomCache(workspace)
        self.room_cache.sync()
        # The stats document too, before the app's event loop runs: a CRDT document first opened
        # inside a running loop makes pycrdt load anyio's asyncio backend, which the window need
        # not wait for (the view-models read the stats while the window is built).
        workspace.stats()
        self._reporter = BoardAndTimerReporter(
            workspace, self._on_watch_event, now_for=self.engine.now_for, cache=self.room_cache
        )
        self.presence_keeper = PresenceKeeper(workspace, self.engine, cache=self.room_cache)
        self._reporter.on_timer = self.presence_keeper
        self._dirty: set[str] = set()
        self._boards_due: set[str] = set()
        self._coalesce = QTimer(self, singleShot=True, interval=COALESCE_MS)
        self._coalesce.timeout.connect(self._flush)
        self._tick = QTimer(self, interval=tick_ms)
        self._tick.timeout.connect(self.tick)
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._reporter.check(None, announce=False)  # what is already there is not news
        await self.engine.start()
        self._started = True
        self._tick.start()
        self.started.emit()

    @property
    def running(self) -> bool:
        """Between start() and stop()."""
        return self._started

    async def stop(self) -> None:
        self._tick.stop()
        self._coalesce.stop()
        if self._started:
            self._started = False
            await self.engine.stop()

    # -- links ----------------------------------------------------------------------------------

    async def set_relays(self, urls: Sequence[str]) -> None:
        """Sync through exactly ``urls`` from now on (the settings changed)."""
        for url in [u for u in self.link_state if u not in urls]:
            await self.engine.remove_relay(url)
            del self.link_state[url]
        for url in urls:
            if url not in self.link_state:
                self.engine.add_relay(url)
                self.link_state[url] = False
        self.linksChanged.emit()

    def set_lan_offer(self, room_id: str, offered: bool) -> None:
        """Offer a room to everyone on the LAN, or stop; peers hear it at once."""
        self.workspace.offer_on_lan(self.workspace.find_room(room_id), offered)
        self.engine.refresh_offers()

    async def set_lan(self, enabled: bool) -> None:
        """Join or leave the LAN now (the settings changed)."""
        await self.engine.set_lan(enabled)
        if not enabled:
            self.peers.clear()
            self.peersChanged.emit()

    # -- time -----------------------------------------------------------------------------------

    def now_for(self, room_id: str) -> float:
        """Now on the room's shared timebase: what every countdown is drawn with. Should this
        machine's clock step back, shown time does not (:mod:`focusmate.steady`)."""
        return self._steady(room_id, self.engine.now_for(room_id))

    def tick(self) -> None:
        """Redraw countdowns, notice phase changes and rooms joined elsewhere. Tests with an
        injected clock call it after moving the clock."""
        try:
            if self.room_cache.sync():  # re-reads rooms and tasks only if the store changed
                self.roomsChanged.emit()
            self._reporter.check(self._take_dirty_rooms(), sync=False)
        except Exception:
            log.exception("ui.tick_failed")
        self.ticked.emit()

    async def timer_command(self, room_id: str, command: Command) -> TimerState:
        """Start, pause, resume, skip or reset: hosted by a relay when one carries the room."""
        state = await self.engine.timer_command(room_id, command)
        self.note_local_change(room_id)
        return state

    # -- changes --------------------------------------------------------------------------------

    def note_local_change(self, doc_id: str) -> None:
        """A view-model edited a document: refresh everyone who shows it (the engine forwards
        the edit by itself)."""
        self._on_change(doc_id, "local")

    def note_rooms_changed(self) -> None:
        """A room was created, joined, left or deleted from this window."""
        self.room_cache.reload()
        self.roomsChanged.emit()

    def _on_change(self, doc_id: str, origin: str) -> None:
        self._dirty.add(doc_id)
        if not self._coalesce.isActive():
            self._coalesce.start()

    def _flush(self) -> None:
        changed = set(self._dirty)
        room_ids = self.room_cache.room_ids
        for doc_id in sorted(changed):
            self.documentChanged.emit(doc_id)
            if doc_id in room_ids:
                self.roomChanged.emit(doc_id)
        self._boards_due |= changed & room_ids
        self._dirty.clear()

    def _take_dirty_rooms(self) -> set[str]:
        due, self._boards_due = self._boards_due, set()
        return due

    # -- events ---------------------------------------------------------------------------------

    def _on_watch_event(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "timer_phase":
            self.timerPhase.emit(event)
        elif kind == "post_received":
            self.postReceived.emit(event)
        elif kind == "comment_received":
            self.commentReceived.emit(event)

    def _on_event(self, event: Event) -> None:
        kind = str(event.get("event"))
        if kind == "peer_discovered":
            self.peers[str(event["peer"])] = dict(event)
            self.peersChanged.emit()
        elif kind == "peer_lost":
            self.peers.pop(str(event["peer"]), None)
            self.peersChanged.emit()
        elif kind in ("link_up", "link_down") and event.get("link") in self.link_state:
            self.link_state[str(event["link"])] = kind == "link_up"
            self.linksChanged.emit()
        elif kind == "lan_offers" or (
            kind in ("link_up", "link_down") and str(event.get("link")).startswith("lan:")
        ):
            self.peersChanged.emit()  # what LAN peers offer comes and goes with them
        elif kind == "presence":
            self.presenceChanged.emit(str(event["room_id"]))
        elif kind == "dm_received":
            self.dmReceived.emit(event)
            self.messagesChanged.emit()
        elif kind.startswith("dm_"):
            self.messagesChanged.emit()
        self.engineEvent.emit(event)
