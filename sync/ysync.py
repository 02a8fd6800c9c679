"""The y-websocket protocol (y-protocols ``sync`` and ``awareness``) as data: decode and encode.

One websocket message is one protocol message::

    message         = varUint(type) payload
    type 0 (sync)   = varUint(step) varBytes      step 0: state vector (sync step 1)
                                                  step 1: update answering step 1 (sync step 2)
                                                  step 2: update (a live edit)
    type 1 (awareness)        = varBytes(awareness update)
    type 2 (auth)             = varUint(0) varString(reason)      permission denied
    type 3 (query awareness)  = (empty)

    awareness update = varUint(count) { varUint(client id) varUint(clock) varString(JSON state) }

Decoding is strict: unknown types, truncation, trailing bytes, bad UTF-8 or JSON all raise
:class:`~sync.wire.ProtocolError`. Updates stay opaque bytes here; whether one is a valid Yjs
update is checked where it is applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sync.control import check_json_value
from sync.wire import Decoder, ProtocolError, write_var_bytes, write_var_string, write_var_uint


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncStep(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """ "Here is what I have": a state vector; the answer is a SyncStep2 with the rest."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's presence; ``state`` None means the client left."""

    client_id: int
    clock: int
    state: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    entries: tuple[AwarenessEntry, ...]


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class AuthDenied:
    reason: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness | AuthDenied


@dataclass(frozen=True, slots=True)
class AwarenessLimits:
    """Bounds on an untrusted awareness update (presence is small; anything big is abuse)."""

    max_entries: int = 64
    max_state_bytes: int = 8 * 1024


DEFAULT_AWARENESS_LIMITS = AwarenessLimits()


def decode_message(
    data: bytes, *, awareness_limits: AwarenessLimits = DEFAULT_AWARENESS_LIMITS
) -> Message:
    decoder = Decoder(data)
    kind = decoder.read_var_uint()
    message: Message
    if kind == MessageType.SYNC:
        step = decoder.read_var_uint()
        payload = decoder.read_var_bytes()
        if step == SyncStep.STEP1:
            message = SyncStep1(payload)
        elif step == SyncStep.STEP2:
            message = SyncStep2(payload)
        elif step == SyncStep.UPDATE:
            message = SyncUpdate(payload)
        else:
            raise ProtocolError(f"unknown sync step {step}")
    elif kind == MessageType.AWARENESS:
        message = decode_awareness(decoder.read_var_bytes(), limits=awareness_limits)
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MessageType.AUTH:
        if decoder.read_var_uint() != 0:
            raise ProtocolError("unknown auth message")
        message = AuthDenied(decoder.read_var_string())
    else:
        raise ProtocolError(f"unknown message type {kind}")
    decoder.expect_end()
    return message


def decode_awareness(
    payload: bytes, *, limits: AwarenessLimits = DEFAULT_AWARENESS_LIMITS
) -> AwarenessMessage:
    decoder = Decoder(payload)
    count = decoder.read_var_uint()
    if count > limits.max_entries:
        raise ProtocolError(f"awareness update with {count} entries (limit {limits.max_entries})")
    entries = []
    for _ in range(count):
        client_id = decoder.read_var_uint()
        clock = decoder.read_var_uint()
        raw = decoder.read_var_bytes()
        if len(raw) > limits.max_state_bytes:
            raise ProtocolError(f"awareness state of {len(raw)} bytes is too large")
        entries.append(AwarenessEntry(client_id, clock, _parse_state(raw)))
    decoder.expect_end()
    return AwarenessMessage(tuple(entries))


def _parse_state(raw: bytes) -> dict[str, Any] | None:
    """Strict JSON (no NaN, no deep nesting): the relay forwards a state as it came, and a
    JavaScript client's ``JSON.parse`` throws on ``NaN``. Lone surrogates pass, as
    ``JSON.stringify`` writes them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("awareness state is not JSON") from None
    try:
        state = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("awareness state is not JSON") from None
    check_json_value(state, what="awareness state", unicode_only=False)
    if state is not None and not isinstance(state, dict):
        raise ProtocolError("awareness state must be a JSON object or null")
    return state


def encode_message(message: Message) -> bytes:
    out = bytearray()
    if isinstance(message, SyncStep1 | SyncStep2 | SyncUpdate):
        write_var_uint(out, MessageType.SYNC)
        if isinstance(message, SyncStep1):
            write_var_uint(out, SyncStep.STEP1)
            write_var_bytes(out, message.state_vector)
        else:
            step = SyncStep.STEP2 if isinstance(message, SyncStep2) else SyncStep.UPDATE
            write_var_uint(out, step)
            write_var_bytes(out, message.update)
    elif isinstance(message, AwarenessMessage):
        write_var_uint(out, MessageType.AWARENESS)
        write_var_bytes(out, encode_awareness(message.entries))
    elif isinstance(message, QueryAwareness):
        write_var_uint(out, MessageType.QUERY_AWARENESS)
    else:
        write_var_uint(out, MessageType.AUTH)
        write_var_uint(out, 0)
        write_var_string(out, message.reason)
    return bytes(out)


def encode_awareness(entries: tuple[AwarenessEntry, ...] | list[AwarenessEntry]) -> bytes:
    out = bytearray()
    write_var_uint(out, len(entries))
    for entry in entries:
        write_var_uint(out, entry.client_id)
        write_var_uint(out, entry.clock)
        write_var_string(out, json.dumps(entry.state, separators=(",", ":"), allow_nan=False))
    return bytes(out)


def update_message(update: bytes) -> bytes:
    """The bytes of a live-update message, built once and sent to every subscriber."""
    return encode_message(SyncUpdate(update))
