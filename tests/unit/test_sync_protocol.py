"""The sans-I/O protocol codecs: lib0 primitives, y-websocket messages, control messages."""

from __future__ import annotations

import dataclasses
import json

import pycrdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusmate.identity import Identity
from sync import control, handshake
from sync.clock import ClockSample, OffsetEstimator
from sync.wire import MAX_VAR_UINT, Decoder, ProtocolError, write_var_bytes, write_var_uint
from sync.ysync import (
    AuthDenied,
    AwarenessEntry,
    AwarenessLimits,
    AwarenessMessage,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_message,
)


@given(st.integers(min_value=0, max_value=MAX_VAR_UINT))
def test_var_uint_round_trips(value: int) -> None:
    out = bytearray()
    write_var_uint(out, value)
    decoder = Decoder(bytes(out))
    assert decoder.read_var_uint() == value
    decoder.expect_end()


def test_var_uint_matches_lib0_bytes() -> None:
    out = bytearray()
    write_var_uint(out, 300)
    assert bytes(out) == b"\xac\x02"
    assert bytes(out) == pycrdt.write_var_uint(300)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\xff" * 9, "too long"),
        (b"\xff\xff\xff\xff\xff\xff\xff\x7f", "out of range"),
    ],
)
def test_malformed_var_uints_are_protocol_errors(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        Decoder(data).read_var_uint()


def test_a_declared_length_beyond_the_frame_is_refused_before_allocating() -> None:
    out = bytearray()
    write_var_uint(out, 1 << 40)
    with pytest.raises(ProtocolError, match="exceeds"):
        Decoder(bytes(out) + b"abc").read_var_bytes()


def test_strings_must_be_utf8() -> None:
    out = bytearray()
    write_var_bytes(out, b"\xff\xfe")
    with pytest.raises(ProtocolError, match="UTF-8"):
        Decoder(bytes(out)).read_var_string()


MESSAGES = [
    SyncStep1(b"\x00"),
    SyncStep2(b"\x00\x00"),
    SyncUpdate(b"\x01\x02\x03"),
    AwarenessMessage((AwarenessEntry(5, 2, {"name": "Ann"}), AwarenessEntry(6, 3, None))),
    QueryAwareness(),
    AuthDenied("no"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_y_messages_round_trip(message: object) -> None:
    assert decode_message(encode_message(message)) == message  # type: ignore[arg-type]


def test_messages_from_pycrdt_decode_as_yjs_defines_them() -> None:
    doc = pycrdt.Doc()
    doc.get("m", type=pycrdt.Map)["k"] = 1
    assert decode_message(pycrdt.create_sync_message(doc)) == SyncStep1(doc.get_state())
    update = doc.get_update()
    assert decode_message(pycrdt.create_update_message(update)) == SyncUpdate(update)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x09", b"\x00\x07\x00", b"\x00\x00\x05ab", b"\x03\x00", b"\x02\x01\x00"],
)
def test_malformed_y_messages_are_protocol_errors(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(frame)


def _awareness_frame(count: int, state: str) -> bytes:
    payload = bytearray()
    write_var_uint(payload, count)
    for i in range(count):
        write_var_uint(payload, i)
        write_var_uint(payload, 1)
        body = state.encode()
        write_var_uint(payload, len(body))
        payload += body
    frame = bytearray(b"\x01")
    write_var_bytes(frame, bytes(payload))
    return bytes(frame)


def test_awareness_limits_bound_entries_and_state_size() -> None:
    limits = AwarenessLimits(max_entries=4, max_state_bytes=100)
    assert len(decode_message(_awareness_frame(4, "{}"), awareness_limits=limits).entries) == 4  # type: ignore[union-attr]
    with pytest.raises(ProtocolError, match="entries"):
        decode_message(_awareness_frame(5, "{}"), awareness_limits=limits)
    with pytest.raises(ProtocolError, match="too large"):
        decode_message(_awareness_frame(1, json.dumps({"x": "y" * 200})), awareness_limits=limits)
    for bad in ("[1]", "not json", "1"):
        with pytest.raises(ProtocolError):
            decode_message(_awareness_frame(1, bad))


@given(st.binary(max_size=64))
def test_random_bytes_decode_to_a_message_or_a_protocol_error(data: bytes) -> None:
    try:
        message = decode_message(data)
    except ProtocolError:
        return
    assert decode_message(encode_message(message)) == message


# -- control messages -------------------------------------------------------------------------

CONTROL_EXAMPLES: list[control.ControlMessage] = [
    control.Challenge(nonce=b"n" * 32, server="focusmate-relay/0.1.0", time=1.5),
    control.Welcome(user_id="u", max_frame=10, max_docs=2),
    control.Error(code="x", message="y"),
    control.Error(code="x", message="y", ref="r"),
    control.Ping(id="1", t0=2.0),
    control.Pong(id="1", t0=2.0, t1=3.0, t2=3.5),
    control.Subscribe(doc_id="d", token="t"),
    control.TimerRequest(id="1", doc_id="d", command="start"),
    control.TimerApplied(ref="1", doc_id="d", state={"status": "running"}),
    control.DmSend(envelope={"id": "x"}),
    control.DmAck(ids=("a", "b")),
    control.DmRead(sender="s", message_ids=("m",)),
    control.Receipt(id="r", message_id="m", kind="read", by="u", at=1.0),
]


@pytest.mark.parametrize("message", CONTROL_EXAMPLES, ids=lambda m: m.TYPE)
def test_control_messages_round_trip(message: control.ControlMessage) -> None:
    text = control.encode(message)
    assert json.loads(text)["v"] == control.VERSION
    assert control.decode(text) == message


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("[]", "JSON object"),
        ("nope", "not JSON"),
        ('{"v": 2, "type": "ping", "id": "1", "t0": 1}', "version"),
        ('{"v": 1, "type": "launch"}', "unknown control message type"),
        ('{"v": 1, "type": "ping", "id": "1"}', "missing field 't0'"),
        ('{"v": 1, "type": "ping", "id": "1", "t0": 1, "extra": 1}', "unknown fields"),
        ('{"v": 1, "type": "ping", "id": 5, "t0": 1}', "must be a string"),
        ('{"v": 1, "type": "ping", "id": "1", "t0": true}', "must be a number"),
        ('{"v": 1, "type": "dm_ack", "ids": "abc"}', "must be a list"),
        ('{"v": 1, "type": "dm_ack", "ids": [1]}', "must be a string"),
        ('{"v": 1, "type": "challenge", "nonce": "!!", "server": "s", "time": 1}', "base64"),
        ('{"v": 1, "type": "dm_send", "envelope": []}', "JSON object"),
    ],
)
def test_malformed_control_messages_say_what_is_wrong(body: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        control.decode(body)


def test_control_lists_and_strings_are_bounded() -> None:
    too_many = json.dumps({"v": 1, "type": "dm_ack", "ids": ["a"] * (control.MAX_LIST_ITEMS + 1)})
    with pytest.raises(ProtocolError, match="at most"):
        control.decode(too_many)
    too_long = json.dumps({"v": 1, "type": "ping", "id": "x" * 5000, "t0": 1})
    with pytest.raises(ProtocolError, match="at most"):
        control.decode(too_long)


def test_doc_frames_carry_the_document_id() -> None:
    frame = control.encode_doc_frame("abc", b"\x00\x00\x01\x00")
    assert frame.startswith(control.doc_frame_prefix("abc"))
    assert control.decode_doc_frame(frame) == ("abc", b"\x00\x00\x01\x00")
    with pytest.raises(ProtocolError):
        control.decode_doc_frame(b"\x05ab")


# -- handshake and clock ----------------------------------------------------------------------


def _challenge() -> control.Challenge:
    return control.Challenge(nonce=handshake.new_nonce(), server="s", time=0.0)


def test_handshake_proves_the_identity_for_this_address() -> None:
    me = Identity.generate()
    challenge = _challenge()
    hello = handshake.answer(me, challenge, address="wss://Relay.Example.org/")
    proven = handshake.check(
        hello, nonce=challenge.nonce, addresses=frozenset({"wss://relay.example.org"})
    )
    assert proven == me.public


def test_handshake_refuses_another_address_nonce_or_key() -> None:
    me, other = Identity.generate(), Identity.generate()
    challenge = _challenge()
    hello = handshake.answer(me, challenge, address="ws://a")
    addresses = frozenset({"ws://a"})
    with pytest.raises(Exception, match="not this server"):
        handshake.check(hello, nonce=challenge.nonce, addresses=frozenset({"ws://b"}))
    with pytest.raises(Exception, match="does not verify"):
        handshake.check(hello, nonce=handshake.new_nonce(), addresses=addresses)
    swapped = dataclasses.replace(hello, sign_public=other.public.sign_public)
    with pytest.raises(Exception, match="does not match"):
        handshake.check(swapped, nonce=challenge.nonce, addresses=addresses)
    claimed = dataclasses.replace(
        hello, user_id=other.user_id, sign_public=other.public.sign_public
    )
    with pytest.raises(Exception, match="does not verify"):
        handshake.check(claimed, nonce=challenge.nonce, addresses=addresses)


def test_clock_samples_follow_the_ntp_formulas() -> None:
    # their clock is 10 s ahead; 40 ms there, 60 ms back, 5 ms of processing
    sample = ClockSample.from_times(100.0, 110.04, 110.045, 100.105)
    assert sample.delay == pytest.approx(0.1)
    assert sample.offset == pytest.approx(9.99)


def test_the_estimator_trusts_the_fastest_round_trip() -> None:
    estimator = OffsetEstimator(window=3)
    assert estimator.offset is None
    estimator.add(ClockSample(offset=5.2, delay=0.4))
    estimator.add(ClockSample(offset=5.01, delay=0.02))
    estimator.add(ClockSample(offset=4.9, delay=0.2))
    assert estimator.offset == 5.01
    for _ in range(3):  # the fast sample ages out of the window
        estimator.add(ClockSample(offset=5.1, delay=0.3))
    assert estimator.offset == 5.1
    assert len(estimator) == 3


def test_room_offers_round_trip_and_are_bounded() -> None:
    message = control.RoomOffers(offers=("focusmate://join/abc",))
    assert control.decode(control.encode(message)) == message
    with pytest.raises(ProtocolError):
        control.decode('{"v":1,"type":"room_offers","offers":[1]}')
    with pytest.raises(ProtocolError):
        control.decode('{"v":1,"type":"room_offers","offers":"x"}')
