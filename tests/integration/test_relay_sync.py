"""Document sync through a real relay on port 0: clients, tokens, awareness, idle documents."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from focusmate.invite import new_room_secret, relay_token, room_id_for
from sync.control import CloseCode
from tests.integration.relaykit import DocClient, doc_url, relay_committed, running_relay


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
