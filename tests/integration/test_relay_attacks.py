"""Attacks on a real relay: replayed hellos, wrong tokens on ``/v1``, document-id path tricks,
non-members, guessing tokens, and DM plaintext in the relay's files after compaction and backup.

The path tricks are sent as raw HTTP request lines (a websocket library would normalise or
refuse some of them before they left the client), so the relay sees exactly the bytes here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pycrdt import Doc, Map
from websockets.asyncio.client import connect

from focusmate.dm import seal
from focusmate.identity import Identity, canonical_json
from focusmate.invite import new_room_secret, relay_token, room_id_for
from relay.server import Relay
from sync import control, handshake
from sync.control import CloseCode
from sync.ysync import SyncStep1, SyncUpdate, encode_message
from tests.integration.relaykit import (
    DEADLINE,
    REPO,
    ControlClient,
    DocClient,
    base_url,
    doc_url,
    limits,
    poll,
    relay_committed,
    relay_env,
    relay_value,
    running_relay,
)

REJECTED = "focusmate_relay_rejected_frames_total"


def rejected(relay: Relay, reason: str) -> float:
    value = relay.metrics.registry.get_sample_value(REJECTED, {"reason": reason})
    return value or 0.0


async def stored_doc_ids(relay: Relay) -> list[str]:
    """The document ids the relay's database holds rows for."""
    return await relay.committer.read(lambda s: s.doc_ids())


def an_update(key: str, value: str) -> bytes:
    doc: Doc[Map[str]] = Doc()
    doc.get("m", type=Map)[key] = value
    return doc.get_update()


# -- 1. a hello replayed on another connection ------------------------------------------------


async def test_a_hello_replayed_on_a_new_connection_is_refused(tmp_path: Path) -> None:
    """The relay's nonce is fresh per connection and the hello signs it, so a hello captured
    from one connection (while it is open, or after) opens no other."""
    victim = Identity.generate()
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        url = base_url(relay)
        first = await connect(url + "/v1", compression=None)
        second = await connect(url + "/v1", compression=None)
        mine, theirs = [control.decode(await ws.recv()) for ws in (first, second)]
        assert isinstance(mine, control.Challenge) and isinstance(theirs, control.Challenge)
        assert mine.nonce != theirs.nonce
        captured = handshake.answer(victim, mine, address=url)
        await first.send(control.encode(captured))
        assert isinstance(control.decode(await first.recv()), control.Welcome)

        await second.send(control.encode(captured))  # replayed while the victim is online
        await second.wait_closed()
        assert second.close_code == CloseCode.UNAUTHORIZED
        assert "does not verify" in (second.close_reason or "")
        await first.close()

        third = await connect(url + "/v1", compression=None)  # and after it left
        assert isinstance(control.decode(await third.recv()), control.Challenge)
        await third.send(control.encode(captured))
        await third.wait_closed()
        assert third.close_code == CloseCode.UNAUTHORIZED
        assert rejected(relay, "bad_handshake") == 2
        assert not list(relay.sessions.online(victim.user_id))


# -- 2. subscribe on /v1 with tokens that are not the room's ------------------------------------


async def test_subscribe_with_any_token_but_the_rooms_is_refused(tmp_path: Path) -> None:
    room, other = new_room_secret(), new_room_secret()
    room_id, token = room_id_for(room), relay_token(room)
    wrong = {
        "a random token": relay_token(new_room_secret()),
        "another room's token": relay_token(other),
        "empty": "",
        "uppercase": token.upper(),
        "one character short": token[:-1],
        "one character more": token + "0",
        "a space around it": f" {token} ",
        "the room id": room_id,
        "the room secret in hex": room.hex(),
        "percent-encoded": "".join(f"%{b:02x}" for b in token.encode()),
        "the token twice": token + token,
    }
    lim = limits(auth_failures_per_ip_per_minute=1000.0)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        member = await DocClient.open(doc_url(relay, room))
        await member.synced.wait()
        await member.set("plan", "meet at dawn")
        await relay_committed(relay, room_id, "plan", "meet at dawn")
        mallory = await ControlClient.open(relay, Identity.generate())
        await mallory.expect(control.Welcome)
        for what, guess in wrong.items():
            await mallory.send(control.Subscribe(doc_id=room_id, token=guess))
            error = await mallory.expect(control.Error)
            assert (error.code, error.ref) == ("unauthorized", room_id), what
        assert not [m for m in mallory.inbox if isinstance(m, control.Subscribed)]
        assert mallory.frames == []  # not a byte of the room
        assert rejected(relay, "bad_token") == len(wrong)
        # a frame for the room after the refusal closes the connection; nothing is written
        frame = control.encode_doc_frame(
            room_id, encode_message(SyncUpdate(an_update("plan", "mallory was here")))
        )
        await mallory.ws.send(frame)
        assert (await mallory.wait_closed())[0] == CloseCode.BAD_FRAME
        assert relay_value(relay, room_id, "plan") == "meet at dawn"
        assert member.value("plan") == "meet at dawn"


# -- 3. document-id tricks on /doc/<id>?token= -------------------------------------------------


@dataclass
class Upgrade:
    """What the relay answered a raw websocket upgrade: an HTTP status, and for a 101 either
    the close code it sent at once or None when it admitted the connection."""

    status: int
    close_code: int | None
    writer: asyncio.StreamWriter

    @property
    def admitted(self) -> bool:
        return self.status == 101 and self.close_code is None


async def raw_upgrade(port: int, target: bytes) -> Upgrade:
    """Send ``GET <target>`` as a websocket upgrade, byte for byte, and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET " + target + b" HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + str(port).encode() + b"\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return Upgrade(0, None, writer)  # the server hung up without an answer
    status = int(head.split(b" ", 2)[1])
    if status != 101:
        return Upgrade(status, None, writer)
    # the relay's first frame: a close frame (refused) or its sync step 1 (admitted)
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    payload = await reader.readexactly(length)
    opcode = first & 0x0F
    code = int.from_bytes(payload[:2], "big") if opcode == 0x8 else None
    return Upgrade(status, code, writer)


@contextlib.asynccontextmanager
async def upgraded(port: int, target: bytes) -> AsyncIterator[Upgrade]:
    answer = await raw_upgrade(port, target)
    try:
        yield answer
    finally:
        answer.writer.close()
        with contextlib.suppress(OSError):
            await answer.writer.wait_closed()


# a look-alike outside ASCII for every hex digit (Cyrillic, Greek, Latin extended, Cherokee)
HOMOGLYPHS = dict(
    zip(
        "0123456789abcdef",
        "\u041e\u0406\u01a7\u0417\u13ce\u01bc\u0431\u13b6\u0222\u0563"
        "\u0430\u042c\u0441\u0501\u0435\u0192",
        strict=True,
    )
)


def path_tricks(room_id: str, token: str, other_id: str, other_token: str) -> dict[bytes, bool]:
    """Request targets, each with whether it may open the room (``room_id`` and nothing else):
    only the canonical id with its own token as the first ``token`` parameter may."""
    wrong = relay_token(new_room_secret())
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in room_id)  # "０１…ａｂ…"
    lookalike = "".join(HOMOGLYPHS[c] for c in room_id)
    one_lookalike = HOMOGLYPHS[room_id[0]] + room_id[1:]
    refused = [
        f"/doc/{room_id}/..?token={token}",
        f"/doc/../{room_id}?token={token}",
        f"/doc/{other_id}/../{room_id}?token={token}",
        f"/doc/{room_id}/../{other_id}?token={token}",
        f"//doc/{room_id}?token={token}",
        f"/doc//{room_id}?token={token}",
        f"/doc/./{room_id}?token={token}",
        f"/DOC/{room_id}?token={token}",
        f"/v1/../doc/{room_id}?token={token}",
        f"/doc/%2e%2e/{room_id}?token={token}",
        f"/doc/%2E%2E%2F{room_id}?token={token}",
        f"/doc/{room_id}%2F..?token={token}",
        f"/doc/{room_id}%2f?token={token}",
        f"/doc/%2F{room_id}?token={token}",
        f"/doc/{room_id}%00?token={token}",
        f"/doc/{room_id}%00{other_id}?token={token}",
        f"/doc/{room_id}%20?token={token}",
        f"/doc/{room_id}%0a?token={token}",
        f"/doc/{room_id}.?token={token}",
        f"/doc/{room_id}/?token={token}",
        f"/doc/{room_id};token={token}",
        f"/doc/{room_id.upper()}?token={token}",
        f"/doc/{room_id[:16].upper()}{room_id[16:]}?token={token}",
        f"/doc/{room_id[:-1]}?token={token}",
        f"/doc/{room_id}0?token={token}",
        f"/doc/{room_id}{'0' * 4000}?token={token}",
        f"/doc/{'a' * 7000}?token={token}",
        f"/doc/{''.join(f'%{b:02X}' for b in fullwidth.encode())}?token={token}",
        f"/doc/{''.join(f'%{b:02X}' for b in lookalike.encode())}?token={token}",
        f"/doc/{''.join(f'%{b:02X}' for b in one_lookalike.encode())}?token={token}",
        f"/doc/{room_id}?token={other_token}",
        f"/doc/{other_id}?token={token}",
        f"/doc/{room_id}?token={wrong}&token={token}",
        f"/doc/{other_id}?token={token}&token={other_token}",
        f"/doc/{room_id}?token=",
        f"/doc/{room_id}",
        f"/doc/{room_id}#token={token}",
        f"/doc/{room_id}?x=1#&token={token}",
        f"/doc/{room_id}?Token={token}",
        f"/doc/{room_id}?token%5B%5D={token}",
        f"/doc/{room_id}?token={token.upper()}",
        f"/doc/{room_id}?token={token}%00",
        f"/doc/{room_id}?token=+{token}",
    ]
    admitted = [
        f"/doc/{room_id}?token={token}",
        f"/doc/{room_id}?token={token}&token={wrong}",  # the first token decides
        f"/doc/{room_id}?token={token}&token={other_token}",
        f"/doc/{room_id}?x=%2e%2e&token={token}",
        f"/doc/{room_id}?token={''.join(f'%{b:02x}' for b in token.encode())}",
        f"//elsewhere/doc/{room_id}?token={token}",  # an authority in the target is ignored
    ]
    tricks = {t.encode(): False for t in refused} | {t.encode(): True for t in admitted}
    raw = [  # bytes no client library would send: non-ASCII in the request line
        f"/doc/{fullwidth}?token={token}".encode(),
        f"/doc/{lookalike}?token={token}".encode(),
        f"/doc/{one_lookalike}?token={token}".encode(),
        f"/doc/{room_id}\x00?token={token}".encode("latin-1"),
    ]
    tricks |= dict.fromkeys(raw, False)
    assert len(tricks) == len(refused) + len(admitted) + len(raw)  # no two the same
    return tricks


async def test_document_id_tricks_reach_no_room_but_the_canonical_one(tmp_path: Path) -> None:
    room, other = new_room_secret(), new_room_secret()
    room_id, other_id = room_id_for(room), room_id_for(other)
    tricks = path_tricks(room_id, relay_token(room), other_id, relay_token(other))
    lim = limits(auth_failures_per_ip_per_minute=1000.0)
    async with asyncio.timeout(4 * DEADLINE), running_relay(tmp_path, limits=lim) as relay:
        member = await DocClient.open(doc_url(relay, room))
        await member.synced.wait()
        await member.set("plan", "meet at dawn")
        await relay_committed(relay, room_id, "plan", "meet at dawn")
        outcomes: dict[bytes, tuple[int, int | None]] = {}
        for target, may_open in tricks.items():
            async with upgraded(relay.port, target) as answer:
                outcomes[target] = (answer.status, answer.close_code)
                assert answer.admitted == may_open, (target, outcomes[target])
                if answer.admitted:
                    sockname = answer.writer.get_extra_info("sockname")
                    (peer,) = [p for p in relay.peers if p.ws.remote_address == sockname]
                    assert peer.subscriptions == {room_id}, target
                else:
                    assert answer.status in (0, 101, 400, 404) and answer.close_code in (
                        None,
                        CloseCode.UNAUTHORIZED,
                        CloseCode.NOT_FOUND,
                    ), (target, outcomes[target])
        await poll(lambda: len(relay.peers) == 1, "the trick connections to go")
        assert set(relay.hub.docs) == {room_id}
        assert await stored_doc_ids(relay) == [room_id]  # nothing on disk for bogus ids
        assert relay_value(relay, room_id, "plan") == "meet at dawn"
        await member.set("after", "still syncing")
        await relay_committed(relay, room_id, "after", "still syncing")
    print(f"{len(tricks)} request targets; answers: {Counter(outcomes.values())}")


# -- 4. a non-member can neither read nor write ------------------------------------------------


async def test_a_non_member_can_neither_read_nor_write_a_room(tmp_path: Path) -> None:
    room = new_room_secret()
    room_id = room_id_for(room)
    async with asyncio.timeout(DEADLINE), running_relay(tmp_path) as relay:
        member = await DocClient.open(doc_url(relay, room))
        await member.synced.wait()
        await member.set("plan", "meet at dawn")
        await relay_committed(relay, room_id, "plan", "meet at dawn")
        url = f"{base_url(relay)}/doc/{room_id}"

        # /doc with no token at all: closed before a byte of the room is sent
        for target in (url, url + "?token="):
            intruder = await DocClient.open(target)
            assert (await intruder.wait_closed())[0] == CloseCode.UNAUTHORIZED
            assert intruder.received == []

        # /v1, authenticated but never subscribed: asking for the room closes the connection
        reader = await ControlClient.open(relay, Identity.generate())
        await reader.expect(control.Welcome)
        await reader.send(control.TimerRequest(id="t", doc_id=room_id, command="start"))
        assert (await reader.expect(control.Error)).code == "not_subscribed"
        await reader.ws.send(control.encode_doc_frame(room_id, encode_message(SyncStep1(b"\x00"))))
        assert (await reader.wait_closed())[0] == CloseCode.BAD_FRAME
        assert reader.frames == []

        # /v1, writing without a subscription
        writer = await ControlClient.open(relay, Identity.generate())
        await writer.expect(control.Welcome)
        forged = encode_message(SyncUpdate(an_update("plan", "mallory was here")))
        await writer.ws.send(control.encode_doc_frame(room_id, forged))
        assert (await writer.wait_closed())[0] == CloseCode.BAD_FRAME

        # the room is as its member left it, in memory, on disk and for a newcomer
        assert relay_value(relay, room_id, "plan") == "meet at dawn"
        newcomer = await DocClient.open(doc_url(relay, room))
        await newcomer.synced.wait()
        await newcomer.wait_value("plan", "meet at dawn")
        assert member.value("plan") == "meet at dawn"


# -- 5. failed subscriptions are rate limited --------------------------------------------------


async def test_guessing_tokens_on_v1_is_limited_per_address_and_document(tmp_path: Path) -> None:
    """A connection trying tokens for one room gets ``auth_failures_per_ip_per_minute`` guesses;
    after that even the right token is refused (so the budget, not luck, decides) until the
    budget refills, while its other rooms, and other rooms' clients, go on."""
    target, mine = new_room_secret(), new_room_secret()
    target_id, mine_id = room_id_for(target), room_id_for(mine)
    now = [1000.0]
    lim = limits(auth_failures_per_ip_per_minute=20.0)
    attempts = 50
    async with (
        asyncio.timeout(DEADLINE),
        running_relay(tmp_path, limits=lim, monotonic=lambda: now[0]) as relay,
    ):
        mallory = await ControlClient.open(relay, Identity.generate())
        await mallory.expect(control.Welcome)
        for _ in range(attempts):
            guess = relay_token(new_room_secret())
            await mallory.send(control.Subscribe(doc_id=target_id, token=guess))
            assert (await mallory.expect(control.Error)).code == "unauthorized"
        assert rejected(relay, "bad_token") == 20  # only 20 guesses were checked
        assert rejected(relay, "auth_failures") == attempts - 20

        # the right token now is refused too: the budget decides, not the guess
        await mallory.send(control.Subscribe(doc_id=target_id, token=relay_token(target)))
        refused = await mallory.expect(control.Error)
        assert (refused.code, refused.message) == ("unauthorized", "too many failed logins")
        # the connection stays up for rooms it holds the token of
        await mallory.send(control.Subscribe(doc_id=mine_id, token=relay_token(mine)))
        await mallory.expect(control.Subscribed, lambda m: m.doc_id == mine_id)
        # a new connection buys no new guesses
        again = await ControlClient.open(relay, Identity.generate())
        await again.expect(control.Welcome)
        await again.send(control.Subscribe(doc_id=target_id, token=relay_token(target)))
        assert (await again.expect(control.Error)).message == "too many failed logins"

        now[0] += 60.0  # a minute later the budget has refilled
        await again.send(control.Subscribe(doc_id=target_id, token=relay_token(target)))
        await again.expect(control.Subscribed, lambda m: m.doc_id == target_id)


# -- 6. no DM plaintext in the relay's files, after compaction and in a backup ------------------


def plaintext_forms(text: str) -> dict[str, bytes]:
    """Every spelling of ``text`` worth looking for in a file: UTF-8, UTF-16 both ways, the
    JSON the envelope encrypts, and base64 (standard and URL-safe) at each of the three byte
    alignments it can have inside a longer encoded string."""
    forms = {
        "utf-8": text.encode(),
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
        "sealed json": canonical_json({"text": text}),
        "escaped json": json.dumps(text).encode(),
        "hex": text.encode().hex().encode(),
    }
    for k in range(3):
        shifted = base64.b64encode(b"\x00" * k + text.encode())
        middle = shifted[(8 * k + 5) // 6 : -4]
        forms[f"base64 at offset {k}"] = middle
        forms[f"base64url at offset {k}"] = middle.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def admin(data_dir: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "relay", "--data-dir", str(data_dir), "admin", *args],
        cwd=REPO,
        env=relay_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in ([root] if root.is_file() else root.rglob("*"))
            if p.is_file()]  # fmt: skip


@pytest.mark.slow
async def test_no_dm_plaintext_after_compaction_or_in_a_backup(tmp_path: Path) -> None:
    """Extends test_relay_control.py::test_the_relay_database_holds_no_dm_plaintext: mail
    delivered, acknowledged, read and waiting, room documents compacted by the relay and by
    ``admin compact``, a ``VACUUM``, and an ``admin backup`` taken while the relay runs; every
    file (WAL and backup included) is scanned for every spelling of the plaintext."""
    data_dir, backups = tmp_path / "data", tmp_path / "backups"
    backups.mkdir()
    alice, bob = Identity.generate(), Identity.generate()
    texts = [f"canary {n}: the vault code is 4711-ÉCLAIR-{os.urandom(6).hex()}" for n in range(6)]
    room = new_room_secret()
    async with running_relay(data_dir, compact_after_updates=4) as relay:
        a = await ControlClient.open(relay, alice)
        await a.expect(control.Welcome)
        for text in texts:
            await a.send(control.DmSend(envelope=seal(alice, bob.public, text, now=1).to_dict()))
            await a.expect(control.DmAccepted)
        b = await ControlClient.open(relay, bob)
        await b.expect(control.Welcome)
        delivered = [(await b.expect(control.DmDeliver)).envelope["id"] for _ in texts]
        await b.send(control.DmAck(ids=tuple(delivered[:3])))  # half leave the mailbox
        await b.send(control.DmRead(sender=alice.user_id, message_ids=tuple(delivered[:2])))
        member = await DocClient.open(doc_url(relay, room))
        await member.synced.wait()
        for n in range(20):  # enough writes for the relay to compact the room
            await member.set(f"k{n}", n)
        await relay_committed(relay, room_id_for(room), "k19", 19)
        await a.expect(control.Receipt)
        await asyncio.to_thread(admin, data_dir, "backup", str(backups / "live.db"))
        live = {f"live {p.name}": p.read_bytes() for p in files_under(data_dir)}
        assert "live relay.db-wal" in live  # what is not yet checkpointed is scanned too
        assert await relay.committer.read(
            lambda s: s.conn.execute("SELECT count(*) FROM doc_snapshots").fetchone()[0]
        ), "the relay compacted the room"
    await asyncio.to_thread(admin, data_dir, "compact")
    await asyncio.to_thread(admin, data_dir, "backup", str(backups / "after-compact.db"))
    await asyncio.to_thread(admin, data_dir, "purge", "--vacuum")

    scanned = files_under(data_dir, backups)
    assert {p.name for p in scanned} >= {"relay.db", "live.db", "after-compact.db"}
    contents = live | {p.name: p.read_bytes() for p in scanned}
    forms = {f"{text!r} as {name}": form for text in texts for name, form in
             plaintext_forms(text).items()}  # fmt: skip
    found = [(name, what) for name, data in contents.items()
             for what, form in forms.items() if form in data]  # fmt: skip
    assert found == []
    # sanity: the scan does see what is there (the waiting envelopes' ids and ciphertext)
    assert any(delivered[-1].encode() in data for data in contents.values())
    print(f"{len(contents)} files, {sum(map(len, contents.values()))} bytes, {len(forms)} forms")
