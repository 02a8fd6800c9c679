"""The sync engine: every room document of a profile, kept in step over every link it has.

Rules:

* A remote update is persisted by its document before anything else sees it; then the
  document's listeners run, and the engine forwards the update to every *other* link (a peer
  can be reachable through a relay and on the LAN at once).
* Local edits come from this process (the app, the daemon) or from another process on the same
  profile (a CLI command): the engine polls the store's ``data_version``, re-reads documents that
  changed and forwards what it finds, so a CLI edit reaches every link within a poll interval.
* Rooms joined meanwhile (``focusmate room join`` in another process) are picked up by the same
  poll and subscribed on every link.
* With ``lan=True`` the engine also listens for LAN peers (``sync.lan``), advertises itself and
  dials the peers it discovers (``sync.discovery``); a LAN session syncs the rooms both hold.
* Each room has one timebase (:meth:`SyncEngine.now_for`): the relay's clock when a relay
  carries it, else the LAN peer with the smallest user id, else ours.
* Presence (``sync.presence``) and direct messages (``focusmate.inbox``) ride the same links:
  queued envelopes go to the recipient's LAN session if there is one, else to a relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from focusmate.dm import Envelope
from focusmate.document import STORE_ORIGIN, CrdtDocument
from focusmate.invite import Invite, relay_token
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.timebase import FRESH_SECONDS, remove_offsets, write_offsets
from focusmate.timer import Command, TimerState
from focusmate.workspace import Workspace
from sync.backoff import Backoff
from sync.control import Receipt
from sync.discovery import Discovery, PeerAdvert
from sync.docsync import SyncableDocument
from sync.engine_lock import EngineLock
from sync.lan import LanNode, LanSession
from sync.presence import RoomPresence, new_client_id
from sync.relay_link import Event, RelayError, RelayLink
from sync.ysync import AwarenessMessage

log = logging.getLogger("focusmate.sync")
POLL_SECONDS = 0.2
REDIAL_SECONDS = 2.0
HOUSEKEEPING_SECONDS = 1.0


class SyncEngine:
    def __init__(
        self,
        workspace: Workspace,
        *,
        relays: Sequence[str],
        events: Callable[[Event], None],
        poll_seconds: float = POLL_SECONDS,
        backoff: Callable[[], Backoff] = Backoff,
        on_change: Callable[[str, str], None] | None = None,
        lan: bool = False,
        lan_host: str = "0.0.0.0",
        discover: bool = True,
        discovery_interfaces: Sequence[str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.events = events
        self.on_change = on_change  # (doc id, origin) after a document changed, from anywhere
        self.presence: dict[str, RoomPresence] = {}
        self.poll_seconds = poll_seconds
        self._backoff = backoff
        self.links: list[RelayLink] = [self._make_link(url) for url in relays]
        self.documents: dict[str, CrdtDocument] = {}
        self.secrets: dict[str, bytes] = {}
        self.lan_sessions: set[LanSession] = set()
        self._lan_host = lan_host
        self.lan = self._make_lan_node() if lan else None
        self._discover = discover  # False: dial peers by hand (tests on loopback)
        self._discovery_interfaces = discovery_interfaces
        self.discovery: Discovery | None = None
        self._adverts: dict[str, str] = {}  # discovery instance -> user id
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._mailer: asyncio.Task[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self._published: tuple[float, dict[str, float]] | None = None  # timebase.json
        self._redialer: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._lock = EngineLock(workspace.profile_dir)
        self._started = False
        self._stopped = False

    def _make_link(self, url: str) -> RelayLink:
        return RelayLink(
            url,
            identity=self.workspace.identity,
            clock=self.workspace.clock,
            events=self.events,
            backoff=self._backoff(),
            presence=self,
            on_dm=self._dm_arrived,
            on_receipt=self._receipt_arrived,
        )

    def _make_lan_node(self) -> LanNode:
        return LanNode(
            identity=self.workspace.identity,
            rooms=self,
            clock=self.workspace.clock,
            events=self.events,
            on_session=self.lan_sessions.add,
            on_session_end=self.lan_sessions.discard,
            host=self._lan_host,
            presence=self,
            mail=self,
        )

    async def start(self) -> None:
        """Take the profile's engine lock (AlreadyRunningError if another process syncs it),
        then bring every link up."""
        self._lock.acquire()
        self._started = True
        # The poll notices commits after this look at the store; documents loaded before it
        # (the daemon's and the app's first read) may lack commits made since, so read those
        # now, before the links' first sync sends what the documents hold.
        version: int | None = self.workspace.store.data_version()
        try:
            self.workspace.refresh()
        except Exception:
            log.exception("sync.store_watch_failed")
            version = None  # the watcher tries again at its first poll
        self._track_rooms()
        for link in self.links:
            link.start()
        if self.lan is not None:
            await self._start_lan(self.lan)
        self._watcher = asyncio.get_running_loop().create_task(self._watch_store(version))
        self._mailer = asyncio.get_running_loop().create_task(self._send_dms())
        self._housekeeper = asyncio.get_running_loop().create_task(self._housekeep())

    async def _start_lan(self, node: LanNode) -> None:
        """Listen now; advertise and browse in the background: starting zeroconf takes a
        moment, and nothing else (the app's window, the relays) should wait for it."""
        await node.start()
        if self._discover:
            self.discovery = Discovery(
                self.workspace.user_id,
                node.port,
                on_found=self._found,
                on_lost=self._lost,
                interfaces=self._discovery_interfaces,
            )
            self._redialer = asyncio.get_running_loop().create_task(
                self._discover_and_redial(self.discovery)
            )

    async def _discover_and_redial(self, discovery: Discovery) -> None:
        await discovery.start()
        await self._redial()

    async def _stop_lan(self) -> None:
        if self._redialer is not None:
            self._redialer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._redialer
            self._redialer = None
        if self.discovery is not None:
            await self.discovery.stop()
            self.discovery = None
        for task in list(self._tasks):
            task.cancel()
        if self.lan is not None:
            await self.lan.stop()
        for instance in list(self._adverts):
            self._lost(instance)

    # -- changing links while running -----------------------------------------------------------

    def add_relay(self, url: str) -> None:
        """Sync through one more relay (the settings changed); every room goes to it."""
        if any(link.url == url for link in self.links):
            return
        link = self._make_link(url)
        self.links.append(link)
        for room_id, document in self.documents.items():
            link.add_document(document, token=relay_token(self.secrets[room_id]))
        if self._started and not self._stopped:
            link.start()

    async def remove_relay(self, url: str) -> None:
        for link in [link for link in self.links if link.url == url]:
            self.links.remove(link)
            await link.stop()

    async def set_lan(self, enabled: bool) -> None:
        """Join or leave the LAN while running: listen, advertise and dial, or stop all that."""
        if enabled and self.lan is None:
            self.lan = self._make_lan_node()
            if self._started and not self._stopped:
                await self._start_lan(self.lan)
        elif not enabled and self.lan is not None:
            await self._stop_lan()
            self.lan = None

    def _found(self, advert: PeerAdvert) -> None:
        self._adverts[advert.instance] = advert.user_id
        self.events({"event": "peer_discovered", "peer": advert.user_id, "port": advert.port})
        if self.lan is not None and self.lan.should_dial(advert.user_id) and advert.addresses:
            self.dial(advert.user_id, advert.addresses[0], advert.port)

    async def _redial(self) -> None:
        """Reconnect to peers still advertised but not connected (after a partition heals, or
        a dial that failed): adverts outlive connections."""
        while True:
            await asyncio.sleep(REDIAL_SECONDS)
            if self.discovery is None or self.lan is None:
                return
            for advert in self.discovery.peers.values():
                if self.lan.should_dial(advert.user_id) and advert.addresses:
                    self.dial(advert.user_id, advert.addresses[0], advert.port)

    def _lost(self, instance: str) -> None:
        user_id = self._adverts.pop(instance, None)
        if user_id is not None:
            self.events({"event": "peer_lost", "peer": user_id})

    def dial(self, user_id: str, host: str, port: int) -> None:
        """Connect to a LAN peer (discovery does this; tests may call it directly)."""
        assert self.lan is not None
        task = asyncio.get_running_loop().create_task(self.lan.dial(user_id, host, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- rooms offered on the LAN ---------------------------------------------------------------

    def lan_offers(self) -> list[str]:
        """Invite links of the rooms we offer on the LAN (the user opted in per room)."""
        return [invite.link() for invite in self.workspace.lan_offers()]

    def offers_received(self, session: LanSession) -> None:
        if session.peer is not None:
            names = [invite.name_hint for invite in session.offers]
            self.events({"event": "lan_offers", "peer": session.peer.user_id, "rooms": names})

    def refresh_offers(self) -> None:
        """Our offers changed: tell every LAN peer."""
        for session in list(self.lan_sessions):
            session.send_offers()

    def offers_from_lan(self) -> list[tuple[str, Invite]]:
        """(peer user id, invite) for each room offered to us on the LAN that we do not hold."""
        held = set(self.documents)
        seen: set[str] = set()
        offers = []
        for session in sorted(self.lan_sessions, key=lambda s: s.origin):
            for invite in session.offers:
                if session.peer is not None and invite.room_id not in held | seen:
                    seen.add(invite.room_id)
                    offers.append((session.peer.user_id, invite))
        return offers

    def lan_rooms(self) -> list[tuple[str, bytes, SyncableDocument]]:
        return [
            (room_id, self.secrets[room_id], document)
            for room_id, document in self.documents.items()
        ]

    async def stop(self) -> None:
        """Stop every link (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._watcher, self._mailer, self._housekeeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._stop_lan()
        for link in self.links:
            await link.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._published is not None:
            remove_offsets(self.workspace.profile_dir)
        self._lock.release()

    def _track_rooms(self) -> None:
        before = len(self.documents)
        self._track_new_rooms()
        if len(self.documents) != before:
            for session in list(self.lan_sessions):
                session.offer_rooms()  # a room joined while connected is shared at once

    def _track_new_rooms(self) -> None:
        for room in self.workspace.rooms():
            room_id = room.room_id
            if room_id in self.documents:
                continue
            secret = self.workspace.store.room_secret(room_id)
            if secret is None:
                continue
            document = self.workspace.document(room_id, kind=ROOM_KIND)
            self.documents[room_id] = document
            self.secrets[room_id] = secret
            self._unsubscribe.append(document.on_change(self._forwarder(document)))
            for link in self.links:
                link.add_document(document, token=relay_token(secret))

    def _forwarder(self, document: CrdtDocument) -> Callable[[bytes, str], None]:
        """Pass a document's changes on to every link.

        A change read from the store (another process's commit, or a rebuild) is passed on as
        the diff from the state vector after the last change passed on, not as announced. An
        update that arrives before one it depends on leaves the document waiting, and the next
        one it takes in makes it rebuild from its whole log and announce the whole document:
        passed on as it is, the whole room would go to every link for each such update, each of
        them would store it, and any of them still waiting would do the same, a storm that grows
        with the room. Every change since the last one passed on lies beyond that state vector
        (what was waiting is not in it), and deletions ride in every diff.
        """
        doc_id = document.doc_id
        passed_on = document.state_vector()

        def forward(update: bytes, origin: str) -> None:
            nonlocal passed_on
            if origin == STORE_ORIGIN:
                update = document.encode_update(passed_on)
            passed_on = document.state_vector()
            for link in self.links:
                link.local_update(doc_id, update, origin=origin)
            for session in list(self.lan_sessions):
                session.local_update(doc_id, update, origin=origin)
            if self.on_change is not None:
                self.on_change(doc_id, origin)

        return forward

    async def _watch_store(self, version: int | None) -> None:
        """Notice other processes' commits (CLI edits, rooms joined) within a poll interval:
        those after ``version`` (the store's data version when the documents were last read).
        A failed re-read is tried again at the next poll (logged once), not forgotten: nothing
        else would read that commit until another process commits again."""
        store = self.workspace.store
        failing = False
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                if set(store.active_room_ids()) - self.documents.keys():
                    self._track_rooms()  # joined or created here or in another process
                current = store.data_version()
                if current == version:
                    continue
                self.workspace.refresh()  # re-read documents; listeners forward the changes
                version, failing = current, False
            except Exception:
                if not failing:
                    log.exception("sync.store_watch_failed")
                failing = True

    # -- direct messages --------------------------------------------------------------------------

    async def _send_dms(self) -> None:
        """Hand queued envelopes (from this process or a CLI) to the recipient's LAN session or
        else a relay, and tell senders what we have read. A message is marked sent only once a
        relay confirmed it committed it, or a LAN peer has it on the way."""
        inbox = self.workspace.inbox
        while True:
            await asyncio.sleep(self.poll_seconds)
            lan = {s.peer.user_id: s for s in self.lan_sessions if s.peer is not None}
            link = next((ln for ln in self.links if ln.connected.is_set()), None)
            try:
                for envelope in inbox.queued():
                    session = lan.get(envelope.recipient)
                    if session is not None:
                        session.send_dm(envelope)
                    elif link is not None:
                        await link.send_dm(envelope)
                    else:
                        continue
                    inbox.advance(envelope.id, "sent")
                    self.events({"event": "dm_sent", "id": envelope.id, "to": envelope.recipient})
                for sender, ids in inbox.read_receipts_due().items():
                    session = lan.get(sender)
                    if session is not None:
                        session.send_read(tuple(ids))
                    elif link is not None:
                        link.mark_read(sender, tuple(ids))
                    else:
                        continue
                    inbox.receipts_sent(ids)
            except RelayError as err:
                self.events({"event": "dm_not_sent", "reason": str(err)})
            except Exception:
                log.exception("sync.dm_send_failed")

    def lan_dm(self, envelope: Envelope, session: LanSession) -> None:
        self._store_dm(envelope)

    def lan_receipt(self, message_ids: tuple[str, ...], kind: str) -> None:
        for message_id in message_ids:
            if self.workspace.inbox.advance(message_id, kind):
                self.events({"event": f"dm_{kind}", "id": message_id})

    async def _dm_arrived(self, envelope: Envelope) -> None:
        self._store_dm(envelope)  # stored before the relay is told

    def _store_dm(self, envelope: Envelope) -> None:
        message = self.workspace.inbox.receive(envelope)
        if message is not None:
            self.events(
                {
                    "event": "dm_received",
                    "id": message.id,
                    "from": message.peer,
                    "text": message.text,
                }
            )

    async def _receipt_arrived(self, receipt: Receipt) -> None:
        if receipt.kind in ("delivered", "read"):
            self.workspace.inbox.advance(receipt.message_id, receipt.kind)
            self.events({"event": f"dm_{receipt.kind}", "id": receipt.message_id, "by": receipt.by})

    # -- housekeeping ---------------------------------------------------------------------------

    async def _housekeep(self) -> None:
        """Once a second: renew our presence before peers forget it, forget peers that went
        quiet, and publish each room's timebase for CLI processes on this profile."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                self._keep_presence()
                self._publish_timebase()
            except Exception:
                log.exception("sync.housekeeping_failed")

    def _keep_presence(self) -> None:
        for doc_id, presence in self.presence.items():
            renewal = presence.renew()
            if renewal is not None:
                self._send_awareness(doc_id, renewal, skip=None)
            if presence.expire():
                self.events(
                    {"event": "presence", "room_id": doc_id, "peers": self.peers_present(doc_id)}
                )

    def _publish_timebase(self) -> None:
        """Write the offsets when they moved by a millisecond, or to keep the file fresh."""
        now = self.workspace.now()
        offsets = {room_id: self.clock_offset(room_id) for room_id in self.documents}
        if self._published is not None:
            written_at, before = self._published
            moved = before.keys() != offsets.keys() or any(
                abs(offsets[k] - before[k]) > 0.001 for k in offsets
            )
            if not moved and now - written_at < FRESH_SECONDS / 2:
                return
        write_offsets(self.workspace.profile_dir, offsets, now=now)
        self._published = (now, offsets)

    # -- time and the shared timer -----------------------------------------------------------

    def clock_offset(self, room_id: str) -> float:
        """Seconds to add to our clock to get the room's timebase: the relay's clock when a relay
        carries the room, else the clock of the LAN peer in the room with the smallest user id
        (every peer picks the same one), else our own."""
        for link in self.links:
            if link.connected.is_set() and room_id in link.sessions:
                offset = link.offset.offset
                if offset is not None:
                    return offset
        sharing = {
            session.peer.user_id: session
            for session in self.lan_sessions
            if session.peer is not None and room_id in session.sessions
        }
        host = min([self.workspace.user_id, *sharing])
        if host == self.workspace.user_id:
            return 0.0
        offset = sharing[host].offset.offset
        return 0.0 if offset is None else offset

    def now_for(self, room_id: str) -> float:
        """Now, on the room's timebase: what every peer's timer display is computed with."""
        return self.workspace.now() + self.clock_offset(room_id)

    async def timer_command(self, room_id: str, command: Command) -> TimerState:
        """Start, pause, resume, skip or reset a room's timer: hosted by a relay when one carries
        the room, else applied here on the room's timebase."""
        for link in self.links:
            if link.connected.is_set() and room_id in link.sessions:
                return TimerState.from_dict(await link.timer(room_id, command.value))
        room = self.workspace.find_room(room_id)
        return room.timer_command(command, now=self.now_for(room_id))

    # -- presence -------------------------------------------------------------------------------

    def _room_presence(self, doc_id: str) -> RoomPresence:
        presence = self.presence.get(doc_id)
        if presence is None:
            presence = RoomPresence(client_id=new_client_id(), now=self.workspace.clock.now)
            self.presence[doc_id] = presence
        return presence

    def set_presence(self, room_id: str, *, status: str, task: str | None = None) -> None:
        """Announce what we are doing in a room, on every link."""
        state = {
            "user_id": self.workspace.user_id,
            "name": self.workspace.display_name,
            "status": status,
            "task": task,
        }
        message = self._room_presence(room_id).set_local(state)
        self._send_awareness(room_id, message, skip=None)

    def peers_present(self, room_id: str) -> list[dict[str, Any]]:
        return self._room_presence(room_id).peers()

    def announcement(self, doc_id: str) -> AwarenessMessage | None:
        presence = self.presence.get(doc_id)
        return presence.announcement() if presence is not None and presence.local else None

    def awareness_received(self, doc_id: str, message: AwarenessMessage, link: object) -> None:
        accepted = self._room_presence(doc_id).receive(message)
        if accepted is not None:
            self._send_awareness(doc_id, accepted, skip=link)
            self.events(
                {"event": "presence", "room_id": doc_id, "peers": self.peers_present(doc_id)}
            )

    def _send_awareness(self, doc_id: str, message: AwarenessMessage, *, skip: object) -> None:
        links: list[RelayLink | LanSession] = [*self.links, *self.lan_sessions]
        for link in links:
            if link is not skip:
                link.send_awareness(doc_id, message)

    def status(self) -> dict[str, Any]:
        return {
            "links": [
                {"link": link.url, "connected": link.connected.is_set()} for link in self.links
            ],
            "documents": sorted(self.documents),
        }
