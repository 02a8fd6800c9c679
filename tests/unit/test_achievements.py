"""Achievements: thresholds met exactly, unlock instants, time zones, and order independence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusmate.achievements import CATALOGUE, Achievement, Metric, Unlocked, progress, unlocked
from focusmate.stats import FocusSession

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=BERLIN)


def focus(
    start: datetime,
    *,
    minutes: float = 25,
    completed: bool = True,
    room: str = "room-1",
    sid: str | None = None,
) -> FocusSession:
    started_at = start.timestamp()
    return FocusSession(
        session_id=sid or f"s-{started_at:.0f}-{room}",
        room_id=room,
        started_at=started_at,
        duration_s=minutes * 60,
        task="",
        completed=completed,
    )


def one_per_day(days: int, *, start: datetime = MONDAY) -> list[FocusSession]:
    return [focus(start + timedelta(days=i)) for i in range(days)]


def hourly(n: int, *, start: datetime = MONDAY, minutes: float = 25) -> list[FocusSession]:
    """n sessions an hour apart (several days' worth when n is large)."""
    return [focus(start + timedelta(hours=i), minutes=minutes) for i in range(n)]


def ids(unlocks: list[Unlocked]) -> list[str]:
    return [u.achievement.id for u in unlocks]


def by_id(achievement_id: str) -> Achievement:
    return next(a for a in CATALOGUE if a.id == achievement_id)


# --- the catalogue ---------------------------------------------------------------------------


def test_catalogue_ids_are_unique_and_cover_the_brief() -> None:
    all_ids = [a.id for a in CATALOGUE]
    assert len(all_ids) == len(set(all_ids))
    required = {
        "first-session": (Metric.SESSIONS, 1),
        "sessions-10": (Metric.SESSIONS, 10),
        "sessions-100": (Metric.SESSIONS, 100),
        "sessions-1000": (Metric.SESSIONS, 1000),
        "streak-7": (Metric.STREAK_DAYS, 7),
        "streak-30": (Metric.STREAK_DAYS, 30),
        "focus-hours-25": (Metric.FOCUS_HOURS, 25),
        "focus-hours-100": (Metric.FOCUS_HOURS, 100),
    }
    for achievement_id, (metric, threshold) in required.items():
        assert (by_id(achievement_id).metric, by_id(achievement_id).threshold) == (
            metric,
            threshold,
        )
    assert all(a.threshold > 0 and a.title and a.description for a in CATALOGUE)


def test_every_metric_is_used() -> None:
    assert {a.metric for a in CATALOGUE} == set(Metric)


# --- unlocking -------------------------------------------------------------------------------


def test_nothing_is_unlocked_without_sessions() -> None:
    assert unlocked([], tz=BERLIN) == []
    assert all(value == 0 and unlock is None for _, value, unlock in progress([], tz=BERLIN))


def test_first_session_unlocks_at_its_end() -> None:
    first = focus(MONDAY)
    assert unlocked([first], tz=BERLIN) == [
        Unlocked(achievement=by_id("first-session"), unlocked_at=first.ended_at)
    ]


def test_interrupted_sessions_unlock_nothing() -> None:
    stopped = [focus(MONDAY + timedelta(days=i), completed=False) for i in range(40)]
    assert unlocked(stopped, tz=BERLIN) == []


def test_ten_sessions_exactly_at_the_threshold() -> None:
    sessions = one_per_day(10, start=MONDAY.replace(hour=12))
    assert "sessions-10" not in ids(unlocked(sessions[:9], tz=BERLIN))
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked(sessions, tz=BERLIN)}
    assert unlocks["sessions-10"] == sessions[9].ended_at


def test_focus_hours_exactly_at_the_threshold() -> None:
    sessions = hourly(60, start=MONDAY.replace(hour=12))  # 60 × 25 min = exactly 25 h
    assert "focus-hours-25" not in ids(unlocked(sessions[:59], tz=BERLIN))
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked(sessions, tz=BERLIN)}
    assert unlocks["focus-hours-25"] == sessions[59].ended_at


def test_interrupted_focus_time_does_not_count_towards_hours() -> None:
    sessions = [*hourly(59, start=MONDAY.replace(hour=12))]
    sessions.append(focus(MONDAY + timedelta(days=10), minutes=60, completed=False))
    assert "focus-hours-25" not in ids(unlocked(sessions, tz=BERLIN))


def test_seven_day_streak_unlocks_on_the_seventh_day() -> None:
    week = one_per_day(7, start=MONDAY.replace(hour=12))
    assert "streak-7" not in ids(unlocked(week[:6], tz=BERLIN))
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked(week, tz=BERLIN)}
    assert unlocks["streak-7"] == week[6].ended_at


def test_a_gap_resets_the_run_but_a_later_run_can_still_unlock() -> None:
    six = one_per_day(6, start=MONDAY.replace(hour=12))
    seven_later = one_per_day(7, start=MONDAY.replace(hour=12) + timedelta(days=7))
    assert "streak-7" not in ids(unlocked(six, tz=BERLIN))
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked(six + seven_later, tz=BERLIN)}
    assert unlocks["streak-7"] == seven_later[-1].ended_at


def test_a_late_session_filling_a_gap_joins_two_runs() -> None:
    # Thursday's session runs past midnight, so it replays after Friday's early one: the new day
    # then joins the six-day run before it and the one-day run after it.
    friday_before = datetime(2026, 1, 2, 12, 0, tzinfo=BERLIN)
    six_days = one_per_day(6, start=friday_before)  # Fri 2 .. Wed 7
    thursday = focus(datetime(2026, 1, 8, 23, 0, tzinfo=BERLIN), minutes=240)
    friday = focus(datetime(2026, 1, 9, 0, 30, tzinfo=BERLIN))
    assert friday.ended_at < thursday.ended_at
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked([*six_days, friday], tz=BERLIN)}
    assert "streak-7" not in unlocks
    unlocks = {
        u.achievement.id: u.unlocked_at for u in unlocked([*six_days, friday, thursday], tz=BERLIN)
    }
    assert unlocks["streak-7"] == thursday.ended_at
    values = {a.id: v for a, v, _ in progress([*six_days, friday, thursday], tz=BERLIN)}
    assert values["streak-7"] == 8


def test_thirty_day_streak() -> None:
    month = one_per_day(30, start=MONDAY.replace(hour=12))
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked(month, tz=BERLIN)}
    assert unlocks["streak-30"] == month[-1].ended_at
    assert "streak-30" not in ids(unlocked(month[:29], tz=BERLIN))


def test_four_round_day_depends_on_the_time_zone() -> None:
    # Four sessions 20:00..23:00 UTC: one local day in UTC, but the last is tomorrow in Berlin.
    evening = [focus(datetime(2026, 1, 5, 20 + i, 0, tzinfo=UTC)) for i in range(4)]
    assert "full-cycle" in ids(unlocked(evening, tz=ZoneInfo("UTC")))
    assert "full-cycle" not in ids(unlocked(evening, tz=BERLIN))


def test_marathon_needs_eight_in_a_day() -> None:
    day = hourly(8, start=MONDAY.replace(hour=8))
    assert "marathon" not in ids(unlocked(day[:7], tz=BERLIN))
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked(day, tz=BERLIN)}
    assert unlocks["marathon"] == day[7].ended_at
    assert unlocks["full-cycle"] == day[3].ended_at


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (3, 59, {"night-owl"}),
        (4, 0, {"early-bird"}),
        (6, 59, {"early-bird"}),
        (7, 0, set()),
        (21, 59, set()),
        (22, 0, {"night-owl"}),
        (0, 0, {"night-owl"}),
    ],
)
def test_early_bird_and_night_owl_boundaries_in_local_time(
    hour: int, minute: int, expected: set[str]
) -> None:
    session = focus(MONDAY.replace(hour=hour, minute=minute))
    got = set(ids(unlocked([session], tz=BERLIN))) & {"early-bird", "night-owl"}
    assert got == expected


def test_early_bird_uses_the_given_zone() -> None:
    six_utc = focus(datetime(2026, 1, 5, 6, 0, tzinfo=UTC))  # 07:00 in Berlin
    assert "early-bird" in ids(unlocked([six_utc], tz=ZoneInfo("UTC")))
    assert "early-bird" not in ids(unlocked([six_utc], tz=BERLIN))


def test_room_hopper_needs_three_distinct_rooms() -> None:
    two_rooms = [focus(MONDAY + timedelta(hours=i), room=f"r{i % 2}") for i in range(5)]
    assert "room-hopper" not in ids(unlocked(two_rooms, tz=BERLIN))
    third = focus(MONDAY + timedelta(hours=6), room="r2")
    unlocks = {u.achievement.id: u.unlocked_at for u in unlocked([*two_rooms, third], tz=BERLIN)}
    assert unlocks["room-hopper"] == third.ended_at


def test_unlocks_come_in_time_order_then_catalogue_order() -> None:
    sessions = hourly(10, start=MONDAY.replace(hour=5))  # first one at 05:00: early bird too
    unlocks = unlocked(sessions, tz=BERLIN)
    assert ids(unlocks)[:2] == ["first-session", "early-bird"]
    assert [u.unlocked_at for u in unlocks] == sorted(u.unlocked_at for u in unlocks)


def test_unlock_instant_follows_end_order_not_start_order() -> None:
    # A long session that started first ends after a short one that started later.
    long_one = focus(MONDAY, minutes=60, sid="a")
    short_one = focus(MONDAY + timedelta(minutes=10), minutes=5, sid="b")
    [first] = [
        u for u in unlocked([long_one, short_one], tz=BERLIN) if u.achievement.id == "first-session"
    ]
    assert first.unlocked_at == short_one.ended_at


def test_progress_reports_every_achievement_with_its_value() -> None:
    sessions = hourly(12, start=MONDAY.replace(hour=8))
    grid = progress(sessions, tz=BERLIN)
    assert [a for a, _, _ in grid] == list(CATALOGUE)
    values = {a.id: v for a, v, _ in grid}
    assert values["sessions-100"] == 12
    assert values["focus-hours-25"] == 5.0  # 12 × 25 min
    assert values["marathon"] == 12
    assert values["streak-7"] == 1
    assert {a.id: u for a, _, u in grid if u is not None} == {
        u.achievement.id: u for u in unlocked(sessions, tz=BERLIN)
    }


# --- determinism -----------------------------------------------------------------------------

# Coarse times (half-hour grid) and round durations make equal ended_at values likely, so the
# session_id tie-break is exercised.
_SESSION_FIELDS = st.tuples(
    st.integers(min_value=0, max_value=40 * 48),  # half-hours from the start: ~40 days
    st.sampled_from([5, 25, 30, 50, 55]),  # minutes
    st.booleans(),  # completed
    st.sampled_from(["r1", "r2", "r3", "r4"]),
)


@st.composite
def session_lists(draw: st.DrawFn) -> list[FocusSession]:
    fields = draw(st.lists(_SESSION_FIELDS, max_size=60))
    start = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)  # spans the March DST change in Berlin
    return [
        focus(
            start + timedelta(minutes=30 * slot),
            minutes=minutes,
            completed=completed,
            room=room,
            sid=f"id{i:03d}",
        )
        for i, (slot, minutes, completed, room) in enumerate(fields)
    ]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_permutation_gives_the_same_unlocks(data: st.DataObject) -> None:
    sessions = data.draw(session_lists())
    shuffled = data.draw(st.permutations(sessions))
    assert unlocked(shuffled, tz=BERLIN) == unlocked(sessions, tz=BERLIN)
    assert progress(shuffled, tz=BERLIN) == progress(sessions, tz=BERLIN)


@settings(max_examples=100, deadline=None)
@given(session_lists())
def test_unlocks_only_grow_as_sessions_are_added(sessions: list[FocusSession]) -> None:
    """Replaying a prefix (by end) gives a prefix of the unlocks: no badge is ever taken back."""
    ordered = sorted(sessions, key=lambda s: (s.ended_at, s.session_id))
    full = unlocked(ordered, tz=BERLIN)
    half = unlocked(ordered[: len(ordered) // 2], tz=BERLIN)
    assert set(ids(half)) <= set(ids(full))
    full_at = {u.achievement.id: u.unlocked_at for u in full}
    assert all(full_at[u.achievement.id] == u.unlocked_at for u in half)
