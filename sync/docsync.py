"""One document over one link: the y-sync exchange as a state machine, with no I/O.

Feed it the messages that arrive (:meth:`DocSync.receive`) and the local changes
(:meth:`DocSync.local_update`); it returns the y-websocket messages to send. Rules:

* On start each side sends sync step 1 (its state vector); each answers the other's with sync
  step 2 (what the other lacks). After that, live updates flow both ways.
* A remote update is handed to the document, which validates and *persists* it before anything
  else sees it (``CrdtDocument.apply_remote``); a malformed one raises ValidationError and the
  link closes. pycrdt panics (``PanicException``, a BaseException) on some hostile updates and
  state vectors: one that gets this far becomes a ProtocolError, never a dead link task.
* ``synced`` becomes true when the peer's step 2 has been applied: from then on this side holds
  everything the peer had when it answered.
* Updates that came from this link are not sent back to it (``origin`` tells them apart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

from sync import control
from sync.wire import ProtocolError
from sync.ysync import (
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_message,
)

EMPTY_UPDATE = b"\x00\x00"
# What "contain a pycrdt panic" (pyo3's PanicException, a BaseException) must never swallow.
_NOT_CONTAINED = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


class SyncableDocument(Protocol):
    """What a link needs of a document (``focusmate.document.CrdtDocument`` is one)."""

    doc_id: str

    def state_vector(self) -> bytes: ...

    def encode_update(self, since_state: bytes | None = None) -> bytes: ...

    def apply_remote(self, update: bytes, *, origin: str, now: float) -> bool: ...


class DocSync:
    def __init__(self, document: SyncableDocument, *, origin: str) -> None:
        self.document = document
        self.origin = origin  # how this link's updates are labelled in the store
        self.synced = False

    def start(self) -> list[bytes]:
        return [encode_message(SyncStep1(self.document.state_vector()))]

    def receive(self, message: Message, *, now: float) -> list[bytes]:
        """Handle one message from the peer; returns the replies. Awareness is not handled
        here (see sync.presence)."""
        if isinstance(message, SyncStep1):
            try:
                diff = self.document.encode_update(message.state_vector)
            except BaseException as err:  # pycrdt raises ValueError, or panics on garbage
                if isinstance(err, _NOT_CONTAINED):
                    raise
                raise ProtocolError("malformed state vector") from None
            return [encode_message(SyncStep2(diff))]
        if isinstance(message, SyncStep2 | SyncUpdate):
            if message.update != EMPTY_UPDATE:
                try:
                    self.document.apply_remote(message.update, origin=self.origin, now=now)
                except Exception:
                    raise  # ValidationError for a bad update; StoreError is not the peer's fault
                except BaseException as err:  # a Rust panic the document let through
                    if isinstance(err, _NOT_CONTAINED):
                        raise
                    raise ProtocolError(f"the update could not be applied: {err}") from None
            if isinstance(message, SyncStep2):
                self.synced = True
            return []
        if isinstance(message, AwarenessMessage | QueryAwareness):
            return []
        return []  # AuthDenied: the link layer decides

    def local_update(self, update: bytes, *, origin: str) -> bytes | None:
        """The message carrying a change of the document to this peer, or None when the
        change came from this very link."""
        if origin == self.origin or update == EMPTY_UPDATE:
            return None
        return encode_message(SyncUpdate(update))


def receive_doc_frame(
    frame: bytes,
    *,
    sessions: Mapping[str, DocSync],
    now: float,
    on_awareness: Callable[[str, AwarenessMessage], None],
) -> tuple[str, list[bytes], bool]:
    """Route one document frame of a control channel (``varString(doc_id) || y-message``).

    Returns the document id, the reply frames to send, and whether the document became synced
    with this frame. Frames for documents without a session (not shared, or just left) are
    ignored; awareness goes to ``on_awareness``.
    """
    doc_id, payload = control.decode_doc_frame(frame)
    sync = sessions.get(doc_id)
    if sync is None:
        return doc_id, [], False
    message = decode_message(payload)
    if isinstance(message, AwarenessMessage):
        on_awareness(doc_id, message)
        return doc_id, [], False
    was_synced = sync.synced
    replies = [control.encode_doc_frame(doc_id, reply) for reply in sync.receive(message, now=now)]
    return doc_id, replies, sync.synced and not was_synced
