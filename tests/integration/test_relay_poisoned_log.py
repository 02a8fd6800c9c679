"""A room log already poisoned on disk: two updates, each valid alone, that pycrdt cannot
integrate together (written by a relay from before updates were checked against the document,
see test_relay_fuzz.py). No pycrdt client can sync such a room and the relay cannot repair it
without dropping someone's data, so it keeps every byte, and the rest of the relay must go on:
the document loads, takes writes, compacts (merged byte-wise instead of folded, logged once),
leaves memory when idle, and hosted timer commands on it get a clear refusal.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, get_state, merge_updates
from websockets.asyncio.client import connect

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from relay.config import DATABASE_NAME
from relay.storage import RelayStorage
from sync import control
from sync.ysync import SyncStep1, SyncUpdate, decode_message, encode_message
from tests.integration.relaykit import ControlClient, doc_url, poll, running_relay
from tests.pycrdt_panics import EQUIVOCATION, EQUIVOCATION_BASE


def edit(key: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("m", type=Map)[key] = key
    return doc.get_update()


def poison_on_disk(data_dir: Path, doc_id: str, *updates: bytes) -> None:
    storage = RelayStorage(data_dir / DATABASE_NAME)
    storage.begin()
    storage.append_updates([(doc_id, u) for u in updates], now=time.time())
    storage.commit()
    storage.close()


def events(caplog: pytest.LogCaptureFixture, name: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == name)


async def test_a_poisoned_log_loads_takes_writes_compacts_and_leaves_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="focusmate.relay")
    secret = new_room_secret()
    doc_id = room_id_for(secret)
    before = edit("before")
    poison_on_disk(tmp_path, doc_id, before, EQUIVOCATION_BASE, EQUIVOCATION)
    offset = [0.0]
    async with running_relay(tmp_path, monotonic=lambda: time.monotonic() + offset[0]) as relay:
        later = edit("later")
        async with connect(doc_url(relay, secret), compression=None) as ws:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            greeting = decode_message(frame)
            assert isinstance(greeting, SyncStep1)  # loaded and served
            await ws.send(encode_message(SyncUpdate(later)))
            state = relay.hub.docs[doc_id]
            await poll(lambda: state.last_id == 4, "the write to be committed")
            # hosted timer commands read the document: a clear refusal, the link stays up
            ctl = await ControlClient.open(relay, Identity.generate())
            await ctl.expect(control.Welcome)
            await ctl.send(control.Subscribe(doc_id=doc_id, token=relay_token(secret)))
            await ctl.expect(control.Subscribed)
            await ctl.send(control.TimerRequest(id="t", doc_id=doc_id, command="start"))
            refusal = await ctl.expect(control.Error)
            assert refusal.code == "timer_refused"
            assert "cannot be read" in refusal.message
            await ctl.send(control.Ping(id="p", t0=time.time()))
            await ctl.expect(control.Pong)
            await ctl.close()
        await poll(lambda: not relay.peers, "the connections to go")
        offset[0] += 3600.0
        assert relay.hub.evict_idle() == [doc_id]  # compacted on the way out, no exception
        await relay.committer.flush()
        stored = await relay.committer.read(lambda s: s.load_doc(doc_id))
        assert stored.pending == 0  # the snapshot replaced the log...
        (snapshot,) = stored.updates
        everything = merge_updates(before, EQUIVOCATION_BASE, EQUIVOCATION, later)
        assert get_state(snapshot) == get_state(everything)  # ...and kept every update
        assert (await relay.hub.open(doc_id)).merged() == snapshot  # and it loads again
    assert events(caplog, "relay.document_unfoldable") == 1
    assert events(caplog, "relay.document_unreadable") == 1
    assert not [r for r in caplog.records if r.getMessage() == "relay.connection_failed"]


def test_admin_compaction_merges_a_poisoned_log_and_goes_on_with_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="focusmate.relay")
    poisoned, healthy = room_id_for(new_room_secret()), room_id_for(new_room_secret())
    a = edit("a")
    poison_on_disk(tmp_path, poisoned, a, EQUIVOCATION_BASE, EQUIVOCATION)
    poison_on_disk(tmp_path, healthy, edit("b"), edit("c"))
    storage = RelayStorage(tmp_path / DATABASE_NAME)
    try:
        for doc_id, count in ((poisoned, 3), (healthy, 2)):
            storage.begin()
            assert storage.compact_doc(doc_id, now=time.time()) == count
            storage.commit()
        (snapshot,) = storage.load_doc(poisoned).updates
        assert get_state(snapshot) == get_state(merge_updates(a, EQUIVOCATION_BASE, EQUIVOCATION))
        (folded,) = storage.load_doc(healthy).updates
        doc: Doc[Any] = Doc()
        doc.apply_update(folded)
        assert doc.get("m", type=Map).to_py() == {"b": "b", "c": "c"}
    finally:
        storage.close()
    assert events(caplog, "relay.document_unfoldable") == 1
