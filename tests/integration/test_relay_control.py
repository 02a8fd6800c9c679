"""The control channel of a real relay: handshake, clock, hosted timers, direct messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

from focusmate.clock import FakeClock
from focusmate.dm import Envelope, open_envelope, seal
from focusmate.identity import Identity
from focusmate.invite import Invite, relay_token
from focusmate.room import DOC_KIND
from focusmate.workspace import Workspace
from sync import control
from sync.clock import ClockSample, OffsetEstimator
from sync.control import CloseCode
from tests.integration.relaykit import (
    ControlClient,
    DocClient,
    doc_url,
    limits,
    relay_committed,
    running_relay,
)

RELAY_START = 1_800_000_000.0


async def test_handshake_welcomes_the_proven_identity(tmp_path: Path) -> None:
    me = Identity.generate()
    async with running_relay(tmp_path) as relay:
        client = await ControlClient.open(relay, me)
        welcome = await client.expect(control.Welcome)
        assert welcome.user_id == me.user_id
        assert welcome.max_frame == relay.limits.max_frame_bytes


async def test_a_signature_for_another_address_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        client = await ControlClient.open(
            relay, Identity.generate(), address="wss://some-other-relay.example"
        )
        code, reason = await client.wait_closed()
        assert code == CloseCode.UNAUTHORIZED
        assert "address" in (reason or "")


async def test_a_configured_public_url_is_the_address_to_sign(tmp_path: Path) -> None:
    public = "wss://relay.example.org"
    async with running_relay(tmp_path, public_urls=(public,)) as relay:
        ok = await ControlClient.open(relay, Identity.generate(), address=public + "/")
        await ok.expect(control.Welcome)
        refused = await ControlClient.open(relay, Identity.generate())  # signs ws://127.0.0.1:…
        assert (await refused.wait_closed())[0] == CloseCode.UNAUTHORIZED


async def test_pings_let_a_client_estimate_its_offset_to_the_relay_clock(tmp_path: Path) -> None:
    relay_clock = FakeClock(RELAY_START)
    my_clock_behind = RELAY_START - 7.25  # this client's clock is 7.25 s behind the relay's
    async with running_relay(tmp_path, clock=relay_clock) as relay:
        client = await ControlClient.open(relay, Identity.generate())
        await client.expect(control.Welcome)
        estimator = OffsetEstimator()
        for i in range(3):
            await client.send(control.Ping(id=str(i), t0=my_clock_behind))
            pong = await client.expect(control.Pong, lambda m, i=i: m.id == str(i))
            assert pong.t0 == my_clock_behind
            estimator.add(ClockSample.from_times(pong.t0, pong.t1, pong.t2, my_clock_behind))
        assert estimator.offset is not None
        assert abs(estimator.offset - 7.25) < 1e-9


async def _processed(client: ControlClient) -> None:
    """The relay handles a connection's messages in order: once a ping is answered, everything
    sent before it has been handled (and committed)."""
    await client.send(control.Ping(id="marker", t0=0))
    await client.expect(control.Pong, lambda m: m.id == "marker")


async def _room_on_relay(relay, tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    """A room created by a real workspace and pushed to the relay; (workspace, invite)."""
    ws = Workspace(tmp_path / "owner", clock=clock)
    room, invite = ws.create_room("Deep work")
    update = ws.document(room.room_id, kind=DOC_KIND).encode_update()
    pusher = await DocClient.open(doc_url(relay, invite.secret))
    await pusher.push(update)
    await relay_committed(relay, invite.room_id, "owner", ws.user_id, name="meta")
    return ws, invite, pusher


async def _subscribe(client: ControlClient, invite: Invite) -> None:
    await client.send(control.Subscribe(doc_id=invite.room_id, token=relay_token(invite.secret)))
    await client.expect(control.Subscribed)


async def test_the_relay_hosts_a_timer_command_on_its_own_clock(tmp_path: Path) -> None:
    relay_clock = FakeClock(RELAY_START)
    async with running_relay(tmp_path / "relay", clock=relay_clock) as relay:
        ws, invite, watcher = await _room_on_relay(relay, tmp_path, FakeClock(RELAY_START - 30))
        client = await ControlClient.open(relay, ws.identity)
        await client.expect(control.Welcome)
        await _subscribe(client, invite)
        await client.send(control.TimerRequest(id="t1", doc_id=invite.room_id, command="start"))
        applied = await client.expect(control.TimerApplied)
        assert applied.ref == "t1"
        assert applied.state["status"] == "running"
        assert applied.state["phase_started_at"] == RELAY_START  # the relay's clock
        assert applied.state["changed_at"] == RELAY_START
        # every client of the room sees the new state as an ordinary document update
        await watcher.wait_value("state", applied.state, name="timer")


async def test_a_non_member_cannot_command_the_timer(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", clock=FakeClock(RELAY_START)) as relay:
        _, invite, _ = await _room_on_relay(relay, tmp_path, FakeClock(RELAY_START))
        stranger = await ControlClient.open(relay, Identity.generate())
        await _subscribe(stranger, invite)  # knowing the token opens the document ...
        await stranger.send(control.TimerRequest(id="x", doc_id=invite.room_id, command="start"))
        error = await stranger.expect(control.Error)  # ... but the timer obeys members only
        assert (error.code, error.ref) == ("timer_refused", "x")
        assert "not a member" in error.message


async def test_a_timer_command_needs_a_subscription_and_a_known_command(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", clock=FakeClock(RELAY_START)) as relay:
        ws, invite, _ = await _room_on_relay(relay, tmp_path, FakeClock(RELAY_START))
        client = await ControlClient.open(relay, ws.identity)
        await client.send(control.TimerRequest(id="a", doc_id=invite.room_id, command="start"))
        assert (await client.expect(control.Error)).code == "not_subscribed"
        await _subscribe(client, invite)
        await client.send(control.TimerRequest(id="b", doc_id=invite.room_id, command="explode"))
        error = await client.expect(control.Error)
        assert (error.code, error.ref) == ("timer_refused", "b")


async def test_concurrent_timer_commands_apply_one_after_the_other(tmp_path: Path) -> None:
    relay_clock = FakeClock(RELAY_START)
    async with running_relay(tmp_path / "relay", clock=relay_clock) as relay:
        ws, invite, watcher = await _room_on_relay(relay, tmp_path, FakeClock(RELAY_START))
        client = await ControlClient.open(relay, ws.identity)
        await _subscribe(client, invite)
        for i, command in enumerate(("start", "pause", "resume")):
            await client.send(
                control.TimerRequest(id=str(i), doc_id=invite.room_id, command=command)
            )
        last = None
        for i in range(3):
            last = await client.expect(control.TimerApplied, lambda m, i=i: m.ref == str(i))
        assert last is not None
        assert last.state["status"] == "running"
        assert last.state["revision"] == 3
        await watcher.wait_value("state", last.state, name="timer")


async def test_a_dm_waits_for_an_offline_recipient_and_receipts_flow_back(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    clock = FakeClock(RELAY_START)
    async with running_relay(tmp_path, clock=clock) as relay:
        a = await ControlClient.open(relay, alice)
        await a.expect(control.Welcome)
        envelope = seal(alice, bob.public, "Lunch after this pomodoro?", now=clock.now())
        await a.send(control.DmSend(envelope=envelope.to_dict()))
        assert (await a.expect(control.DmAccepted)).id == envelope.id

        b = await ControlClient.open(relay, bob)  # bob comes online later
        delivered = await b.expect(control.DmDeliver)
        message = open_envelope(bob, Envelope.from_dict(delivered.envelope))
        assert message.text == "Lunch after this pomodoro?"
        assert message.sender == alice.user_id

        await b.send(control.DmAck(ids=(envelope.id,)))
        receipt = await a.expect(control.Receipt, lambda r: r.kind == "delivered")
        assert (receipt.message_id, receipt.by) == (envelope.id, bob.user_id)
        await a.send(control.DmAck(ids=(receipt.id,)))

        await b.send(control.DmRead(sender=alice.user_id, message_ids=(envelope.id,)))
        read = await a.expect(control.Receipt, lambda r: r.kind == "read")
        assert read.message_id == envelope.id
        await a.send(control.DmAck(ids=(read.id,)))
        await _processed(a)
        assert (await relay.committer.read(lambda s: s.mailbox_totals()))[0] == 0


async def test_an_unacknowledged_dm_is_delivered_again_after_a_disconnect(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running_relay(tmp_path) as relay:
        b = await ControlClient.open(relay, bob)
        await b.expect(control.Welcome)
        a = await ControlClient.open(relay, alice)
        envelope = seal(alice, bob.public, "are you there?", now=RELAY_START)
        await a.send(control.DmSend(envelope=envelope.to_dict()))
        await b.expect(control.DmDeliver)  # live
        await b.close()  # ... but bob crashed before saving it
        b = await ControlClient.open(relay, bob)
        again = await b.expect(control.DmDeliver)
        assert again.envelope["id"] == envelope.id
        await b.send(control.DmAck(ids=(envelope.id,)))
        await a.expect(control.Receipt)
        await b.close()
        b = await ControlClient.open(relay, bob)
        await b.expect(control.Welcome)
        await _processed(b)
        assert not any(isinstance(m, control.DmDeliver) for m in b.inbox)


async def test_the_relay_refuses_envelopes_it_cannot_attribute(tmp_path: Path) -> None:
    alice, bob, mallory = Identity.generate(), Identity.generate(), Identity.generate()
    async with running_relay(tmp_path) as relay:
        m = await ControlClient.open(relay, mallory)
        forged = seal(alice, bob.public, "from alice, honest", now=RELAY_START)
        await m.send(control.DmSend(envelope=forged.to_dict()))
        error = await m.expect(control.Error)
        assert (error.code, error.ref) == ("dm_refused", forged.id)
        tampered = seal(mallory, bob.public, "hi", now=RELAY_START).to_dict()
        tampered["sent_at"] = RELAY_START + 1
        await m.send(control.DmSend(envelope=tampered))
        assert "signature" in (await m.expect(control.Error)).message
        await m.send(control.DmSend(envelope={"not": "an envelope"}))
        assert (await m.expect(control.Error)).code == "dm_refused"


async def test_a_full_mailbox_refuses_more_until_it_is_fetched(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running_relay(tmp_path, limits=limits(mailbox_max_items=2)) as relay:
        a = await ControlClient.open(relay, alice)
        sent = [seal(alice, bob.public, f"note {i}", now=RELAY_START) for i in range(3)]
        for envelope in sent[:2]:
            await a.send(control.DmSend(envelope=envelope.to_dict()))
            await a.expect(control.DmAccepted)
        await a.send(control.DmSend(envelope=sent[2].to_dict()))
        error = await a.expect(control.Error)
        assert "full" in error.message
        b = await ControlClient.open(relay, bob)
        for _ in range(2):
            await b.expect(control.DmDeliver)
        await b.send(control.DmAck(ids=(sent[0].id, sent[1].id)))
        await a.expect(control.Receipt)
        await a.send(control.DmSend(envelope=sent[2].to_dict()))
        await a.expect(control.DmAccepted)


async def test_resending_a_dm_is_harmless(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running_relay(tmp_path) as relay:
        a = await ControlClient.open(relay, alice)
        envelope = seal(alice, bob.public, "once", now=RELAY_START)
        for _ in range(2):
            await a.send(control.DmSend(envelope=envelope.to_dict()))
            await a.expect(control.DmAccepted)
        assert (await relay.committer.read(lambda s: s.mailbox_totals()))[0] == 1


async def test_the_relay_database_holds_no_dm_plaintext(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    plaintext = "the launch code is 0000-correct-horse"
    async with running_relay(tmp_path) as relay:
        a = await ControlClient.open(relay, alice)
        await a.send(control.DmSend(envelope=seal(alice, bob.public, plaintext, now=1).to_dict()))
        await a.expect(control.DmAccepted)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"relay.db" not in stored  # sanity: we read file contents, not names
    assert plaintext.encode() not in stored
    assert b"correct-horse" not in stored


async def test_mailbox_items_older_than_the_limit_are_purged(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    clock = FakeClock(RELAY_START)
    async with running_relay(tmp_path, clock=clock) as relay:
        a = await ControlClient.open(relay, alice)
        await a.send(control.DmSend(envelope=seal(alice, bob.public, "old", now=1).to_dict()))
        await a.expect(control.DmAccepted)
        assert await relay.mailboxes.expire() == 0
        clock.advance(relay.limits.mailbox_max_age_seconds + 1)
        assert await relay.mailboxes.expire() == 1


async def test_several_connections_of_one_user_all_get_live_dms(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running_relay(tmp_path) as relay:
        laptop = await ControlClient.open(relay, bob)
        desktop = await ControlClient.open(relay, bob)
        await laptop.expect(control.Welcome)
        await desktop.expect(control.Welcome)
        a = await ControlClient.open(relay, alice)
        await a.send(control.DmSend(envelope=seal(alice, bob.public, "hi", now=1).to_dict()))
        await asyncio.gather(laptop.expect(control.DmDeliver), desktop.expect(control.DmDeliver))


async def test_read_receipts_need_well_formed_ids_and_are_bounded(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running_relay(tmp_path, limits=limits(max_receipts_per_request=2)) as relay:
        b = await ControlClient.open(relay, bob)
        await b.send(control.DmRead(sender=alice.user_id, message_ids=("x" * 4000,)))
        assert "hex" in (await b.expect(control.Error)).message
        await b.send(control.DmRead(sender=alice.user_id, message_ids=("a" * 32,) * 3))
        assert "at most 2" in (await b.expect(control.Error)).message
        await b.send(control.DmRead(sender="nobody", message_ids=("a" * 32,)))
        assert (await b.expect(control.Error)).code == "bad_request"


async def test_receipts_never_overflow_a_mailbox(tmp_path: Path) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with running_relay(tmp_path, limits=limits(mailbox_max_items=3)) as relay:
        b = await ControlClient.open(relay, bob)
        for i in range(3):  # alice is offline: each read receipt waits in her mailbox
            ids = (f"{i:032x}",)
            await b.send(control.DmRead(sender=alice.user_id, message_ids=ids))
        await b.send(control.DmRead(sender=alice.user_id, message_ids=("f" * 32,)))
        await _processed(b)
        assert (await relay.committer.read(lambda s: s.mailbox_usage(alice.user_id)))[0] == 3
        a = await ControlClient.open(relay, alice)
        for _ in range(3):
            await a.expect(control.Receipt)
        await _processed(a)
        assert not any(isinstance(m, control.Receipt) for m in a.inbox)
