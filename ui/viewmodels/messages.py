"""Direct messages as the Messages page shows them: who we can write to, and one conversation.

Contacts are everyone we share a room with (``Workspace.contacts``), named as they call
themselves in those rooms; anyone who wrote to us without sharing a room still appears, because
a received message is never hidden, but cannot be answered until we share a room again (we have
no key to encrypt for them). Opening a conversation marks it read only while the page is
visible, so messages that arrive while the user looks elsewhere keep the unread badge lit.

What is read, and when: the list (each conversation's last message and unread count, one query,
:meth:`focusmate.inbox.Inbox.summaries`) when a message arrives, leaves or changes state, or when
the people we share rooms with may have changed (rooms came or went, or a room's members
changed — not on every timer or board change); the open conversation's whole history only while
the page is visible, and once more when it is shown again.

Safety numbers: the core has no fingerprint helper, so this module derives one from both
people's public keys (sorted, so both sides compute the same digits). If the two people see
the same number, the keys each app encrypts to are really the other's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from PySide6.QtCore import QObject, QTimer, Signal

from focusmate.dm import normalize_text
from focusmate.errors import FocusMateError
from focusmate.identity import PublicIdentity
from focusmate.inbox import ConversationSummary, DirectMessage
from ui.session import Session

STATE_LABELS = {
    "queued": "Waiting to send",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
}
PREVIEW_CHARS = 80
_SAFETY_DOMAIN = b"focusmate/safety-number/v1\x00"
_SAFETY_GROUPS = 6


@dataclass(frozen=True)
class ConversationItem:
    """One row of the conversation list."""

    peer_id: str
    name: str
    preview: str  # the last message's first line ("You: …" for ours), "" when there is none
    time: str  # when the last message was sent, "" when there is none
    last_at: float  # when the last message was sent (0 when there is none): the list's order
    unread: int
    can_reply: bool  # we share a room, so we hold their encryption key


@dataclass(frozen=True)
class MessageItem:
    id: str
    text: str
    mine: bool
    time: str
    state: str  # the inbox state: queued/sent/delivered/read, or received/read for theirs
    state_label: str  # "Waiting to send", "Sent", "Delivered", "Read"; "" for theirs
    show_state: bool  # worth showing under the bubble (the last of ours, or where it changes)


@dataclass(frozen=True)
class OpenConversation:
    peer_id: str
    name: str
    messages: tuple[MessageItem, ...]
    can_reply: bool
    encryption_note: str
    safety_number: str  # "" when we hold no key for them


def safety_number(a: PublicIdentity, b: PublicIdentity) -> str:
    """Thirty digits in groups of five, the same for both people of a conversation."""
    keys = sorted(p.sign_public + p.box_public for p in (a, b))
    digest = hashlib.sha256(_SAFETY_DOMAIN + b"".join(keys)).digest()
    groups = (int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100_000 for i in range(6))
    return " ".join(f"{g:05d}" for g in groups)


def time_text(at: float, now: float) -> str:
    """ "14:05" today, "Mon 14:05" this week, "3 Mar 2026" before that (local time)."""
    when, today = datetime.fromtimestamp(at), datetime.fromtimestamp(now)
    if when.date() == today.date():
        return when.strftime("%H:%M")
    if 0 < (today.date() - when.date()).days < 7:
        return when.strftime("%a %H:%M")
    return f"{when.day} {when.strftime('%b %Y')}"


def _unknown_name(user_id: str) -> str:
    return f"User {user_id[:5]}"


def _preview(message: DirectMessage) -> str:
    first = " ".join(message.text.split("\n", 1)[0].split())
    if len(first) > PREVIEW_CHARS:
        first = first[: PREVIEW_CHARS - 1] + "…"
    return f"You: {first}" if message.outgoing else first


class MessagesViewModel(QObject):
    """Conversation list, the open conversation, sending, and the unread total."""

    changed = Signal()  # the conversation list changed
    conversationChanged = Signal()  # the open conversation (or which one is open) changed
    unreadChanged = Signal(int)  # unread messages over all conversations: the sidebar badge
    error = Signal(str)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._visible = False
        self._selected: str | None = None
        self._contacts: dict[str, PublicIdentity] = {}
        self._conversations: tuple[ConversationItem, ...] = ()
        self._current: OpenConversation | None = None
        self._unread = 0
        self._members_seen: dict[str, int] = {}  # room id -> its members' change count, read
        # A relay catch-up brings many receipts in one loop iteration: redraw once for all.
        self._pending = QTimer(self, singleShot=True, interval=0)
        self._pending.timeout.connect(self.refresh)
        session.messagesChanged.connect(self._pending.start)
        session.roomsChanged.connect(self._pending.start)
        session.roomChanged.connect(self._on_room_changed)
        self.refresh()

    # -- snapshots ------------------------------------------------------------------------------

    @property
    def conversations(self) -> tuple[ConversationItem, ...]:
        return self._conversations

    @property
    def has_contacts(self) -> bool:
        """Whether there is anyone to talk to (a shared room, or a message received)."""
        return bool(self._conversations)

    @property
    def selected(self) -> str | None:
        return self._selected

    @property
    def current(self) -> OpenConversation | None:
        return self._current

    @property
    def unread_total(self) -> int:
        return self._unread

    @property
    def encryption_note(self) -> str:
        """What the open conversation's lock says, with the safety number when there is one."""
        if self._current is None:
            return ""
        note = self._current.encryption_note
        if self._current.safety_number:
            note += f" Safety number: {self._current.safety_number}."
        return note

    # -- commands -------------------------------------------------------------------------------

    def set_visible(self, visible: bool) -> None:
        """The page was shown or hidden; only a visible page reads (and marks read) the open
        conversation. The list and the unread total stay current either way."""
        if visible == self._visible:
            return
        self._visible = visible
        if visible:
            self.refresh()

    def open(self, peer_id: str) -> None:
        """Show a conversation (and read it, if the page is visible)."""
        if peer_id not in {c.peer_id for c in self._conversations}:
            self.error.emit("That person no longer shares a room with you.")
            return
        self._selected = peer_id
        self.refresh()

    def send(self, text: str) -> bool:
        """Send ``text`` to the open conversation; False (and ``error``) when it was not sent."""
        if self._selected is None:
            self.error.emit("Choose someone to write to first.")
            return False
        recipient = self._contacts.get(self._selected)
        if recipient is None:
            name = self._name_of(self._selected)
            self.error.emit(f"You can write to {name} again once you share a room.")
            return False
        try:
            self._session.workspace.inbox.send(recipient, normalize_text(text))
        except FocusMateError as err:
            self.error.emit(str(err))
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        """Re-read contacts and the conversation list, and the open conversation if the page is
        visible."""
        self._pending.stop()
        workspace = self._session.workspace
        inbox = workspace.inbox
        try:
            self._contacts = workspace.contacts()
            names = self._member_names()
            summaries = inbox.summaries()
            opened = summaries.get(self._selected) if self._selected is not None else None
            if self._visible and self._selected is not None and opened and opened.unread:
                inbox.mark_read(self._selected)  # the engine sends the receipts
                summaries[self._selected] = replace(opened, unread=0)
            now = workspace.now()
            items = []
            for peer in set(self._contacts) | set(summaries):
                summary: ConversationSummary | None = summaries.get(peer)
                last = summary.last if summary is not None else None
                items.append(
                    ConversationItem(
                        peer_id=peer,
                        name=names.get(peer) or _unknown_name(peer),
                        preview=_preview(last) if last else "",
                        time=time_text(last.sent_at, now) if last else "",
                        last_at=last.sent_at if last else 0.0,
                        unread=summary.unread if summary is not None else 0,
                        can_reply=peer in self._contacts,
                    )
                )
                if peer == self._selected:
                    if self._visible:
                        self._open_snapshot(items[-1], inbox.conversation(peer), now)
                    elif self._current is not None and self._current.peer_id != peer:
                        self._set_current(None)  # another one was opened: read when shown
        except FocusMateError as err:
            self.error.emit(str(err))
            return
        items.sort(key=lambda c: (-c.last_at, c.name.casefold(), c.peer_id))
        if self._selected is not None and self._selected not in {i.peer_id for i in items}:
            self._selected = None
            self._set_current(None)
        conversations = tuple(items)
        if conversations != self._conversations:
            self._conversations = conversations
            self.changed.emit()
        total = sum(c.unread for c in conversations)
        if total != self._unread:
            self._unread = total
            self.unreadChanged.emit(total)

    # -- internals ------------------------------------------------------------------------------

    def _open_snapshot(
        self, item: ConversationItem, history: list[DirectMessage], now: float
    ) -> None:
        mine = [m for m in history if m.outgoing]
        shown = {
            m.id for i, m in enumerate(mine) if i == len(mine) - 1 or mine[i + 1].state != m.state
        }
        messages = tuple(
            MessageItem(
                id=m.id,
                text=m.text,
                mine=m.outgoing,
                time=time_text(m.sent_at, now),
                state=m.state,
                state_label=STATE_LABELS.get(m.state, "") if m.outgoing else "",
                show_state=m.id in shown,
            )
            for m in history
        )
        name = item.name
        keys = self._contacts.get(item.peer_id)
        note = (
            f"Messages with {name} are end-to-end encrypted. Only you and {name} can read them;"
            " relays only pass them on."
        )
        number = ""
        if keys is not None:
            number = safety_number(self._session.workspace.identity.public, keys)
        else:
            note += f" You can reply once you share a room with {name} again."
        self._set_current(
            OpenConversation(item.peer_id, name, messages, item.can_reply, note, number)
        )

    def _set_current(self, current: OpenConversation | None) -> None:
        if current != self._current:
            self._current = current
            self.conversationChanged.emit()

    def _on_room_changed(self, room_id: str) -> None:
        """A room's document changed: the list only depends on who is in it."""
        cache = self._session.room_cache
        room = cache.room(room_id)
        if room is None:
            return  # not one of our rooms (any more): roomsChanged says so
        count = cache.member_changes(room)
        if self._members_seen.get(room_id) != count:
            self._members_seen[room_id] = count
            self._pending.start()

    def _member_names(self) -> dict[str, str]:
        """What each person calls themselves in our rooms; a current membership wins."""
        cache = self._session.room_cache
        self._members_seen = {
            room.room_id: cache.member_changes(room) for room in self._session.workspace.rooms()
        }
        return self._session.workspace.member_names()

    def _name_of(self, peer_id: str) -> str:
        return next((c.name for c in self._conversations if c.peer_id == peer_id), peer_id)
