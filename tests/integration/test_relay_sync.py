"""Document sync through a real relay on port 0: clients, tokens, awareness, idle documents."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

import relay.committer
from focusmate.invite import new_room_secret, relay_token, room_id_for
from sync.control import CloseCode
from tests.integration.relaykit import (
    DEADLINE,
    DocClient,
    doc_url,
    poll,
    relay_committed,
    running_relay,
)


async def test_two_clients_sync_a_room_through_the_relay(tmp_path: Path) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        bob = await DocClient.open(doc_url(relay, secret))
        await alice.set("task", "write the report")
        await bob.wait_value("task", "write the report")
        await bob.set("reply", "on it")
        await alice.wait_value("reply", "on it")
        await alice.close()
        await bob.close()


async def test_a_late_joiner_gets_everything_in_sync_step_2(tmp_path: Path) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        for i in range(20):
            await alice.set(f"k{i}", i)
        await relay_committed(relay, room_id_for(secret), "k19", 19)
        carol = await DocClient.open(doc_url(relay, secret))
        await carol.wait_value("k19", 19)
        assert {carol.value(f"k{i}") for i in range(20)} == set(range(20))


async def test_rooms_do_not_leak_into_each_other(tmp_path: Path) -> None:
    one, two = new_room_secret(), new_room_secret()
    async with running_relay(tmp_path) as relay:
        a = await DocClient.open(doc_url(relay, one))
        b = await DocClient.open(doc_url(relay, two))
        b2 = await DocClient.open(doc_url(relay, two))
        await a.set("secret", "plans")
        await b.set("marker", 1)
        await b2.wait_value("marker", 1)
        assert b2.value("secret") is None


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        ("wrong", CloseCode.UNAUTHORIZED, "invalid token"),
        ("", CloseCode.UNAUTHORIZED, "invalid token"),
    ],
)
async def test_a_wrong_token_is_closed_with_4401(
    tmp_path: Path, token: str, code: int, reason: str
) -> None:
    async with running_relay(tmp_path) as relay:
        client = await DocClient.open(doc_url(relay, new_room_secret(), token=token))
        closed_code, closed_reason = await client.wait_closed()
        assert closed_code == code
        assert reason in (closed_reason or "")


async def test_another_rooms_token_does_not_open_a_room(tmp_path: Path) -> None:
    mine, theirs = new_room_secret(), new_room_secret()
    async with running_relay(tmp_path) as relay:
        client = await DocClient.open(doc_url(relay, theirs, token=relay_token(mine)))
        assert (await client.wait_closed())[0] == CloseCode.UNAUTHORIZED


async def test_a_malformed_document_id_is_closed_with_4404(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        for doc_id in ("ABC", "..%2F..%2Fetc", "0" * 33, "g" * 32):
            url = f"ws://127.0.0.1:{relay.port}/doc/{doc_id}?token=x"
            client = await DocClient.open(url)
            code, reason = await client.wait_closed()
            assert code == CloseCode.NOT_FOUND, doc_id
            assert "document id" in (reason or "")


async def test_awareness_is_forwarded_and_removed_when_its_connection_goes(
    tmp_path: Path,
) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        bob = await DocClient.open(doc_url(relay, secret))
        await alice.synced.wait()
        await bob.synced.wait()
        await alice.send_awareness(101, 1, {"name": "Alice", "status": "focusing"})
        await _wait(bob, lambda: bob.awareness.get(101) == {"name": "Alice", "status": "focusing"})
        # a newcomer is greeted with the presence already there
        carol = await DocClient.open(doc_url(relay, secret))
        await _wait(carol, lambda: carol.awareness.get(101) is not None)
        await alice.close()
        await _wait(bob, lambda: 101 in bob.awareness and bob.awareness[101] is None)
        await _wait(carol, lambda: carol.awareness.get(101, {}) is None)


async def test_a_client_cannot_overwrite_or_remove_someone_elses_presence(
    tmp_path: Path,
) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        mallory = await DocClient.open(doc_url(relay, secret))
        bob = await DocClient.open(doc_url(relay, secret))
        for c in (alice, mallory, bob):
            await c.synced.wait()
        await alice.send_awareness(7, 1, {"name": "Alice"})
        await _wait(bob, lambda: bob.awareness.get(7) == {"name": "Alice"})
        await mallory.send_awareness(7, 5, {"name": "Not Alice"})
        await mallory.send_awareness(7, 6, None)
        await mallory.send_awareness(8, 1, {"name": "Mallory"})  # a marker: processed in order
        await _wait(bob, lambda: bob.awareness.get(8) == {"name": "Mallory"})
        assert bob.awareness[7] == {"name": "Alice"}


async def test_idle_documents_leave_memory_and_reload_on_demand(tmp_path: Path) -> None:
    secret = new_room_secret()
    now = [0.0]
    async with running_relay(tmp_path, monotonic=lambda: now[0]) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        await alice.set("kept", "yes")
        await relay_committed(relay, room_id_for(secret), "kept", "yes")
        state = relay.hub.docs[room_id_for(secret)]
        await alice.close()
        await _wait_for(lambda: not state.subs)
        await relay.committer.flush()
        await _wait_for(lambda: state.inflight == 0)
        assert relay.hub.evict_idle() == []  # not idle for long enough yet
        now[0] += relay.config.idle_document_seconds + 1
        assert relay.hub.evict_idle() != []
        assert relay.hub.docs == {}
        bob = await DocClient.open(doc_url(relay, secret))
        await bob.wait_value("kept", "yes")
        assert len(relay.hub.docs) == 1


async def test_documents_survive_a_relay_restart(tmp_path: Path) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        await alice.set("before", "restart")
        await relay_committed(relay, room_id_for(secret), "before", "restart")
    async with running_relay(tmp_path) as relay:
        bob = await DocClient.open(doc_url(relay, secret))
        await bob.wait_value("before", "restart")


async def test_the_log_is_compacted_into_a_snapshot(tmp_path: Path) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path, compact_after_updates=10) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        bob = await DocClient.open(doc_url(relay, secret))
        for i in range(60):
            await alice.set(f"k{i}", i)
        await bob.wait_value("k59", 59)
        await relay.committer.flush()
        stats = await relay.committer.read(lambda s: s.stats())
        assert stats["snapshots"] == 1
        # each document compacts after 5-15 updates (jittered around 10): the log stays short
        assert stats["updates"] < 15
    async with running_relay(tmp_path) as relay:
        carol = await DocClient.open(doc_url(relay, secret))
        await carol.wait_value("k59", 59)
        assert [carol.value(f"k{i}") for i in range(60)] == list(range(60))


async def _wait(client: DocClient, predicate) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.relaykit import wait_until

    await wait_until(predicate, client.changed, "awareness")


async def _wait_for(predicate) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0)


async def test_an_update_the_relay_cannot_store_closes_its_sender_and_is_not_forwarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_room_secret()
    async with running_relay(tmp_path) as relay:
        alice = await DocClient.open(doc_url(relay, secret))
        bob = await DocClient.open(doc_url(relay, secret))
        await alice.synced.wait()
        await bob.synced.wait()

        def disk_full(*args: object, **kwargs: object) -> list[int]:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(relay.storage, "append_updates", disk_full)
        await alice.set("lost?", "no: alice still has it and resends after reconnecting")
        code, reason = await alice.wait_closed()
        assert code == CloseCode.INTERNAL
        assert "could not store" in (reason or "")
        monkeypatch.undo()
        await bob.set("marker", 1)
        carol = await DocClient.open(doc_url(relay, secret))
        await carol.wait_value("marker", 1)
        assert bob.value("lost?") is None
        assert carol.value("lost?") is None


@pytest.mark.parametrize("own_edit", [True, False], ids=["partly-cut", "wholly-cut"])
async def test_a_failed_update_closes_the_senders_of_what_was_cut_against_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_edit: bool
) -> None:
    """Bob's update holds Alice's edit too (he got it over the LAN), so the relay stores only
    the rest of it (or nothing): Alice's is in flight. When hers then fails, Bob must resend."""
    secret = new_room_secret()
    alices: Doc[Any] = Doc()
    alices.get("m", type=Map)["shared"] = "from alice"
    edit = alices.get_update()
    bobs: Doc[Any] = Doc()
    bobs.apply_update(edit)
    if own_edit:
        bobs.get("m", type=Map)["own"] = "from bob"
    both = bobs.get_update()
    # commits on the writer thread (synchronous=full), one update per batch
    async with running_relay(tmp_path, synchronous="full") as relay_:
        monkeypatch.setattr(relay.committer, "MAX_BATCH", 1)
        alice = await DocClient.open(doc_url(relay_, secret))
        bob = await DocClient.open(doc_url(relay_, secret))
        await alice.synced.wait()
        await bob.synced.wait()
        release, store = threading.Event(), relay_.storage.append_updates
        failures: list[bytes] = []

        def append(rows: list[tuple[str, bytes]], *, now: float) -> list[int]:
            if not failures and any(update == edit for _, update in rows):
                failures.append(edit)
                release.wait(DEADLINE)  # held until Bob's update is in flight behind it
                raise sqlite3.OperationalError("disk I/O error")
            return store(rows, now=now)

        monkeypatch.setattr(relay_.storage, "append_updates", append)
        state = relay_.hub.docs[room_id_for(secret)]
        await alice.push(edit)
        await poll(lambda: state.inflight == 1, "Alice's update in flight")
        await bob.push(both)
        if own_edit:
            await poll(lambda: state.inflight == 2, "Bob's update in flight")
        else:
            await poll(lambda: bool(state.unconfirmed[0].dependents), "Bob's update cut")
        release.set()

        assert (await alice.wait_closed())[0] == CloseCode.INTERNAL
        assert (await bob.wait_closed()) == (
            CloseCode.INTERNAL,
            "the relay could not store an update",
        )
        again = await DocClient.open(doc_url(relay_, secret))  # Bob's app reconnects
        await again.synced.wait()
        await again.push(both)
        carol = await DocClient.open(doc_url(relay_, secret))
        await carol.wait_value("shared", "from alice")
        assert carol.value("own") == ("from bob" if own_edit else None)
