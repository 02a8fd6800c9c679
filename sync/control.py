"""The control channel: what Yjs does not carry, as versioned, frozen messages.

A control connection (``/v1`` on a relay, and every LAN link) carries two kinds of websocket
message:

* **text** frames: one JSON object ``{"v": 1, "type": "<name>", ...fields}`` — a message below;
* **binary** frames: ``varString(doc_id) || y-websocket message`` — document sync for one of the
  documents the connection subscribed to (see :func:`encode_doc_frame`).

Every message class lists its fields once; :func:`encode` and :func:`decode` are the single
codec. Decoding is strict (exact field set, exact types, size-bounded), so a peer learns what it
got wrong from the :class:`ProtocolError` text, and a future version can add message types
without old peers mistaking them. ``bytes`` fields travel as unpadded URL-safe base64.
``docs/protocol.md`` documents every message and the order they come in.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Union

from focusmate.errors import ValidationError
from focusmate.identity import b64url_decode, b64url_encode
from sync.wire import Decoder, ProtocolError, write_var_bytes, write_var_string

VERSION = 1
MAX_TEXT_FIELD = 4096
MAX_LIST_ITEMS = 256
MAX_DOC_ID = 128
MAX_JSON_DEPTH = 32  # deeper nesting is abuse: re-encoding it could exhaust the stack


class CloseCode(IntEnum):
    """Websocket close codes; the close reason says what was wrong in words. (Refusals before
    the upgrade — relay full, too many connections, too many failed logins — are HTTP 503/429.)"""

    NORMAL = 1000
    GOING_AWAY = 1001  # the relay is shutting down: reconnect (elsewhere) with backoff
    TOO_BIG = 1009  # a frame over the relay's max_frame_bytes
    INTERNAL = 1011  # e.g. the relay could not store an update: reconnect to resync
    TRY_AGAIN = 1013  # the relay cannot reach its storage (Redis) for now: reconnect with backoff
    BAD_FRAME = 4400  # malformed frame or message, or an invalid document update
    UNAUTHORIZED = 4401  # failed handshake or token
    NOT_FOUND = 4404  # malformed document id
    HANDSHAKE_TIMEOUT = 4408
    SLOW_CONSUMER = 4409  # the connection did not read what it was sent


class UnknownMessageType(ProtocolError):
    """A well-formed message of a type this version does not know: answered with an error, not
    a closed connection, so newer peers can probe for features."""


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """Server → client, first message: sign this nonce (with the address you dialled)."""

    TYPE: ClassVar[str] = "challenge"
    nonce: bytes
    server: str
    time: float


@dataclass(frozen=True)
class Hello:
    """Client → server: who I am, proven by a signature over the challenge (sync.handshake)."""

    TYPE: ClassVar[str] = "hello"
    user_id: str
    sign_public: bytes
    box_public: bytes
    address: str
    signature: bytes


@dataclass(frozen=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    user_id: str
    max_frame: int
    max_docs: int


@dataclass(frozen=True)
class Error:
    """A request failed; ``ref`` names the request's id when it had one. Not fatal."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    ref: str | None = None


@dataclass(frozen=True)
class Ping:
    """NTP-style clock probe: ``t0`` is the sender's clock when sent."""

    TYPE: ClassVar[str] = "ping"
    id: str
    t0: float


@dataclass(frozen=True)
class Pong:
    """``t1``: the responder's clock on receipt, ``t2``: on reply (see sync.clock)."""

    TYPE: ClassVar[str] = "pong"
    id: str
    t0: float
    t1: float
    t2: float


@dataclass(frozen=True)
class Subscribe:
    TYPE: ClassVar[str] = "subscribe"
    doc_id: str
    token: str


@dataclass(frozen=True)
class Subscribed:
    TYPE: ClassVar[str] = "subscribed"
    doc_id: str


@dataclass(frozen=True)
class Unsubscribe:
    TYPE: ClassVar[str] = "unsubscribe"
    doc_id: str


@dataclass(frozen=True)
class TimerRequest:
    """Ask the host (a relay) to apply a timer command with its own clock."""

    TYPE: ClassVar[str] = "timer"
    id: str
    doc_id: str
    command: str


@dataclass(frozen=True)
class TimerApplied:
    """The command took effect; the new state also arrives as a document update."""

    TYPE: ClassVar[str] = "timer_applied"
    ref: str
    doc_id: str
    state: dict[str, Any]


@dataclass(frozen=True)
class DmSend:
    """A sealed envelope (focusmate.dm) for the relay to deliver or keep until it can."""

    TYPE: ClassVar[str] = "dm_send"
    envelope: dict[str, Any]


@dataclass(frozen=True)
class DmAccepted:
    """The relay has committed the envelope to its mailbox (or delivered it)."""

    TYPE: ClassVar[str] = "dm_accepted"
    id: str


@dataclass(frozen=True)
class DmDeliver:
    TYPE: ClassVar[str] = "dm"
    envelope: dict[str, Any]


@dataclass(frozen=True)
class Receipt:
    """``kind`` "delivered" (the recipient acknowledged) or "read"; acknowledged like a DM."""

    TYPE: ClassVar[str] = "receipt"
    id: str
    message_id: str
    kind: str
    by: str
    at: float


@dataclass(frozen=True)
class DmAck:
    """Recipient → relay: these mailbox items (DMs or receipts) are safe on my disk."""

    TYPE: ClassVar[str] = "dm_ack"
    ids: tuple[str, ...]


@dataclass(frozen=True)
class DmRead:
    """Recipient → relay: tell ``sender`` I have read these messages."""

    TYPE: ClassVar[str] = "dm_read"
    sender: str
    message_ids: tuple[str, ...]


@dataclass(frozen=True)
class RoomProofs:
    """LAN peer → peer, after the mutual handshake: one HMAC per room I hold, keyed by the room
    secret over the other side's nonce (``focusmate.invite.membership_proof``). Room ids are
    not sent: the other side matches the proofs against its own rooms."""

    TYPE: ClassVar[str] = "room_proofs"
    proofs: tuple[str, ...]


@dataclass(frozen=True)
class RoomOffers:
    """LAN peer → peer, after the handshake and whenever it changes: the invite links of the
    rooms the sender chose to offer to people on its network (every earlier offer is replaced;
    an empty list withdraws them). Offering a room is handing out its invite: the user opts in
    per room."""

    TYPE: ClassVar[str] = "room_offers"
    offers: tuple[str, ...]


ControlMessage = Union[  # noqa: UP007 - a runtime value, iterated below
    Challenge,
    Hello,
    Welcome,
    Error,
    Ping,
    Pong,
    Subscribe,
    Subscribed,
    Unsubscribe,
    TimerRequest,
    TimerApplied,
    DmSend,
    DmAccepted,
    DmDeliver,
    Receipt,
    DmAck,
    DmRead,
    RoomProofs,
    RoomOffers,
]
_BY_TYPE: dict[str, type[Any]] = {cls.TYPE: cls for cls in typing.get_args(ControlMessage)}
_HINTS: dict[type[Any], dict[str, Any]] = {
    cls: typing.get_type_hints(cls) for cls in _BY_TYPE.values()
}


# -- codec ------------------------------------------------------------------------------------


def encode(message: ControlMessage) -> str:
    body: dict[str, Any] = {"v": VERSION, "type": message.TYPE}
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if isinstance(value, bytes):
            value = b64url_encode(value)
        elif isinstance(value, tuple):
            value = list(value)
        body[field.name] = value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode(text: str | bytes) -> ControlMessage:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ProtocolError("control message is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("control message must be a JSON object")
    version = body.get("v")
    if type(version) is not int or version != VERSION:
        raise ProtocolError(f"unsupported control protocol version {version!r}"[:200])
    kind = body.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("control message type must be a string")
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise UnknownMessageType(f"unknown control message type {kind!r}"[:200])
    hints = _HINTS[cls]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(body) - set(fields) - {"v", "type"}
    if unknown:
        names = sorted(name.encode("utf-8", "backslashreplace").decode() for name in unknown)
        raise ProtocolError(f"{cls.TYPE}: unknown fields {names}"[:200])
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in body:
            if field.default is dataclasses.MISSING:
                raise ProtocolError(f"{cls.TYPE}: missing field {name!r}")
            continue
        values[name] = _check(body[name], hints[name], f"{cls.TYPE}.{name}")
    message: ControlMessage = cls(**values)
    return message


def check_json_value(value: Any, *, what: str, unicode_only: bool = True) -> None:
    """Refuse JSON that not every parser reads back the same way, so whatever we accept can be
    re-encoded and forwarded (to a JavaScript client, say) without failing: NaN and infinities,
    nesting deeper than :data:`MAX_JSON_DEPTH`, and (when ``unicode_only``) strings holding lone
    surrogates, which have no UTF-8 form. Iterative, so no input can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ProtocolError(f"{what} holds NaN or an infinity")
        elif isinstance(item, str):
            if unicode_only and not _is_unicode(item):
                raise ProtocolError(f"{what} holds a string that is not valid Unicode")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ProtocolError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (hint,) = [option for option in options if option is not type(None)]
        origin = typing.get_origin(hint)
    if hint is str:
        if not isinstance(value, str) or len(value) > MAX_TEXT_FIELD:
            raise ProtocolError(f"{where} must be a string of at most {MAX_TEXT_FIELD} characters")
        if not _is_unicode(value):
            raise ProtocolError(f"{where} is not valid Unicode")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{where} must be a number")
        try:
            number = float(value)  # an integer beyond a double's range overflows
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ProtocolError(f"{where} must be a finite number")
        return number
    if hint is bytes:
        if not isinstance(value, str) or len(value) > MAX_TEXT_FIELD:
            raise ProtocolError(f"{where} must be URL-safe base64")
        try:
            return b64url_decode(value, what=where)
        except ValidationError as err:
            raise ProtocolError(str(err)) from None
    if origin is tuple:
        if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
            raise ProtocolError(f"{where} must be a list of at most {MAX_LIST_ITEMS} items")
        (item_hint, _) = typing.get_args(hint)
        return tuple(_check(item, item_hint, where) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where} must be a JSON object")
        check_json_value(value, what=where)
        return value
    raise TypeError(f"unsupported field type {hint!r} at {where}")  # a bug in this module


# -- document frames --------------------------------------------------------------------------


def encode_doc_frame(doc_id: str, ymessage: bytes) -> bytes:
    out = bytearray()
    write_var_string(out, doc_id)
    out += ymessage
    return bytes(out)


def decode_doc_frame(data: bytes) -> tuple[str, bytes]:
    decoder = Decoder(data)
    doc_id = decoder.read_var_string()
    if len(doc_id) > MAX_DOC_ID:
        raise ProtocolError("document id too long")
    return doc_id, decoder.read_rest()


def doc_frame_prefix(doc_id: str) -> bytes:
    """The prefix of every frame for ``doc_id``; cached by senders that fan out many frames."""
    out = bytearray()
    write_var_bytes(out, doc_id.encode("utf-8"))
    return bytes(out)
