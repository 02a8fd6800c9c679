"""Every relay limit, seen from outside: what a client is told and what an operator can measure.

Each test runs a real relay on port 0 and real websocket clients (``relaykit``). Waiting is on
events or polling with a deadline; time-based limits use an injected ``monotonic`` clock where
the test needs time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from relay.peer import Peer
from relay.server import Relay
from sync import control, handshake
from sync.control import CloseCode, Error, Subscribe, Subscribed, Unsubscribe, Welcome
from sync.wire import write_var_bytes, write_var_string, write_var_uint
from sync.ysync import (
    AwarenessEntry,
    AwarenessMessage,
    MessageType,
    QueryAwareness,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_message,
)
from tests.integration.relaykit import (
    ControlClient,
    DocClient,
    base_url,
    doc_url,
    healthz,
    limits,
    open_room,
    running_relay,
    wait_until,
)

DEADLINE = 10.0
REJECTED = "focusmate_relay_rejected_frames_total"


# -- helpers ------------------------------------------------------------------------------------


async def eventually(
    predicate: Callable[[], bool], what: str, *, deadline: float = DEADLINE
) -> None:
    """Poll ``predicate`` (state that changes without an event we can await) up to a deadline."""
    try:
        async with asyncio.timeout(deadline):
            while not predicate():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def rejected(relay: Relay, reason: str) -> float:
    value = relay.metrics.registry.get_sample_value(REJECTED, {"reason": reason})
    return value or 0.0


def connections(relay: Relay, endpoint: str = "doc") -> float:
    value = relay.metrics.registry.get_sample_value(
        "focusmate_relay_connections", {"endpoint": endpoint}
    )
    return value or 0.0


def slow_consumers_dropped(relay: Relay) -> float:
    value = relay.metrics.registry.get_sample_value("focusmate_relay_slow_consumers_dropped_total")
    return value or 0.0


async def assert_still_syncs(a: DocClient, b: DocClient, key: str) -> None:
    await a.set(key, "still here")
    await b.wait_value(key, "still here")


async def refusal(url: str) -> InvalidStatus:
    """The HTTP refusal of a websocket connect to ``url``."""
    try:
        ws = await connect(url, compression=None)
    except InvalidStatus as err:
        return err
    await ws.close()
    raise AssertionError(f"{url} was not refused")


def peer_of(relay: Relay, ws: ClientConnection) -> Peer:
    (peer,) = [p for p in relay.peers if p.ws.remote_address == ws.local_address]
    return peer


def forwarded(client: DocClient) -> list[bytes]:
    return [m.update for m in client.received if isinstance(m, SyncUpdate)]


def awareness_frame(*entries: tuple[int, int, str]) -> bytes:
    """A y-websocket awareness message with raw (possibly invalid) JSON states."""
    payload = bytearray()
    write_var_uint(payload, len(entries))
    for client_id, clock, state in entries:
        write_var_uint(payload, client_id)
        write_var_uint(payload, clock)
        write_var_string(payload, state)
    out = bytearray()
    write_var_uint(out, MessageType.AWARENESS)
    write_var_bytes(out, bytes(payload))
    return bytes(out)


def too_many_awareness_entries() -> bytes:
    entries = [AwarenessEntry(i + 1, 1, {"n": i}) for i in range(65)]
    out = bytearray()
    write_var_uint(out, MessageType.AWARENESS)
    write_var_bytes(out, encode_awareness(entries))
    return bytes(out)


def an_update(key: str, value: Any) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("m", type=Map)[key] = value
    return doc.get_update()


# -- 1. frame size ------------------------------------------------------------------------------


async def test_relay_rejects_oversized_frame(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(max_frame_bytes=64 * 1024)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        alice, bob, carol = await open_room(relay, secret, 3)
        with contextlib.suppress(ConnectionClosed):
            await alice.set("big", "x" * 100_000)
        code, _ = await alice.wait_closed()
        assert code == CloseCode.TOO_BIG

        # the control channel has the same limit
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(Welcome, lambda w: w.max_frame == 64 * 1024)
        with contextlib.suppress(ConnectionClosed):
            await ctl.ws.send("x" * 100_000)
        assert (await ctl.wait_closed())[0] == CloseCode.TOO_BIG

        # the others in the room carry on, and the oversized edit reached no one
        await assert_still_syncs(bob, carol, "after")
        assert carol.value("big") is None
        assert (await healthz(relay))["status"] == "ok"


# -- 2. malformed frames ------------------------------------------------------------------------

NOT_SUBSCRIBED_DOC = "0123456789abcdef0123456789abcdef"

MALFORMED: list[Any] = [
    pytest.param("doc", b"\xff" * 12, "var uint too long", id="doc-garbage-bytes"),
    pytest.param("doc", b"\x00\x02\x85", "truncated var uint", id="doc-truncated-var-uint"),
    pytest.param("doc", b"\x00\x02\x10abc", "declared length 16", id="doc-truncated-payload"),
    pytest.param("doc", b"\x09", "unknown message type 9", id="doc-unknown-message-type"),
    pytest.param("doc", b"\x00\x07\x00", "unknown sync step 7", id="doc-unknown-sync-step"),
    pytest.param("doc", b"\x03\x00", "trailing bytes", id="doc-trailing-bytes"),
    pytest.param("doc", "hello", "text frame", id="doc-text-frame"),
    pytest.param(
        "doc",
        encode_message(SyncUpdate(b"\x05garbage\xff\xff")),
        "malformed document update",
        id="doc-invalid-yjs-update",
    ),
    pytest.param(
        "doc",
        awareness_frame((1, 1, "{not json")),
        "awareness state is not JSON",
        id="doc-awareness-invalid-json",
    ),
    pytest.param(
        "doc",
        too_many_awareness_entries(),
        "awareness update with 65 entries",
        id="doc-awareness-too-many-entries",
    ),
    pytest.param("v1", "this is not json", "not JSON", id="v1-not-json"),
    pytest.param("v1", "[1, 2]", "must be a JSON object", id="v1-not-an-object"),
    pytest.param(
        "v1",
        '{"v": 1, "type": "ping", "id": "p", "t0": NaN}',
        "ping.t0 must be a finite number",
        id="v1-nan",
    ),
    pytest.param(
        "v1",
        '{"v": 1, "type": "ping", "id": "p", "t0": "soon"}',
        "ping.t0 must be a number",
        id="v1-bad-field",
    ),
    pytest.param(
        "v1",
        control.encode(Welcome(user_id="u", max_frame=1, max_docs=1)),
        "a client does not send welcome",
        id="v1-server-only-message",
    ),
    pytest.param("v1", b"\xff\xff\xff", "truncated var uint", id="v1-garbage-bytes"),
    pytest.param(
        "v1",
        control.encode_doc_frame(
            NOT_SUBSCRIBED_DOC, encode_message(SyncUpdate(an_update("k", "v")))
        ),
        f"not subscribed to document '{NOT_SUBSCRIBED_DOC}'",
        id="v1-doc-frame-not-subscribed",
    ),
]


@pytest.mark.parametrize(("endpoint", "frame", "reason"), MALFORMED)
async def test_relay_rejects_malformed_frame(
    tmp_path: Path, endpoint: str, frame: bytes | str, reason: str
) -> None:
    secret = new_room_secret()
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        alice, bob = await open_room(relay, secret, 2)
        before = rejected(relay, "bad_frame")
        if endpoint == "doc":
            (offender,) = await open_room(relay, secret, 1)
            await offender.ws.send(frame)
            code, why = await offender.wait_closed()
        else:
            ctl = await ControlClient.open(relay, Identity.generate())
            await ctl.expect(Welcome)
            await ctl.ws.send(frame)
            code, why = await ctl.wait_closed()

        assert code == CloseCode.BAD_FRAME
        assert why is not None
        assert why.startswith("bad frame: ")
        assert reason in why
        assert rejected(relay, "bad_frame") == before + 1
        # the relay and the room carry on
        await assert_still_syncs(alice, bob, "after")
        await assert_still_syncs(bob, alice, "and back")
        health = await healthz(relay)
        assert health["status"] == "ok"
        await eventually(lambda: len(relay.peers) == 2, "the offender to be forgotten")


async def test_an_unknown_control_type_is_answered_not_fatal(tmp_path: Path) -> None:
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(Welcome)
        await ctl.ws.send('{"v": 1, "type": "launch_missiles"}')
        error = await ctl.expect(Error)
        assert error.code == "unknown_type"
        assert "launch_missiles" in error.message
        await ctl.send(control.Ping(id="still-here", t0=1.0))
        await ctl.expect(control.Pong)


async def test_relay_counts_an_invalid_update_separately(tmp_path: Path) -> None:
    secret = new_room_secret()
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        (offender, watcher) = await open_room(relay, secret, 2)
        await offender.ws.send(encode_message(SyncStep2(b"\x01\x02\x03")))
        code, _ = await offender.wait_closed()
        assert code == CloseCode.BAD_FRAME
        assert rejected(relay, "invalid_update") == 1
        assert forwarded(watcher) == []
        late = await DocClient.open(doc_url(relay, secret))
        await assert_still_syncs(late, watcher, "fine")


# -- 3. documents per control connection --------------------------------------------------------


async def test_relay_limits_documents_per_connection(tmp_path: Path) -> None:
    rooms = [new_room_secret() for _ in range(3)]
    ids = [room_id_for(s) for s in rooms]
    lim = limits(max_docs_per_connection=2)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        ctl = await ControlClient.open(relay, Identity.generate())
        welcome = await ctl.expect(Welcome)
        assert welcome.max_docs == 2

        async def subscribe(i: int) -> Any:
            await ctl.send(Subscribe(doc_id=ids[i], token=relay_token(rooms[i])))
            return await ctl.expect(
                object,
                lambda m: (
                    (isinstance(m, Subscribed) and m.doc_id == ids[i])
                    or (isinstance(m, Error) and m.ref == ids[i])
                ),
            )

        assert isinstance(await subscribe(0), Subscribed)
        assert isinstance(await subscribe(1), Subscribed)
        refused = await subscribe(2)
        assert isinstance(refused, Error)
        assert refused.code == "too_many_documents"
        assert "at most 2" in refused.message
        assert rejected(relay, "too_many_documents") == 1
        assert isinstance(await subscribe(0), Subscribed)  # re-subscribing is not a new document
        assert ctl.ws.close_code is None

        # the earlier subscriptions keep working, both ways
        (first,) = await open_room(relay, rooms[0], 1)
        await first.set("from", "doc client")
        await wait_until(
            lambda: _doc_value(ctl, ids[0], "from") == "doc client", ctl.changed, "room 0 edit"
        )
        (second,) = await open_room(relay, rooms[1], 1)
        update = an_update("from", "control client")
        await ctl.ws.send(control.encode_doc_frame(ids[1], encode_message(SyncUpdate(update))))
        await second.wait_value("from", "control client")

        # leaving a document frees its place
        await ctl.send(Unsubscribe(doc_id=ids[0]))
        assert isinstance(await subscribe(2), Subscribed)


def _doc_value(ctl: ControlClient, doc_id: str, key: str) -> Any:
    """``key`` in the document as rebuilt from the control client's frames for ``doc_id``."""
    doc: Doc[Any] = Doc()
    for frame_doc, payload in ctl.frames:
        if frame_doc == doc_id:
            message = decode_message(payload)
            if isinstance(message, SyncUpdate | SyncStep2):
                doc.apply_update(message.update)
    return doc.get("m", type=Map).get(key)


# -- 4. message rate per connection -------------------------------------------------------------


async def test_relay_throttles_a_flooding_connection_without_losing_updates(
    tmp_path: Path,
) -> None:
    # 60 messages at 50/s after a burst of 10: the flood takes ~1 s to get through
    rate, burst, count = 50.0, 10, 60
    noisy, quiet = new_room_secret(), new_room_secret()
    lim = limits(messages_per_second=rate, message_burst=float(burst))
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        flooder, audience = await open_room(relay, noisy, 2)
        calm, partner = await open_room(relay, quiet, 2)

        started = time.monotonic()
        sent = [await flooder.set("n", i) for i in range(count)]
        assert len(forwarded(audience)) < count  # the relay reads the flood slowly

        calm_started = time.monotonic()
        await calm.set("hello", "world")
        await partner.wait_value("hello", "world")
        calm_seconds = time.monotonic() - calm_started
        backlog_meanwhile = count - len(forwarded(audience))

        await wait_until(lambda: len(forwarded(audience)) == count, audience.changed, "the flood")
        flood_seconds = time.monotonic() - started

        assert forwarded(audience) == sent  # nothing lost, nothing reordered
        assert audience.value("n") == count - 1
        assert rejected(relay, "rate_limited") >= (count - burst) / 2
        assert flood_seconds >= 0.8 * (count - burst) / rate
        assert backlog_meanwhile > 0  # the calm client really was served during the flood
        assert calm_seconds < flood_seconds / 4
        assert flooder.ws.close_code is None  # throttled, not disconnected


# -- 5. connections per address and in total ----------------------------------------------------


async def test_relay_caps_connections_per_ip(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(max_connections_per_ip=3)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        url = doc_url(relay, secret)
        a, b = await open_room(relay, secret, 2)
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(Welcome)

        for where in (url, base_url(relay) + "/v1"):
            refused = await refusal(where)
            assert refused.response.status_code == 429
            assert b"too many connections" in refused.response.body
        assert rejected(relay, "connections_per_ip") == 2

        await ctl.close()
        await eventually(lambda: connections(relay, "control") == 0, "the control client to go")
        (c,) = await open_room(relay, secret, 1)
        await assert_still_syncs(c, a, "third")
        await assert_still_syncs(b, c, "fourth")


async def test_relay_caps_concurrent_connects_per_ip(tmp_path: Path) -> None:
    """Connects racing each other cannot slip past the cap together."""
    secret = new_room_secret()
    lim = limits(max_connections_per_ip=3)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        url = doc_url(relay, secret)
        results = await asyncio.gather(
            *(connect(url, compression=None) for _ in range(8)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, ClientConnection)]
        refused = [r for r in results if isinstance(r, InvalidStatus)]
        try:
            assert len(opened) == 3, results
            assert len(refused) == 5, results
            assert {r.response.status_code for r in refused} == {429}
        finally:
            for ws in opened:
                await ws.close()


async def test_relay_caps_total_connections(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(max_connections=2)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        a, b = await open_room(relay, secret, 2)
        for where in (doc_url(relay, secret), base_url(relay) + "/v1"):
            refused = await refusal(where)
            assert refused.response.status_code == 503
            assert b"relay full" in refused.response.body
        assert rejected(relay, "max_connections") == 2
        await assert_still_syncs(a, b, "full but fine")
        assert (await healthz(relay))["connections"] == 2

        await a.close()
        await eventually(lambda: len(relay.peers) == 1, "a place to free up")
        (c,) = await open_room(relay, secret, 1)
        await assert_still_syncs(b, c, "room again")


# -- 6. connect rate per address ----------------------------------------------------------------


async def test_relay_limits_connect_rate_per_ip(tmp_path: Path) -> None:
    secret = new_room_secret()
    now = [1000.0]
    lim = limits(connects_per_ip_per_second=1.0, connect_burst_per_ip=3.0)
    async with (
        asyncio.timeout(DEADLINE),
        running_relay(tmp_path, limits=lim, monotonic=lambda: now[0]) as relay,
    ):
        url = doc_url(relay, secret)
        kept: list[DocClient] = []
        for _ in range(3):
            kept += await open_room(relay, secret, 1)
        for where in (url, base_url(relay) + "/v1"):
            refused = await refusal(where)
            assert refused.response.status_code == 429
            assert b"connecting too fast" in refused.response.body
        assert rejected(relay, "connect_rate") == 2

        now[0] += 1.0  # one more connect's worth
        (again,) = await open_room(relay, secret, 1)
        assert (await refusal(url)).response.status_code == 429
        await assert_still_syncs(again, kept[0], "back")


# -- 7. failed logins per address ---------------------------------------------------------------


async def _fail_logins(relay: Relay, secret: bytes, times: int) -> None:
    wrong = relay_token(new_room_secret())
    for _ in range(times):
        bad = await DocClient.open(doc_url(relay, secret, token=wrong))
        code, reason = await bad.wait_closed()
        assert code == CloseCode.UNAUTHORIZED, reason


async def test_relay_refuses_a_document_to_an_ip_after_too_many_bad_tokens(
    tmp_path: Path,
) -> None:
    secret, other = new_room_secret(), new_room_secret()
    now = [1000.0]
    lim = limits(auth_failures_per_ip_per_minute=3.0)
    async with (
        asyncio.timeout(DEADLINE),
        running_relay(tmp_path, limits=lim, monotonic=lambda: now[0]) as relay,
    ):
        (member,) = await open_room(relay, secret, 1)  # connected before: not affected
        await _fail_logins(relay, secret, 3)
        assert rejected(relay, "bad_token") == 3
        refused = await refusal(doc_url(relay, secret))  # even with the right token
        assert refused.response.status_code == 429
        assert b"too many failed logins" in refused.response.body
        assert rejected(relay, "auth_failures") == 1
        assert member.ws.close_code is None
        # other rooms and the control channel stay open to that address (one mistyped URL
        # retried forever by a stock client must not lock out everyone behind the same NAT)
        (elsewhere,) = await open_room(relay, other, 1)
        await elsewhere.synced.wait()
        control_client = await ControlClient.open(relay, Identity.generate())
        await control_client.expect(control.Welcome)
        now[0] += 10.0  # a third of the way to the next allowed attempt
        assert (await refusal(doc_url(relay, secret))).response.status_code == 429


async def test_relay_refuses_an_ip_after_too_many_failed_handshakes(tmp_path: Path) -> None:
    lim = limits(auth_failures_per_ip_per_minute=2.0)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        for _ in range(2):
            bad = await ControlClient.open(relay, Identity.generate(), address="ws://elsewhere")
            assert (await bad.wait_closed())[0] == CloseCode.UNAUTHORIZED
        refused = await refusal(base_url(relay) + "/v1")
        assert refused.response.status_code == 429


async def test_relay_lets_an_ip_back_in_after_the_failed_login_penalty(tmp_path: Path) -> None:
    secret = new_room_secret()
    now = [1000.0]
    lim = limits(auth_failures_per_ip_per_minute=3.0)
    async with (
        asyncio.timeout(DEADLINE),
        running_relay(tmp_path, limits=lim, monotonic=lambda: now[0]) as relay,
    ):
        await _fail_logins(relay, secret, 3)
        assert (await refusal(doc_url(relay, secret))).response.status_code == 429
        now[0] += 60.0  # a minute later the budget has refilled
        client = await DocClient.open(doc_url(relay, secret))
        await client.synced.wait()


# -- 8. slow consumers --------------------------------------------------------------------------


async def _non_reading_client(relay: Relay, url: str) -> ClientConnection:
    """A websocket client that stops reading at once: a tiny kernel receive buffer, and the
    library pauses the socket as soon as two messages wait unread (nobody calls recv)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", relay.port))
    return await connect(url, sock=sock, max_queue=1, compression=None, max_size=None)


async def _flood_until_dropped(relay: Relay, writer: DocClient, watcher: DocClient) -> int:
    """Send 200 KB updates until the relay drops a slow consumer; the largest number of bytes
    the relay held queued for any connection meanwhile."""
    peak = 0
    flooding = True

    async def sample() -> None:
        nonlocal peak
        while flooding:
            peak = max([peak, *(p.queued_bytes for p in relay.peers)])
            await asyncio.sleep(0)

    sampler = asyncio.get_running_loop().create_task(sample())
    try:
        for i in range(200):
            if slow_consumers_dropped(relay):
                return peak
            value = f"{i:04d}" + "x" * 200_000
            await writer.set("blob", value)
            await watcher.wait_value("blob", value)
        raise AssertionError("the slow consumer was never dropped")
    finally:
        flooding = False
        await sampler


SLOW_LIMIT = 256 * 1024
# the byte-rate limit is lifted so that the writer is not the one slowed down
SLOW_LIMITS = {"send_queue_bytes": SLOW_LIMIT, "bytes_per_second": 1e9, "byte_burst": 1e9}


async def test_relay_drops_a_slow_consumer(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(**SLOW_LIMITS)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        writer, watcher = await open_room(relay, secret, 2)
        slow = await _non_reading_client(relay, doc_url(relay, secret))
        try:
            await eventually(lambda: len(relay.peers) == 3, "the slow client to subscribe")
            slow_peer = peer_of(relay, slow)
            peak = await _flood_until_dropped(relay, writer, watcher)

            assert slow_consumers_dropped(relay) == 1
            assert 0 < peak <= SLOW_LIMIT
            assert slow_peer.closed
            assert slow_peer.queued_bytes == 0  # its queue is freed at once
            # the writer and the others carry on
            assert writer.ws.close_code is None
            await assert_still_syncs(writer, watcher, "after")
            await assert_still_syncs(watcher, writer, "and back")
        finally:
            slow.transport.abort()


async def test_relay_forgets_a_dropped_slow_consumer_at_once(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(max_connections_per_ip=3, **SLOW_LIMITS)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        writer, watcher = await open_room(relay, secret, 2)
        slow = await _non_reading_client(relay, doc_url(relay, secret))
        try:
            await eventually(lambda: len(relay.peers) == 3, "the slow client to subscribe")
            slow_peer = peer_of(relay, slow)
            await _flood_until_dropped(relay, writer, watcher)
            await eventually(
                lambda: slow_peer not in relay.peers, "the dropped connection to go", deadline=2
            )
            assert connections(relay) == 2
            (newcomer,) = await open_room(relay, secret, 1)  # its per-IP slot is free again
            await assert_still_syncs(writer, newcomer, "welcome")
        finally:
            slow.transport.abort()


# -- 9. presence per connection -----------------------------------------------------------------


async def test_relay_limits_awareness_clients_per_connection(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(awareness_clients_per_connection=2)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        alice, bob = await open_room(relay, secret, 2)
        entries = tuple(AwarenessEntry(i, 1, {"name": f"tab {i}"}) for i in (1, 2, 3))
        await alice.ws.send(encode_message(AwarenessMessage(entries)))
        await wait_until(lambda: 2 in bob.awareness, bob.changed, "alice's presence")
        await alice.send_awareness(4, 1, {"name": "tab 4"})
        await alice.send_awareness(1, 2, {"name": "tab 1, later"})  # a marker, in order
        await wait_until(
            lambda: bob.awareness.get(1) == {"name": "tab 1, later"}, bob.changed, "marker"
        )
        assert set(bob.awareness) == {1, 2}
        assert rejected(relay, "awareness_clients") == 2

        (carol,) = await open_room(relay, secret, 1)  # a newcomer is greeted with the same
        await wait_until(lambda: 2 in carol.awareness, carol.changed, "greeting")
        assert set(carol.awareness) == {1, 2}

        # giving one up frees its place
        await alice.send_awareness(2, 2, None)
        await alice.send_awareness(3, 1, {"name": "tab 3"})
        await wait_until(lambda: 3 in bob.awareness, bob.changed, "tab 3")
        assert bob.awareness[2] is None
        assert bob.awareness[3] == {"name": "tab 3"}


# -- 10. the control handshake ------------------------------------------------------------------


async def test_relay_closes_a_silent_control_connection(tmp_path: Path) -> None:
    lim = limits(handshake_seconds=0.3)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        ws = await connect(base_url(relay) + "/v1", compression=None)
        started = time.monotonic()
        assert isinstance(control.decode(await ws.recv()), control.Challenge)
        await ws.wait_closed()
        assert time.monotonic() - started >= 0.2
        assert ws.close_code == CloseCode.HANDSHAKE_TIMEOUT
        assert "handshake" in (ws.close_reason or "")
        assert rejected(relay, "handshake_timeout") == 1
        # a prompt client is welcome
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(Welcome)


@pytest.mark.parametrize(
    ("signed_address", "forge_signature", "reason"),
    [
        pytest.param(None, True, "signature does not verify", id="bad-signature"),
        pytest.param("ws://relay.example.org", False, "is not this server", id="wrong-address"),
    ],
)
async def test_relay_refuses_a_bad_hello(
    tmp_path: Path, signed_address: str | None, forge_signature: bool, reason: str
) -> None:
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        url = base_url(relay)
        ws = await connect(url + "/v1", compression=None)
        challenge = control.decode(await ws.recv())
        assert isinstance(challenge, control.Challenge)
        hello = handshake.answer(Identity.generate(), challenge, address=signed_address or url)
        if forge_signature:
            hello = dataclasses.replace(hello, signature=bytes(len(hello.signature)))
        await ws.send(control.encode(hello))
        await ws.wait_closed()
        assert ws.close_code == CloseCode.UNAUTHORIZED
        why = ws.close_reason or ""
        assert why.startswith("handshake failed: ")
        assert reason in why
        assert rejected(relay, "bad_handshake") == 1
        ctl = await ControlClient.open(relay, Identity.generate())
        await ctl.expect(Welcome)


# -- 11. updates waiting for the disk -----------------------------------------------------------


async def test_relay_stops_reading_a_connection_with_too_many_updates_in_flight(
    tmp_path: Path,
) -> None:
    secret = new_room_secret()
    lim = limits(max_inflight_updates=3)
    # with fsync'ed commits (the only ones slow enough to matter) they run on a storage thread
    relay_under_test = running_relay(tmp_path, limits=lim, synchronous="full")
    async with asyncio.timeout(DEADLINE), relay_under_test as relay:
        writer, reader = await open_room(relay, secret, 2)
        writer_peer = peer_of(relay, writer.ws)
        disk = threading.Event()  # holds the storage thread, as a very slow disk would
        stuck = threading.Event()

        def slow_disk(_: object) -> None:
            stuck.set()
            disk.wait(DEADLINE)

        stalled = relay.committer.submit(slow_disk)
        try:
            await eventually(stuck.is_set, "the storage thread to stall")
            sent = [await writer.set("n", i) for i in range(10)]
            await eventually(lambda: writer_peer.inflight == 3, "three updates in flight")
            # the relay keeps serving (a round trip through it), but reads no more updates
            await reader.ws.send(encode_message(QueryAwareness()))
            await wait_until(
                lambda: any(isinstance(m, AwarenessMessage) for m in reader.received),
                reader.changed,
                "an awareness answer",
            )
            assert writer_peer.inflight == 3
            assert forwarded(reader) == []  # nothing is forwarded before it is committed
        finally:
            disk.set()
            await stalled
        await wait_until(lambda: len(forwarded(reader)) == 10, reader.changed, "all updates")
        assert forwarded(reader) == sent
        assert writer_peer.inflight == 0
        assert writer.ws.close_code is None
