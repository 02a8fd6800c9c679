"""LAN sessions between engines on loopback (discovery is tested in tests/lan): the mutual
handshake, room proofs, syncing with no relay, and refusing impostors."""

from __future__ import annotations

from pathlib import Path

from focusmate.clock import SystemClock
from focusmate.identity import Identity
from focusmate.workspace import Workspace
from sync.lan import LanNode
from tests.integration.relaykit import poll
from tests.integration.synckit import SkewedClock, connect, peers


async def test_two_peers_join_by_code_and_sync_with_no_relay(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        room, invite = alice.workspace.create_room("LAN party")
        bob.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in bob.engine.documents, "bob tracking the room")
        connect(alice, bob)
        await poll(
            lambda: any(r.exists for r in bob.workspace.rooms() if r.room_id == room.room_id),
            "the room reaching bob",
        )
        alice.workspace.board(room).post("over the LAN", now=alice.workspace.now())
        await poll(lambda: bob.posts(room.room_id) == ["over the LAN"], "alice's post")
        bob_room = bob.workspace.find_room("LAN party")
        bob.workspace.board(bob_room).post("back at you", now=bob.workspace.now())
        await poll(lambda: "back at you" in alice.posts(room.room_id), "bob's post")
        assert any(e["event"] == "link_up" for e in alice.events)


async def test_only_shared_rooms_sync_and_no_room_ids_are_revealed(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        shared, invite = alice.workspace.create_room("Shared")
        private, _ = alice.workspace.create_room("Private")
        bob.workspace.join_room(invite.code)
        await poll(lambda: shared.room_id in bob.engine.documents, "bob tracking the room")
        await poll(lambda: len(alice.engine.documents) == 2, "alice tracking both rooms")
        connect(alice, bob)
        await poll(lambda: any(s.sessions for s in alice.engine.lan_sessions), "a session")
        (session,) = alice.engine.lan_sessions
        assert set(session.sessions) == {shared.room_id}
        assert private.room_id not in bob.workspace.store.document_ids()


async def test_three_peers_meet_pairwise(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=3) as trio:
        alice, bob, carol = trio
        room, invite = alice.workspace.create_room("Trio")
        for peer in (bob, carol):
            peer.workspace.join_room(invite.code)
        for peer in trio:
            await poll(lambda peer=peer: room.room_id in peer.engine.documents, "tracking")
        connect(alice, bob)
        connect(bob, carol)  # carol reaches alice through bob
        await poll(
            lambda: any(r.exists for r in carol.workspace.rooms() if r.room_id == room.room_id),
            "the room reaching carol through bob",
        )
        carol_room = carol.workspace.find_room(room.room_id)
        carol.workspace.board(carol_room).post("hello from carol", now=carol.workspace.now())
        await poll(lambda: alice.posts(room.room_id) == ["hello from carol"], "via bob")


async def test_a_peer_that_is_not_who_its_advert_said_is_refused(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        impostor_of = Identity.generate().user_id  # the advert claimed this user
        assert alice.engine.lan is not None
        await alice.engine.lan.dial(impostor_of, "127.0.0.1", bob.port)  # bob answers
        assert any(e["event"] == "lan_refused" for e in alice.events + bob.events)
        assert not alice.engine.lan_sessions and not bob.engine.lan_sessions


async def test_a_listener_refuses_a_hello_bound_to_someone_else(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=1) as (bob,):
        mallory = Workspace(tmp_path / "mallory", clock=SystemClock())
        node = LanNode(
            identity=mallory.identity,
            rooms=bob.engine,  # (never reached)
            clock=mallory.clock,
            events=lambda e: None,
            on_session=lambda s: None,
            on_session_end=lambda s: None,
        )
        # mallory signs for a different listener than the one she dialled
        await node.dial(Identity.generate().user_id, "127.0.0.1", bob.port)
        assert any(e["event"] == "lan_refused" for e in bob.events)
        assert not bob.engine.lan_sessions


async def test_presence_travels_between_lan_peers(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        room, invite = alice.workspace.create_room("LAN presence")
        bob.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in bob.engine.documents, "bob tracking the room")
        alice.engine.set_presence(room.room_id, status="break", task=None)
        connect(alice, bob)  # the greeting carries alice's state
        await poll(
            lambda: any(p.get("status") == "break" for p in bob.engine.peers_present(room.room_id)),
            "alice on a break, as bob sees it",
        )


async def test_presence_is_renewed_while_a_peer_stays_and_forgotten_once_it_vanishes(
    tmp_path: Path,
) -> None:
    clock = SkewedClock()  # both peers' clocks: moving its skew makes time pass for both
    async with peers(tmp_path, lan=True, count=2, clock=clock) as (alice, bob):
        room, invite = alice.workspace.create_room("Who is here")
        bob.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in bob.engine.documents, "bob tracking the room")
        alice.engine.set_presence(room.room_id, status="focusing", task="slides")
        connect(alice, bob)
        await poll(lambda: bob.engine.peers_present(room.room_id), "alice present at bob")

        def heard() -> int:
            return sum(e["event"] == "presence" for e in bob.events)

        for _ in range(3):  # 3 x 20 s: twice the timeout, with alice still there
            before = heard()
            clock.skew += 20.0
            await poll(lambda before=before: heard() > before, "alice's renewal")
            assert [p["task"] for p in bob.engine.peers_present(room.room_id)] == ["slides"]
        await alice.engine.stop()  # gone without a goodbye: her state must time out
        clock.skew += 31.0
        await poll(lambda: bob.engine.peers_present(room.room_id) == [], "alice forgotten")
        told = [e for e in bob.events if e["event"] == "presence"]
        assert told[-1] == {"event": "presence", "room_id": room.room_id, "peers": []}


async def test_direct_messages_between_lan_peers_with_no_relay(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        room, invite = alice.workspace.create_room("LAN DMs")
        bob.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in bob.engine.documents, "bob tracking the room")
        connect(alice, bob)
        await poll(lambda: bool(alice.workspace.contacts()), "bob's keys reaching alice")
        sent = alice.workspace.inbox.send(alice.workspace.contact(bob.workspace.user_id), "hi")

        def state() -> str:
            (message,) = alice.workspace.inbox.conversation(bob.workspace.user_id)
            return message.state

        await poll(lambda: state() == "delivered", "delivered over the LAN")
        inbox = bob.workspace.inbox
        assert [m.text for m in inbox.conversation(alice.workspace.user_id)] == ["hi"]
        inbox.mark_read(alice.workspace.user_id)
        await poll(lambda: state() == "read", "read, as alice sees it")
        assert any(e["event"] == "dm_received" and e["id"] == sent.id for e in bob.events)


async def test_a_room_joined_while_connected_is_shared_at_once(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        room, invite = alice.workspace.create_room("Later")
        await poll(lambda: room.room_id in alice.engine.documents, "alice tracking the room")
        connect(alice, bob)
        await poll(lambda: bool(alice.engine.lan_sessions), "the LAN session")
        bob.workspace.join_room(invite.code)  # joined now, over the session already up
        await poll(
            lambda: any(r.exists for r in bob.workspace.rooms() if r.room_id == room.room_id),
            "the room reaching bob without reconnecting",
        )


async def test_a_join_made_while_connected_reaches_the_peer(tmp_path: Path) -> None:
    """Bob joins while connected; his join (his member entry) is in his copy before his engine
    tracks the room. Alice then matches the room first: her sync step 1 must not reach Bob
    before her proofs do (he ignores frames for a room he does not know they share), or his
    answer, with his join, never comes and she never sees him as a member."""
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        room, invite = alice.workspace.create_room("Who is here")
        await poll(lambda: room.room_id in alice.engine.documents, "alice tracking the room")
        connect(alice, bob)
        await poll(lambda: bool(alice.engine.lan_sessions), "the LAN session")
        bob.workspace.join_room(invite.code)
        bob_id = bob.workspace.user_id

        def alice_sees_bob() -> bool:
            alice.workspace.refresh()
            mine = next(r for r in alice.workspace.rooms() if r.room_id == room.room_id)
            return bob_id in mine.members()

        await poll(alice_sees_bob, "bob's join")


async def test_the_lan_is_switched_off_and_on_while_running(tmp_path: Path) -> None:
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        room, invite = alice.workspace.create_room("Toggle")
        bob.workspace.join_room(invite.code)
        await poll(lambda: room.room_id in bob.engine.documents, "bob tracking the room")
        connect(alice, bob)
        await poll(lambda: bool(alice.engine.lan_sessions), "a LAN session")
        await alice.engine.set_lan(False)
        assert alice.engine.lan is None
        await poll(lambda: not bob.engine.lan_sessions, "bob noticing alice left the LAN")
        await alice.engine.set_lan(True)
        connect(alice, bob)  # on a new port
        await poll(lambda: bool(bob.engine.lan_sessions), "a LAN session again")
        alice.workspace.board(room).post("back on the LAN", now=alice.workspace.now())
        await poll(lambda: "back on the LAN" in bob.posts(room.room_id), "alice's post")


async def test_a_room_offered_on_the_lan_can_be_joined_from_the_offer(tmp_path: Path) -> None:
    """Rooms stay private unless their member opts in; an offered room's invite reaches
    authenticated LAN peers, who can join with it and sync; withdrawing it takes it back."""
    async with peers(tmp_path, lan=True, count=2) as (alice, bob):
        offered, _ = alice.workspace.create_room("Open table")
        private, _ = alice.workspace.create_room("Private")
        await poll(lambda: len(alice.engine.documents) == 2, "alice tracking her rooms")
        alice.workspace.offer_on_lan(offered, True)
        connect(alice, bob)
        await poll(lambda: bool(bob.engine.offers_from_lan()), "the offer at bob")
        ((by, invite),) = bob.engine.offers_from_lan()
        assert by == alice.workspace.user_id
        assert invite.room_id == offered.room_id and invite.name_hint == "Open table"
        assert any(e["event"] == "lan_offers" and e["rooms"] == ["Open table"] for e in bob.events)
        bob.workspace.join_room(invite.link())
        await poll(lambda: bob.room_name(offered.room_id) == "Open table", "the room synced")
        assert bob.engine.offers_from_lan() == []  # held now: no longer on offer
        assert private.room_id not in bob.workspace.store.document_ids()
        alice.workspace.offer_on_lan(offered, False)
        alice.engine.refresh_offers()
        await poll(
            lambda: not any(s.offers for s in bob.engine.lan_sessions), "the offer withdrawn"
        )
