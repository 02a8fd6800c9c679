"""The notification policy: the decision table exhaustively, and holding notices during focus."""

from __future__ import annotations

import itertools
import re

import pytest

from focusmate.notifications import (
    COLLAPSE_ABOVE,
    Channel,
    Decision,
    EventKind,
    HeldNotices,
    Notice,
    decide,
)
from focusmate.settings import Settings

URGENT = {EventKind.PHASE_CHANGED, EventKind.ACHIEVEMENT_UNLOCKED}


def notice(
    kind: EventKind = EventKind.POST_RECEIVED,
    *,
    at: float = 1_000.0,
    room_id: str | None = "room-1",
    title: str = "Ada posted",
) -> Notice:
    return Notice(kind=kind, title=title, body="body", at=at, room_id=room_id)


def test_event_kind_values_are_snake_case_names() -> None:
    for kind in EventKind:
        assert kind.value == kind.name.lower()
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", kind.value)


def test_channel_values() -> None:
    assert [c.value for c in Channel] == ["system", "in_app", "sound"]


@pytest.mark.parametrize("kind", list(EventKind))
def test_only_phase_changes_and_achievements_are_urgent(kind: EventKind) -> None:
    assert notice(kind).urgent is (kind in URGENT)


# --- decide: exhaustive ---------------------------------------------------------------------------

SETTINGS_VARIANTS = [
    Settings(
        do_not_disturb=dnd,
        notify_system=notify_system,
        notify_in_app=notify_in_app,
        sound_enabled=sound_enabled,
        sound_volume=volume,
    )
    for dnd, notify_system, notify_in_app, (sound_enabled, volume) in itertools.product(
        [False, True], [False, True], [False, True], [(True, 70), (True, 0), (False, 70)]
    )
]


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("focusing", [False, True])
@pytest.mark.parametrize("dnd", [False, True])
@pytest.mark.parametrize("window_active", [False, True])
@pytest.mark.parametrize("system_available", [False, True])
def test_decision_table(
    kind: EventKind, focusing: bool, dnd: bool, window_active: bool, system_available: bool
) -> None:
    """Each rule of the module header, checked for every combination of inputs and settings."""
    for settings in (s for s in SETTINGS_VARIANTS if s.do_not_disturb is dnd):
        decision = decide(
            notice(kind),
            settings,
            focusing=focusing,
            window_active=window_active,
            system_available=system_available,
        )
        channels = decision.channels
        assert isinstance(channels, frozenset)

        # Hold: nothing non-urgent during focus under do-not-disturb.
        if focusing and dnd and kind not in URGENT:
            assert decision == Decision(channels=frozenset(), held=True)
            continue
        assert decision.held is False

        # SOUND: phase changes only, and only when audible.
        audible = settings.sound_enabled and settings.sound_volume > 0
        assert (Channel.SOUND in channels) is (kind is EventKind.PHASE_CHANGED and audible)

        # SYSTEM: wanted when enabled, the window is not in front, and it is not a like.
        wants_system = (
            settings.notify_system and not window_active and kind is not EventKind.LIKE_RECEIVED
        )
        assert (Channel.SYSTEM in channels) is (wants_system and system_available)

        # IN_APP: when enabled, or as the fallback for a system notice with no tray.
        fallback = wants_system and not system_available
        assert (Channel.IN_APP in channels) is (settings.notify_in_app or fallback)

        # Likes never make a sound or a system notification.
        if kind is EventKind.LIKE_RECEIVED:
            assert not channels & {Channel.SOUND, Channel.SYSTEM}


# --- decide: worked examples ----------------------------------------------------------------------

SYS, APP, SND = Channel.SYSTEM, Channel.IN_APP, Channel.SOUND
BACKGROUND = {"focusing": False, "window_active": False, "system_available": True}


@pytest.mark.parametrize(
    ("kind", "settings", "state", "expected"),
    [
        pytest.param(
            EventKind.PHASE_CHANGED, Settings(), BACKGROUND, {SYS, APP, SND},
            id="phase change with the window in the background: everything",
        ),
        pytest.param(
            EventKind.PHASE_CHANGED, Settings(),
            {**BACKGROUND, "focusing": True, "window_active": True}, {APP, SND},
            id="phase change with the window in front: no OS notification",
        ),
        pytest.param(
            EventKind.ACHIEVEMENT_UNLOCKED, Settings(do_not_disturb=True),
            {**BACKGROUND, "focusing": True}, {SYS, APP},
            id="achievement gets through do-not-disturb, silently",
        ),
        pytest.param(
            EventKind.DM_RECEIVED, Settings(notify_in_app=False),
            {**BACKGROUND, "system_available": False}, {APP},
            id="no tray (offscreen): the banner stands in for the OS notification",
        ),
        pytest.param(
            EventKind.DM_RECEIVED, Settings(notify_in_app=False),
            {**BACKGROUND, "window_active": True, "system_available": False}, set(),
            id="no fallback when the window is in front: the system notice was not wanted",
        ),
        pytest.param(
            EventKind.LIKE_RECEIVED, Settings(notify_in_app=False),
            {**BACKGROUND, "system_available": False}, set(),
            id="likes never fall back: they never wanted a system notice",
        ),
        pytest.param(
            EventKind.LIKE_RECEIVED, Settings(), BACKGROUND, {APP},
            id="like: banner only",
        ),
        pytest.param(
            EventKind.POST_RECEIVED, Settings(do_not_disturb=True), BACKGROUND, {SYS, APP},
            id="do-not-disturb does nothing during a break",
        ),
        pytest.param(
            EventKind.POST_RECEIVED, Settings(), {**BACKGROUND, "focusing": True}, {SYS, APP},
            id="focusing without do-not-disturb: delivered",
        ),
        pytest.param(
            EventKind.PHASE_CHANGED, Settings(sound_volume=0),
            {**BACKGROUND, "window_active": True}, {APP},
            id="volume zero: no sound",
        ),
    ],
)  # fmt: skip
def test_decide_examples(
    kind: EventKind, settings: Settings, state: dict[str, bool], expected: set[Channel]
) -> None:
    decision = decide(notice(kind), settings, **state)
    assert decision == Decision(channels=frozenset(expected), held=False)


# --- HeldNotices ---------------------------------------------------------------------------------


def test_held_notices_start_empty_and_release_nothing() -> None:
    held = HeldNotices()
    assert len(held) == 0
    assert not held
    assert held.release() == []


def test_release_returns_notices_in_arrival_order_and_empties() -> None:
    held = HeldNotices()
    notices = [
        notice(EventKind.POST_RECEIVED, at=3.0),
        notice(EventKind.DM_RECEIVED, at=1.0, room_id=None),
        notice(EventKind.COMMENT_RECEIVED, at=2.0),
        notice(EventKind.POST_RECEIVED, at=4.0, room_id="room-2"),
    ]
    for n in notices:
        held.hold(n)
    assert len(held) == 4
    assert held.release() == notices  # arrival order, not `at` order
    assert len(held) == 0
    assert held.release() == []


def test_exactly_collapse_above_of_one_kind_and_room_stay_separate() -> None:
    held = HeldNotices()
    posts = [notice(at=float(i), title=f"post {i}") for i in range(COLLAPSE_ABOVE)]
    for n in posts:
        held.hold(n)
    assert COLLAPSE_ABOVE == 3
    assert held.release() == posts


def test_more_than_three_of_one_kind_and_room_become_one_summary() -> None:
    held = HeldNotices()
    for i in range(5):
        held.hold(notice(at=float(i), title=f"post {i}"))
    assert len(held) == 5
    [summary] = held.release(room_names={"room-1": "Deep Work"})
    assert summary == Notice(
        kind=EventKind.POST_RECEIVED,
        title="5 new posts in Deep Work",
        body="Latest: post 4",
        at=4.0,
        room_id="room-1",
    )
    assert summary.urgent is False


def test_summary_names_the_room_by_id_when_no_name_is_known() -> None:
    held = HeldNotices()
    for i in range(4):
        held.hold(notice(EventKind.COMMENT_RECEIVED, at=float(i), room_id="r-42"))
    [summary] = held.release(room_names={"other": "Other"})
    assert summary.title == "4 new comments in r-42"


@pytest.mark.parametrize(
    ("kind", "title"),
    [
        (EventKind.DM_RECEIVED, "4 new direct messages"),
        (EventKind.PEER_JOINED, "4 people joined"),
        (EventKind.LIKE_RECEIVED, "4 new likes"),
        (EventKind.ACHIEVEMENT_UNLOCKED, "4 achievements unlocked"),
        (EventKind.PHASE_CHANGED, "4 phase changes"),
        (EventKind.POST_RECEIVED, "4 new posts"),
        (EventKind.COMMENT_RECEIVED, "4 new comments"),
    ],
)
def test_summary_without_a_room_says_only_how_many(kind: EventKind, title: str) -> None:
    held = HeldNotices()
    for i in range(4):
        held.hold(notice(kind, at=float(i), room_id=None))
    [summary] = held.release()
    assert summary.title == title
    assert summary.kind is kind
    assert summary.room_id is None


def test_summary_takes_the_place_of_the_newest_in_its_group() -> None:
    held = HeldNotices()
    arrivals = [
        notice(EventKind.POST_RECEIVED, at=1.0, title="p1"),
        notice(EventKind.DM_RECEIVED, at=2.0, room_id=None, title="dm1"),
        notice(EventKind.POST_RECEIVED, at=3.0, title="p2"),
        notice(EventKind.POST_RECEIVED, at=4.0, title="p3"),
        notice(EventKind.LIKE_RECEIVED, at=5.0, title="like1"),
        notice(EventKind.POST_RECEIVED, at=6.0, title="p4"),
        notice(EventKind.COMMENT_RECEIVED, at=7.0, title="c1"),
    ]
    for n in arrivals:
        held.hold(n)
    released = held.release()
    assert [n.title for n in released] == ["dm1", "like1", "4 new posts in room-1", "c1"]
    assert [n.at for n in released] == sorted(n.at for n in released)


def test_collapsing_groups_by_kind_and_room_separately() -> None:
    held = HeldNotices()
    for i in range(4):
        held.hold(notice(EventKind.POST_RECEIVED, at=float(i), room_id="a", title=f"a{i}"))
        held.hold(notice(EventKind.POST_RECEIVED, at=float(i), room_id="b", title=f"b{i}"))
        held.hold(notice(EventKind.COMMENT_RECEIVED, at=float(i), room_id="a", title=f"c{i}"))
    held.hold(notice(EventKind.POST_RECEIVED, at=9.0, room_id="c", title="c-only"))
    titles = [n.title for n in held.release(room_names={"a": "Alpha", "b": "Beta"})]
    assert titles == [
        "4 new posts in Alpha",
        "4 new posts in Beta",
        "4 new comments in Alpha",
        "c-only",
    ]


def test_the_same_notice_held_twice_counts_twice() -> None:
    held = HeldNotices()
    same = notice(title="again")
    for _ in range(4):
        held.hold(same)
    assert [n.title for n in held.release()] == ["4 new posts in room-1"]


def test_holding_after_release_starts_fresh() -> None:
    held = HeldNotices()
    for i in range(4):
        held.hold(notice(at=float(i)))
    held.release()
    fresh = notice(at=10.0, title="fresh")
    held.hold(fresh)
    assert held.release() == [fresh]
