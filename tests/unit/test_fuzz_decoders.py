"""Structured fuzzing of every decoder of untrusted input: valid frames, then mutated.

``test_sync_protocol.py`` throws random bytes at the y-message decoder; random bytes rarely get
past the first var-uint. Here each input starts as a valid frame built by the real encoder (so
the mutation lands deep inside a well-formed structure) and is then truncated, bit-flipped,
spliced, or has one of its var-uints replaced by a huge or overlong one. Every decoder must
either return a value that re-encodes and decodes to itself, or raise its documented error
(``ProtocolError`` for the wire, ``ValidationError`` for invites and adverts) — never anything
else, and never allocate what a claimed length says before checking it is there.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tracemalloc
import unicodedata
import weakref
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from zeroconf import ServiceInfo

from focusmate.document import CrdtDocument, validate_update
from focusmate.errors import ValidationError
from focusmate.identity import Identity
from focusmate.invite import SECRET_BYTES, Invite, parse_invite
from focusmate.store import Store
from sync import control
from sync.discovery import SERVICE_TYPE, parse_advert, parse_txt
from sync.docsync import DocSync, receive_doc_frame
from sync.wire import MAX_VAR_UINT, ProtocolError, write_var_uint
from sync.ysync import (
    AuthDenied,
    AwarenessEntry,
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_message,
)
from tests.pycrdt_panics import EQUIVOCATION, EQUIVOCATION_BASE, panic_type, poison_for

# `make soak` runs these with fresh random draws and FOCUSMATE_FUZZ_SCALE times the examples.
SCALE = int(os.environ.get("FOCUSMATE_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- mutations --------------------------------------------------------------------------------

HUGE_VAR_UINTS = [
    bytes(b"\xff" * 7 + b"\x0f"),  # 2^53 - 1: the largest lib0 accepts
    bytes(b"\x80" * 7 + b"\x10"),  # 2^53: one too many
    bytes(b"\xff" * 9 + b"\x01"),  # 2^64 - 1, in ten bytes
    bytes(b"\x80" * 8 + b"\x00"),  # an overlong zero (nine bytes)
    b"\xff\xff\xff\xff\x0f",  # 2^32 - 1
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # twelve bytes
]


def var_uint_spans(data: bytes) -> list[tuple[int, int]]:
    """Where a var-uint could start and end, at every position (mutations need not be aligned)."""
    spans = []
    for start in range(len(data)):
        end = start
        while end < len(data) and data[end] & 0x80:
            end += 1
        spans.append((start, min(end + 1, len(data))))
    return spans


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    """A valid frame with 1–4 structural mutations."""
    data = bytearray(draw(frames))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "varuint", "splice"]))
        if kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
        elif kind == "delete" and data:
            del data[draw(st.integers(0, len(data) - 1))]
        elif kind == "varuint" and data:
            start, end = draw(st.sampled_from(var_uint_spans(bytes(data))))
            data[start:end] = draw(st.sampled_from(HUGE_VAR_UINTS))
        elif kind == "splice":
            other = draw(frames)
            cut = draw(st.integers(0, len(data)))
            data[cut:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


# -- y-websocket messages ---------------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_LEAF = st.none() | st.booleans() | st.integers() | FINITE | st.text()
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
STATES = st.none() | st.dictionaries(st.text(max_size=10), JSON_VALUE, max_size=5)


def _real_update(seed: int) -> bytes:
    """An update from a real pycrdt edit (text, nested array and map, deletions)."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=seed + 1)
    text = doc.get("t", type=pycrdt.Text)
    text += "focus" * (seed % 3 + 1)
    del text[1:3]
    items = doc.get("a", type=pycrdt.Array)
    items.append(pycrdt.Map({"k": seed, "nested": [1, None, "x"]}))
    doc.get("m", type=pycrdt.Map)["v"] = seed
    return doc.get_update()


REAL_UPDATES = [_real_update(seed) for seed in range(4)]
UPDATES = st.sampled_from(REAL_UPDATES) | st.binary(max_size=40)
MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.builds(SyncStep1, st.sampled_from([pycrdt.get_state(u) for u in REAL_UPDATES])),
    st.builds(SyncStep2, UPDATES),
    st.builds(SyncUpdate, UPDATES),
    st.builds(
        AwarenessMessage,
        st.lists(
            st.builds(
                AwarenessEntry,
                st.integers(0, MAX_VAR_UINT),
                st.integers(0, MAX_VAR_UINT),
                STATES,
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.just(QueryAwareness()),
    st.builds(AuthDenied, st.text(max_size=30)),
)
FRAMES = MESSAGES.map(encode_message)


@settings(FUZZ, max_examples=150 * SCALE)
@given(MESSAGES)
def test_every_y_message_round_trips(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


@settings(FUZZ, max_examples=150 * SCALE)
@given(FRAMES)
def test_every_truncation_of_a_y_message_is_a_protocol_error(frame: bytes) -> None:
    """A cut-off frame never passes for a shorter, different message."""
    for end in range(len(frame)):
        with pytest.raises(ProtocolError):
            decode_message(frame[:end])


@FUZZ
@given(mutated(FRAMES))
def test_a_mutated_y_message_decodes_to_a_message_or_a_protocol_error(frame: bytes) -> None:
    try:
        message = decode_message(frame)
    except ProtocolError:
        return
    # whatever is accepted can be re-encoded (the relay forwards awareness) and means the same
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "state",
    [
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": 1e999}',
        '{"a": ' + "[" * 40 + "]" * 40 + "}",
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"a": 1, "a": 2',
        "[1, 2]",
        '"text"',
    ],
    ids=["nan", "inf", "-inf", "overflow", "nested-40", "nested-100k", "truncated", "list", "str"],
)
def test_hostile_awareness_states_are_protocol_errors(state: str) -> None:
    """A state a JavaScript client could not JSON.parse, or deep enough to exhaust a stack when
    re-encoded, is refused rather than forwarded."""
    entry = bytearray()
    write_var_uint(entry, 1)
    for value in (7, 1):
        write_var_uint(entry, value)
    body = state.encode()
    write_var_uint(entry, len(body))
    entry += body
    frame = bytearray(b"\x01")
    write_var_uint(frame, len(entry))
    frame += entry
    with pytest.raises(ProtocolError, match="awareness"):
        decode_message(bytes(frame), awareness_limits=_roomy())


def _roomy() -> Any:
    from sync.ysync import AwarenessLimits

    return AwarenessLimits(max_entries=64, max_state_bytes=1 << 20)


def test_duplicate_awareness_keys_keep_the_last_and_re_encode() -> None:
    entry = AwarenessEntry(1, 1, {"a": 2})
    frame = encode_message(AwarenessMessage((entry,))).replace(b'{"a":2}', b'{"a":1,"a":2}')
    frame = frame.replace(b"\x07{", b"\x0d{")  # the state's new length: 13 bytes
    frame = frame[:1] + bytes([len(frame) - 2]) + frame[2:]
    assert decode_message(frame) == AwarenessMessage((entry,))


@pytest.mark.parametrize("claimed", [1 << 20, 1 << 40, MAX_VAR_UINT])
@pytest.mark.parametrize("where", ["sync", "awareness", "auth", "doc-frame"])
def test_a_claimed_length_allocates_nothing_before_it_is_checked(where: str, claimed: int) -> None:
    lengths = bytearray()
    write_var_uint(lengths, claimed)
    frames = {
        "sync": b"\x00\x02" + lengths + b"abc",
        "awareness": b"\x01" + lengths + b"abc",
        "auth": b"\x02\x00" + lengths + b"abc",
        "doc-frame": bytes(lengths) + b"abc",
    }
    decode = control.decode_doc_frame if where == "doc-frame" else decode_message
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="exceeds"):
            decode(frames[where])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# -- control messages -------------------------------------------------------------------------

TEXT = st.text(max_size=20)
B64 = st.binary(max_size=48)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JSON_VALUE, max_size=4)
IDS = st.lists(TEXT, max_size=4).map(tuple)
CONTROL_MESSAGES: st.SearchStrategy[control.ControlMessage] = st.one_of(
    st.builds(control.Challenge, B64, TEXT, FINITE),
    st.builds(control.Hello, TEXT, B64, B64, TEXT, B64),
    st.builds(control.Welcome, TEXT, st.integers(), st.integers()),
    st.builds(control.Error, TEXT, TEXT, st.none() | TEXT),
    st.builds(control.Ping, TEXT, FINITE),
    st.builds(control.Pong, TEXT, FINITE, FINITE, FINITE),
    st.builds(control.Subscribe, TEXT, TEXT),
    st.builds(control.Subscribed, TEXT),
    st.builds(control.Unsubscribe, TEXT),
    st.builds(control.TimerRequest, TEXT, TEXT, TEXT),
    st.builds(control.TimerApplied, TEXT, TEXT, JSON_OBJECTS),
    st.builds(control.DmSend, JSON_OBJECTS),
    st.builds(control.DmAccepted, TEXT),
    st.builds(control.DmDeliver, JSON_OBJECTS),
    st.builds(control.Receipt, TEXT, TEXT, TEXT, TEXT, FINITE),
    st.builds(control.DmAck, IDS),
    st.builds(control.DmRead, TEXT, IDS),
    st.builds(control.RoomProofs, IDS),
    st.builds(control.RoomOffers, IDS),
)
HOSTILE_JSON = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "1" * 400,  # an integer beyond a double
        "1" * 5000,  # beyond Python's int parsing limit
        "-0.0",
        "true",
        "null",
        "[]",
        "{}",
        '"\\ud800"',  # a lone surrogate: no UTF-8 form
        '"\\udfff\\ud800"',
        '"' + "x" * 5000 + '"',
        "[" * 50 + "]" * 50,
        "[" * 5000 + "]" * 5000,
        '{"a":' * 40 + "1" + "}" * 40,
        '[{"__proto__": 1}]',
        '"\\u0000"',
    ]
)


@st.composite
def hostile_control_texts(draw: st.DrawFn) -> str:
    """A valid control message with one field (or ``v``/``type``) replaced by hostile JSON, a
    duplicated key, an extra field, or character-level damage."""
    text = control.encode(draw(CONTROL_MESSAGES))
    body = json.loads(text)
    kind = draw(st.sampled_from(["field", "duplicate", "extra", "chars"]))
    if kind == "chars":
        return draw(mutated(st.just(text.encode()))).decode("utf-8", "replace")
    key = draw(st.sampled_from(sorted(body)))
    value = draw(HOSTILE_JSON)
    if kind == "field":
        inner = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in body.items() if k != key)
        return "{" + inner + ("," if inner else "") + f"{json.dumps(key)}:{value}" + "}"
    if kind == "duplicate":  # JSON parsers keep the last: make sure that one is checked too
        return text[:-1] + f",{json.dumps(key)}:{value}" + "}"
    return text[:-1] + f',"{draw(st.text(max_size=5))}":{value}' + "}"


@FUZZ
@given(CONTROL_MESSAGES)
def test_every_control_message_round_trips(message: control.ControlMessage) -> None:
    assert control.decode(control.encode(message)) == message


@FUZZ
@given(hostile_control_texts())
def test_a_hostile_control_message_decodes_and_re_encodes_or_is_a_protocol_error(
    text: str,
) -> None:
    _decodes_and_re_encodes_or_refuses(text)


@FUZZ
@given(mutated(CONTROL_MESSAGES.map(lambda m: control.encode(m).encode())))
def test_mutated_control_bytes_decode_and_re_encode_or_are_a_protocol_error(data: bytes) -> None:
    """Binary frames reach ``decode`` too (and may not be UTF-8 at all)."""
    _decodes_and_re_encodes_or_refuses(data)


def _decodes_and_re_encodes_or_refuses(data: str | bytes) -> None:
    try:
        message = control.decode(data)
    except ProtocolError:  # UnknownMessageType is one
        return
    # what the relay accepts it can send on (to a JavaScript client too): valid UTF-8, no NaN
    again = control.encode(message)
    again.encode("utf-8")
    assert control.decode(again) == message


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"v":1,"type":["ping"]}', "type must be a string"),
        ('{"v":1,"type":{"a":1}}', "type must be a string"),
        ('{"v":true,"type":"subscribed","doc_id":"d"}', "version True"),
        ('{"v":1,"type":"ping","id":"p","t0":' + "9" * 400 + "}", "finite number"),
        ('{"v":1,"type":"subscribed","doc_id":"\\ud800"}', "not valid Unicode"),
        ('{"v":1,"type":"dm_send","envelope":{"a":NaN}}', "NaN or an infinity"),
        ('{"v":1,"type":"dm_send","envelope":{"a":[1e999]}}', "NaN or an infinity"),
        ('{"v":1,"type":"dm_send","envelope":{"\\udc00":1}}', "not valid Unicode"),
        ('{"v":1,"type":"dm_send","envelope":{"a":' + "[" * 40 + "]" * 40 + "}}", "deeper"),
        ('{"v":1,"type":"subscribed","doc_id":"d","\\ud800":1}', "unknown fields"),
    ],
    ids=[
        "type-list",
        "type-object",
        "version-true",
        "huge-integer-float",
        "lone-surrogate",
        "nan-in-object",
        "overflow-in-object",
        "surrogate-key",
        "deep-object",
        "surrogate-field-name",
    ],
)
def test_control_messages_that_could_not_be_forwarded_are_refused(text: str, why: str) -> None:
    """Each of these once decoded and then failed later: a TypeError or OverflowError (a relay
    traceback and 1011 instead of 4400), or a message that could not be re-encoded."""
    with pytest.raises(ProtocolError, match=why) as err:
        control.decode(text)
    str(err.value).encode("utf-8")  # the reason goes into a close frame


# -- document frames --------------------------------------------------------------------------

DOC_IDS = st.text(max_size=control.MAX_DOC_ID) | st.sampled_from(["a" * 32, "", "../x"])
DOC_FRAMES = st.builds(control.encode_doc_frame, DOC_IDS, FRAMES)


@settings(FUZZ, max_examples=150 * SCALE)
@given(DOC_IDS, FRAMES)
def test_doc_frames_round_trip(doc_id: str, payload: bytes) -> None:
    assert control.decode_doc_frame(control.encode_doc_frame(doc_id, payload)) == (doc_id, payload)


@settings(FUZZ, max_examples=150 * SCALE)
@given(mutated(DOC_FRAMES))
def test_a_mutated_doc_frame_is_a_frame_or_a_protocol_error(frame: bytes) -> None:
    try:
        doc_id, payload = control.decode_doc_frame(frame)
    except ProtocolError:
        return
    assert len(doc_id) <= control.MAX_DOC_ID
    # the same meaning once re-encoded (not always the same bytes: like lib0, the decoder takes
    # an overlong var-uint such as 80 80 00 for 0, which is harmless: ids are compared decoded)
    assert control.decode_doc_frame(control.encode_doc_frame(doc_id, payload)) == (doc_id, payload)


@pytest.fixture(scope="module")
def synced_doc(tmp_path_factory: pytest.TempPathFactory) -> CrdtDocument:
    store = Store(tmp_path_factory.mktemp("fuzz") / "profile.db")
    document = CrdtDocument(store, "a" * 32, kind="room", now=1.0)
    with document.edit(now=1.0):
        document.map("m")["kept"] = "yes"
    for update in REAL_UPDATES:  # the clients the mutated updates name are known here
        document.apply_remote(update, origin="link:setup", now=1.0)
    return document


LIVE_FRAMES = st.builds(
    control.encode_doc_frame,
    st.just("a" * 32),
    st.builds(SyncUpdate, st.sampled_from(REAL_UPDATES)).map(encode_message) | FRAMES,
)


@settings(FUZZ, max_examples=300 * SCALE)
@given(mutated(LIVE_FRAMES))
def test_a_mutated_frame_through_a_live_session_is_refused_and_loses_nothing(
    synced_doc: CrdtDocument, frame: bytes
) -> None:
    """The whole receiving path of a LAN or relay link (frame → message → update → document →
    store): a clear error or a change, never another exception, and what was synced stays."""
    session = DocSync(synced_doc, origin="link:fuzz")
    with contextlib.suppress(ProtocolError, ValidationError):
        receive_doc_frame(
            frame, sessions={"a" * 32: session}, now=2.0, on_awareness=lambda *_: None
        )
    assert synced_doc.map("m")["kept"] == "yes"


# -- invites ----------------------------------------------------------------------------------

SECRETS = st.binary(min_size=SECRET_BYTES, max_size=SECRET_BYTES)
RELAY_URLS = st.sampled_from(
    ["ws://127.0.0.1:8765", "wss://relay.example.org/x", "ws://[::1]:9/", "wss://h:443/a?b=c"]
)
NAME_HINTS = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs")), min_size=1, max_size=30
).filter(str.strip)
INVITES = st.builds(
    Invite,
    SECRETS,
    st.none() | NAME_HINTS,
    st.lists(RELAY_URLS, max_size=3, unique=True).map(tuple),
)
INVITE_TEXTS = INVITES.map(lambda invite: invite.link()) | INVITES.map(lambda i: i.code)
INVITE_NOISE = st.sampled_from(
    [*"%&=?#[]@:/\\ \t\n\x00\x1b\u202e\u200b\ud800\ufeff0OIl1-", "%zz", "%ff", "%00", "://"]
)


@st.composite
def mutated_invites(draw: st.DrawFn) -> str:
    text = list(draw(INVITE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "insert", "delete", "replace", "repeat"]))
        at = draw(st.integers(0, len(text)))
        if kind == "truncate":
            del text[at:]
        elif kind == "insert":
            text.insert(at, draw(INVITE_NOISE))
        elif kind == "delete" and at < len(text):
            del text[at]
        elif kind == "replace" and at < len(text):
            text[at] = draw(INVITE_NOISE)
        elif kind == "repeat":
            text[at:at] = text[at : at + 8] * draw(st.integers(1, 300))
    return "".join(text)


@FUZZ
@given(INVITES)
def test_invite_links_and_codes_round_trip(invite: Invite) -> None:
    assert parse_invite(invite.link()) == Invite(
        invite.secret,
        " ".join(invite.name_hint.split()) if invite.name_hint else None,
        invite.relays,
    )
    assert parse_invite(invite.code).secret == invite.secret


@FUZZ
@given(mutated_invites())
# a lone surrogate in a relay hint was accepted, and then the link could not be written out
@example("focusmate://join/0000000-0000000-0000000?relay=ws%3A%2F%2F\ud800127.0.0.1%3A8765")
@example("focusmate://join/0000000-0000000-0000000?name=a\udc00b")
# a hint that grows when quoted again ("%" becomes "%25") made a link too long to be accepted
@example(
    "focusmate://join/0000000-0000000-0000000?relay=ws%3A%2F%2F127.0.0.1"
    + "%7.0.0.1" * 240
    + "%3A8765&relay=wss%3A%2F%2Frelay.example.org%2Fx"
)
def test_a_mutated_invite_is_an_invite_or_a_validation_error(text: str) -> None:
    try:
        invite = parse_invite(text)
    except ValidationError as err:
        message = str(err)  # a message the user can read
        assert message
        return
    assert len(invite.secret) == SECRET_BYTES
    hidden = {"Cc", "Cf", "Cs"}  # escapes, bidi overrides, lone surrogates: nothing hidden
    assert not any(unicodedata.category(c) in hidden for c in invite.name_hint or "")
    assert all(url.startswith(("ws://", "wss://")) for url in invite.relays)
    assert parse_invite(invite.link()) == invite  # what was accepted can be shared on


# -- zeroconf adverts -------------------------------------------------------------------------

USER_ID = Identity.generate().user_id


def _txt(properties: dict[bytes, bytes | None]) -> bytes:
    """TXT rdata as zeroconf writes it for an advert."""
    info = ServiceInfo(SERVICE_TYPE, f"x-0.{SERVICE_TYPE}", port=1, properties=properties)
    return bytes(info.text)


TXTS = st.builds(
    lambda v, extra: _txt({b"id": USER_ID.encode(), b"v": v, **extra}),
    st.sampled_from([b"1", b"2", b"01", b"99999", b"x"]),
    st.dictionaries(
        st.text("abcxyz_-0123456789", min_size=1, max_size=5).map(str.encode),
        st.none() | st.binary(max_size=8),
        max_size=3,
    ),
)
ADDRESSES = st.lists(
    st.sampled_from(["10.0.0.1", "fe80::1%eth0", "::1", "224.0.0.1", "0.0.0.0", "300.1.1.1", ""])
    | st.text(max_size=12),
    max_size=4,
)


@FUZZ
@given(TXTS)
def test_advert_txt_records_round_trip(rdata: bytes) -> None:
    props = parse_txt(rdata)
    assert props["id"] == USER_ID.encode()


@FUZZ
@given(mutated(TXTS), st.integers(-1, 70000), ADDRESSES)
def test_a_mutated_advert_is_an_advert_or_a_validation_error(
    rdata: bytes, port: int, addresses: list[str]
) -> None:
    try:
        advert = parse_advert(f"x-0.{SERVICE_TYPE}", port, rdata, addresses)
    except ValidationError:
        return
    assert advert.user_id == USER_ID
    assert 1 <= advert.port <= 65535
    assert advert.version == 1
    assert advert.addresses and len(set(advert.addresses)) == len(advert.addresses)


# -- Yjs updates that make pycrdt panic -------------------------------------------------------


def test_the_poison_update_really_makes_pycrdt_panic() -> None:
    """The input used below is a genuine Rust panic, which ``except Exception`` misses."""
    panic = panic_type()
    assert panic.__name__ == "PanicException"
    assert not issubclass(panic, Exception)


def _document(tmp_path: Path) -> tuple[CrdtDocument, bytes]:
    """A document with a synced edit, and the poison for the client that made it."""
    store = Store(tmp_path / "profile.db")
    document = CrdtDocument(store, "b" * 32, kind="room", now=1.0)
    with document.edit(now=1.0):
        document.map("m")["synced"] = "before"
    return document, poison_for(document.doc.client_id)


def test_a_panicking_update_is_refused_by_validation() -> None:
    with pytest.raises(ValidationError, match="holds no changes"):
        validate_update(poison_for(42))


def test_a_panicking_update_from_a_peer_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    document, poison = _document(tmp_path)
    session = DocSync(document, origin="link:peer")
    log_before = document.store.read_log(document.doc_id, after_seq=0).updates

    with pytest.raises(ValidationError, match="no changes"):
        session.receive(SyncUpdate(poison), now=2.0)

    assert document.map("m").to_py() == {"synced": "before"}
    assert document.store.read_log(document.doc_id, after_seq=0).updates == log_before
    # the session goes on: a good update from the same peer still lands
    other: pycrdt.Doc[Any] = pycrdt.Doc(client_id=7)
    other.apply_update(document.encode_update())
    other.get("m", type=pycrdt.Map)["after"] = "yes"
    session.receive(SyncUpdate(other.get_update(document.state_vector())), now=3.0)
    assert document.map("m").to_py() == {"synced": "before", "after": "yes"}


def test_a_panic_past_validation_is_contained_and_nothing_is_persisted(tmp_path: Path) -> None:
    """The real document's apply is the last line: the panic becomes a ValidationError, the
    document is reloaded from the store, and the update never reaches the disk or a listener."""
    document, _ = _document(tmp_path)
    document.apply_remote(EQUIVOCATION_BASE, origin="link:peer", now=2.0)
    validate_update(EQUIVOCATION)  # passes: the panic needs the document's state
    heard: list[bytes] = []
    document.on_change(lambda update, origin: heard.append(update))
    log_before = document.store.read_log(document.doc_id, after_seq=0).updates

    with pytest.raises(ValidationError, match="could not be applied"):
        DocSync(document, origin="link:peer").receive(SyncUpdate(EQUIVOCATION), now=3.0)

    assert document.store.read_log(document.doc_id, after_seq=0).updates == log_before
    assert EQUIVOCATION not in heard  # nobody was told (or would forward) it
    assert document.map("m").get("synced") == "before"
    with document.edit(now=4.0):
        document.map("m")["still"] = "editable"
    reopened = CrdtDocument(document.store, document.doc_id, kind="room", now=5.0)
    assert reopened.map("m").get("still") == "editable"


def test_a_panic_applying_to_a_gapless_document_is_contained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same last line without a gap open: validation is switched off so the 5-byte poison
    reaches the real apply, which panics; the document reloads and the disk never sees it."""
    document, poison = _document(tmp_path)
    monkeypatch.setattr("focusmate.document.validate_update", lambda update: None)
    log_before = document.store.read_log(document.doc_id, after_seq=0).updates

    with pytest.raises(ValidationError, match="could not be applied"):
        document.apply_remote(poison, origin="link:peer", now=2.0)

    assert document.store.read_log(document.doc_id, after_seq=0).updates == log_before
    assert document.map("m").to_py() == {"synced": "before"}
    with document.edit(now=3.0):
        document.map("m")["still"] = "editable"
    assert document.map("m").to_py() == {"synced": "before", "still": "editable"}


def test_a_state_vector_that_panics_is_a_protocol_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No natural panicking state vector was found (mutated ones raise ValueError), so the
    real PanicException type is raised from ``encode_update``."""
    document, _ = _document(tmp_path)
    panic = panic_type()

    def panics(since_state: bytes | None = None) -> bytes:
        raise panic("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(document, "encode_update", panics)
    session = DocSync(document, origin="link:peer")
    with pytest.raises(ProtocolError, match="malformed state vector"):
        session.receive(SyncStep1(b"\x01\x2a\xff\xff\xff\xff\x0f"), now=2.0)
    assert document.map("m").to_py() == {"synced": "before"}


def test_a_panic_escaping_another_document_type_becomes_a_protocol_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DocSync takes any SyncableDocument: a panic one lets through closes the link cleanly
    (ProtocolError), never kills the link's task."""
    document, _ = _document(tmp_path)
    panic = panic_type()

    def panics(update: bytes, *, origin: str, now: float) -> bool:
        raise panic("index out of bounds")

    monkeypatch.setattr(document, "apply_remote", panics)
    with pytest.raises(ProtocolError, match="could not be applied"):
        DocSync(document, origin="link:peer").receive(SyncUpdate(b"\x01\x02"), now=2.0)


@FUZZ
@given(mutated(st.sampled_from([*REAL_UPDATES, poison_for(1), poison_for(3)])))
def test_a_mutated_update_is_applied_or_refused_never_a_panic(
    synced_doc: CrdtDocument, update: bytes
) -> None:
    """Against a document that holds real edits of the clients the updates name."""
    with contextlib.suppress(ValidationError):
        synced_doc.apply_remote(update, origin="link:fuzz", now=2.0)
    assert synced_doc.map("m")["kept"] == "yes"


def test_a_contained_panic_leaves_no_copy_of_the_document_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Containment reloads the document from the store; the replaced pycrdt document must be
    freed (an observed one is not, unless unobserved: each contained panic leaked a whole copy,
    1.2 MiB for a 100 KB room). A stream of hostile updates must not grow memory."""
    document, poison = _document(tmp_path)
    monkeypatch.setattr("focusmate.document.validate_update", lambda update: None)
    replaced = weakref.ref(document.doc)

    with pytest.raises(ValidationError):
        document.apply_remote(poison, origin="link:peer", now=2.0)

    assert document.doc is not replaced()
    gc.collect()
    assert replaced() is None
