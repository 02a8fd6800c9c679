"""Every replica ends up showing the same room, whatever order updates arrive in.

Several users (and a second device of the owner) each keep their own store. They edit the room,
drive the timer, use the board and record focus sessions while updates travel in a random order,
some twice, some only later as a full state. Once everything has been delivered, every replica
must hold the same document and show the same room.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import tempfile
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusmate import timer
from focusmate.board import Board
from focusmate.document import LOCAL_ORIGIN, CrdtDocument
from focusmate.errors import IllegalTransitionError, NotFoundError
from focusmate.focus_log import StatsDocument
from focusmate.identity import Identity
from focusmate.room import LIMITS, Room, RoomSettings
from focusmate.stats import FocusSession
from focusmate.store import Store

ROOM_ID = "c0ffee" * 5 + "00"
STATS_ID = "stats:shared"
T0 = 1_700_000_000.0
ROOM_MAPS = ("meta", "settings", "members", "timer", "posts", "comments", "likes")


@dataclass
class Replica:
    index: int
    identity: Identity
    store: Store
    room_doc: CrdtDocument
    stats_doc: CrdtDocument
    room: Room
    board: Board
    stats: StatsDocument
    outbox: list[tuple[str, bytes]] = field(default_factory=list)

    def docs(self) -> dict[str, CrdtDocument]:
        return {"room": self.room_doc, "stats": self.stats_doc}


def make_replica(directory: Path, index: int, identity: Identity) -> Replica:
    store = Store(directory / f"r{index}.db")
    room_doc = CrdtDocument(store, ROOM_ID, kind="room", now=T0)
    stats_doc = CrdtDocument(store, STATS_ID, kind="stats", now=T0)
    room = Room(room_doc, me=identity.public)
    replica = Replica(
        index, identity, store, room_doc, stats_doc, room, Board(room, identity),
        StatsDocument(stats_doc),
    )  # fmt: skip
    for name, doc in replica.docs().items():
        doc.on_change(
            lambda update, origin, name=name: (
                replica.outbox.append((name, update)) if origin == LOCAL_ORIGIN else None
            )
        )
    return replica


class Network:
    """Links between every pair of replicas, delivering updates in a random interleaving.

    Links race each other, updates within one link arrive out of order (one may take the long
    way through a relay while the next comes over the LAN), some arrive a second time much
    later, and some replicas catch up from a full state.
    """

    def __init__(self, replicas: list[Replica], rng: random.Random) -> None:
        self.replicas = replicas
        self.rng = rng
        self.links: dict[tuple[int, int], deque[tuple[str, bytes]]] = defaultdict(deque)
        self.duplicates: list[tuple[int, str, bytes]] = []
        self.now = T0

    def collect(self) -> None:
        for source in self.replicas:
            for name, update in source.outbox:
                for target in self.replicas:
                    if target is not source:
                        self.links[source.index, target.index].append((name, update))
            source.outbox.clear()

    def _apply(self, target: int, name: str, update: bytes) -> None:
        self.replicas[target].docs()[name].apply_remote(update, origin="peer", now=self.now)

    def deliver_some(self, count: int) -> None:
        """Deliver ``count`` updates from random links; some will arrive again later."""
        self.collect()
        for _ in range(count):
            busy = [link for link, queue in self.links.items() if queue]
            if self.duplicates and (not busy or self.rng.random() < 0.1):
                self._apply(*self.duplicates.pop(self.rng.randrange(len(self.duplicates))))
                continue
            if not busy:
                return
            link = self.rng.choice(busy)
            queue = self.links[link]
            queue.rotate(-self.rng.randrange(len(queue)))  # any pending update may come next
            name, update = queue.popleft()
            self._apply(link[1], name, update)
            if self.rng.random() < 0.2:
                self.duplicates.append((link[1], name, update))

    def deliver_all(self) -> None:
        # Some replicas catch up from a full state first, as after a reconnect.
        for target in self.replicas:
            if self.rng.random() < 0.5:
                source = self.rng.choice([r for r in self.replicas if r is not target])
                for name, doc in source.docs().items():
                    self._apply(target.index, name, doc.encode_update())
        self.collect()
        while any(self.links.values()) or self.duplicates:
            self.deliver_some(1)


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "settings",
                "timer",
                "timer",
                "post",
                "post",
                "comment",
                "like",
                "unlike",
                "edit",
                "delete",
                "session",
                "deliver",
                "deliver",
            ]
        ),
        st.integers(min_value=0, max_value=4),  # actor
        st.integers(min_value=0, max_value=10**6),  # choice
    ),
    min_size=5,
    max_size=30,
)


def run_op(replica: Replica, op: str, choice: int, now: float, net: Network) -> None:
    rng = random.Random(choice)
    posts = replica.board.posts()
    own = [p for p in posts if p.author == replica.identity.user_id]
    match op:
        case "settings":
            if replica.room.owner_id != replica.identity.user_id:
                return
            key = rng.choice([*LIMITS, "auto_advance", "name"])
            if key == "name":
                value: Any = f"Room {choice}"
            elif key == "auto_advance":
                value = rng.random() < 0.5
            else:
                low, high = LIMITS[key]
                value = rng.randint(low, high)
            replica.room.update_settings(now=now, **{key: value})
        case "timer":
            command = rng.choice(list(timer.Command))
            with contextlib.suppress(IllegalTransitionError):  # not legal from this state
                replica.room.timer_command(command, now=now)
        case "post":
            replica.board.post(f"post {choice} by {replica.index}", now=now)
        case "comment" if posts:
            target = rng.choice(posts)
            with contextlib.suppress(NotFoundError):  # deleted on another replica meanwhile
                replica.board.comment(target.post_id, f"comment {choice}", now=now)
        case "like" if posts:
            replica.board.like(rng.choice(posts).post_id, now=now)
        case "unlike" if posts:
            replica.board.unlike(rng.choice(posts).post_id, now=now)
        case "edit" if own:
            replica.board.edit_post(rng.choice(own).post_id, f"edited {choice}", now=now)
        case "delete" if own:
            replica.board.delete_post(rng.choice(own).post_id, now=now)
        case "session":
            session = FocusSession(
                session_id=f"s{replica.index}-{choice}",
                room_id=ROOM_ID,
                started_at=now - 1500,
                duration_s=float(rng.randint(60, 1500)),
                task=f"task {choice % 7}",
                completed=rng.random() < 0.7,
            )
            replica.stats.record([session], now=now)
        case "deliver":
            net.deliver_some(1 + choice % 8)
        case _:
            pass


def shared_view(replica: Replica) -> dict[str, Any]:
    """Everything that must agree; ``liked_by_me`` is per user and so left out."""
    room = replica.room
    return {
        "raw": {name: replica.room_doc.map(name).to_py() for name in ROOM_MAPS},
        "settings": room.settings,
        "members": room.members(),
        "timer": room.timer_state,
        "posts": [dataclasses.replace(p, liked_by_me=False) for p in replica.board.posts()],
        "sessions": replica.stats.sessions(),
        "raw_sessions": replica.stats_doc.map("sessions").to_py(),
    }


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(
    members=st.integers(min_value=2, max_value=4),
    ops=OPS,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_replicas_converge(members: int, ops: list[tuple[str, int, int]], seed: int) -> None:
    check_convergence(members, ops, random.Random(seed))


def check_convergence(members: int, ops: list[tuple[str, int, int]], rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        owner = Identity.generate()
        # Replica 0 and 1 are the owner's two devices; the rest are members.
        identities = [owner, owner, *(Identity.generate() for _ in range(members - 1))]
        replicas = [make_replica(directory, i, ident) for i, ident in enumerate(identities)]
        net = Network(replicas, rng)
        first = replicas[0]
        first.room.initialise(RoomSettings(name="Convergence"), my_name="Owner", now=T0)
        first.outbox.clear()
        for replica in replicas[1:]:
            replica.room_doc.apply_remote(first.room_doc.encode_update(), origin="peer", now=T0)
            replica.room.join(my_name=f"User {replica.index}", now=T0 + 1)

        for step, (op, actor, choice) in enumerate(ops):
            now = T0 + 10 + 37 * step
            net.now = now
            run_op(replicas[actor % len(replicas)], op, choice, now, net)
        net.deliver_all()

        views = [shared_view(replica) for replica in replicas]
        for replica, view in zip(replicas[1:], views[1:], strict=True):
            assert view == views[0], f"replica {replica.index} differs from replica 0"
        assert replicas[0].room.settings.name.startswith(("Convergence", "Room"))
        for replica in replicas:
            replica.store.close()


def test_out_of_order_updates_from_one_peer_converge(tmp_path: Path) -> None:
    owner = Identity.generate()
    laptop = make_replica(tmp_path, 0, owner)
    phone = make_replica(tmp_path, 1, owner)
    member = make_replica(tmp_path, 2, Identity.generate())
    laptop.room.initialise(RoomSettings(name="Order"), my_name="Owner", now=T0)
    for replica in (phone, member):
        replica.room_doc.apply_remote(laptop.room_doc.encode_update(), origin="peer", now=T0)
    laptop.outbox.clear()
    # The phone changes the timer twice, then posts; the member gets these three updates in
    # reverse order (say the first came the long way round, through a relay).
    phone.room.timer_command(timer.Command.START, now=T0 + 10)
    phone.room.timer_command(timer.Command.PAUSE, now=T0 + 20)
    phone.board.post("hello", now=T0 + 30)
    for _name, update in reversed(phone.outbox):
        member.room_doc.apply_remote(update, origin="peer", now=T0 + 40)

    assert member.room.timer_state == phone.room.timer_state
