"""A lived-in profile for screenshots, demos and benchmarks: rooms with teammates, a board,
direct messages and weeks of focus history, all made through the real core APIs.

The teammates are real profiles of their own (made beside the demo profile); their rooms,
posts and messages reach the demo profile the way a peer's would, as CRDT updates and sealed
envelopes, so everything the app shows verifies.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from focusmate.clock import FakeClock
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.stats import FocusSession
from focusmate.timer import Command
from focusmate.workspace import Workspace


@dataclass(frozen=True)
class Demo:
    profile: Path
    room_ids: tuple[str, ...]


def _exchange(a: Workspace, b: Workspace, room_id: str, *, now: float) -> None:
    """Bring two profiles' copies of a room level, as a sync would."""
    doc_a = a.document(room_id, kind=ROOM_KIND)
    doc_b = b.document(room_id, kind=ROOM_KIND)
    doc_b.apply_remote(doc_a.encode_update(doc_b.state_vector()), origin="peer", now=now)
    doc_a.apply_remote(doc_b.encode_update(doc_a.state_vector()), origin="peer", now=now)


def seed_demo(directory: Path, *, now: float, history_days: int = 45, seed: int = 7) -> Demo:
    """Make ``directory/you`` (the demo profile, named Alex) and two teammates beside it."""
    rng = random.Random(seed)
    clock = FakeClock(now - 3600)
    you = Workspace(directory / "you", clock=clock)
    sam = Workspace(directory / "sam", clock=clock)
    lee = Workspace(directory / "lee", clock=clock)
    for ws, name, emoji in ((you, "Alex", "🦊"), (sam, "Sam", "🐙"), (lee, "Lee", "🌵")):
        ws.profile_document().update(
            ws.identity, now=clock.now(), display_name=name, avatar_emoji=emoji
        )
    you.mark_onboarded()  # the demo skips the app's first run
    deep, invite = you.create_room("Deep Work", focus_min=25)
    design, design_invite = sam.create_room("Design crit", focus_min=45, short_break_min=10)
    for ws in (sam, lee):
        ws.join_room(invite.code)
        _exchange(you, ws, deep.room_id, now=clock.now())
    you.join_room(design_invite.code)
    _exchange(sam, you, design.room_id, now=clock.now())

    clock.advance(600)
    you.set_current_task(deep, "Quarterly report")
    posts = [
        (sam, "Morning! Anyone up for four rounds before lunch?"),
        (you, "In. Finishing the quarterly report today."),
        (lee, "Joining after standup — save me a seat."),
    ]
    for ws, text in posts:
        room = ws.find_room(deep.room_id)
        ws.board(room).post(text, now=clock.now())
        clock.advance(180)
        for other in (you, sam, lee):
            if other is not ws:
                _exchange(ws, other, deep.room_id, now=clock.now())
    first = you.board(deep).posts()[-1]
    sam_room = sam.find_room(deep.room_id)
    sam.board(sam_room).comment(first.post_id, "Good luck — ping me for a review.", now=clock.now())
    sam.board(sam_room).like(first.post_id, now=clock.now())
    _exchange(sam, you, deep.room_id, now=clock.now())

    for text in ("Can you look at slide 4 after this round?", "No rush — after the break."):
        sam.inbox.send(sam.contact(you.user_id), text)
        clock.advance(60)
    for envelope in sam.inbox.queued():
        you.inbox.receive(envelope)
    you.inbox.send(you.contact(sam.user_id), "Sure, at the long break.")

    day = 86_400.0
    sessions = []
    for back in range(history_days, 0, -1):
        if rng.random() < 0.2:
            continue  # a day off
        for n in range(rng.randint(1, 6)):
            start = now - back * day + 9 * 3600 + n * 1800
            sessions.append(
                FocusSession(
                    session_id=f"demo{back:03d}{n}",
                    room_id=rng.choice((deep.room_id, design.room_id)),
                    started_at=start,
                    duration_s=25 * 60,
                    task="",
                    completed=True,
                )
            )
    you.stats().record(sessions, now=now)

    clock.set(now - 7 * 60 - 18)  # the shared timer: 17:42 left in this focus round
    you.find_room(deep.room_id).timer_command(Command.START, now=clock.now())
    for ws in (sam, lee):
        ws.close()
    you.close()
    return Demo(directory / "you", (deep.room_id, design.room_id))
