"""Stats: validation, calendar totals across zones and DST, streaks, daily bars and CSV export."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusmate.errors import ValidationError
from focusmate.stats import (
    CSV_HEADER,
    MAX_DURATION_S,
    TASK_MAX,
    DayTotal,
    FocusSession,
    Streaks,
    Totals,
    daily_totals,
    streaks,
    summarize,
    to_csv,
    total,
    validate_task,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")

_ids = count()


def focus(
    start: datetime,
    *,
    minutes: float = 25,
    completed: bool = True,
    room: str = "room-1",
    task: str = "",
) -> FocusSession:
    """A session starting at an aware ``start``; ids are unique and increasing."""
    return FocusSession(
        session_id=f"s{next(_ids):04d}",
        room_id=room,
        started_at=start.timestamp(),
        duration_s=minutes * 60,
        task=task,
        completed=completed,
    )


def at(
    year: int, month: int, day: int, hour: int = 9, minute: int = 0, *, tz: ZoneInfo
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def valid_dict() -> dict[str, object]:
    return {
        "session_id": "s1",
        "room_id": "r1",
        "started_at": 1_767_225_600.0,
        "duration_s": 1500.0,
        "task": "write the report",
        "completed": True,
    }


# --- FocusSession and validation -------------------------------------------------------------


def test_validate_task_strips_and_allows_exactly_task_max() -> None:
    assert validate_task("  read chapter 3 \t") == "read chapter 3"
    assert validate_task("") == ""
    assert validate_task(" " + "x" * TASK_MAX + " ") == "x" * TASK_MAX


def test_validate_task_rejects_one_char_too_long() -> None:
    with pytest.raises(ValidationError, match=f"at most {TASK_MAX} characters, got {TASK_MAX + 1}"):
        validate_task("x" * (TASK_MAX + 1))


def test_validate_task_rejects_a_newline_inside() -> None:
    with pytest.raises(ValidationError, match="single line"):
        validate_task("first\nsecond")


def test_session_normalises_numbers_and_task() -> None:
    session = FocusSession(
        session_id="s1", room_id="r1", started_at=100, duration_s=1500, task=" t ", completed=True
    )
    assert session.started_at == 100.0
    assert isinstance(session.started_at, float)
    assert isinstance(session.duration_s, float)
    assert session.task == "t"
    assert session.ended_at == 1600.0


def test_to_dict_from_dict_round_trip() -> None:
    session = focus(at(2026, 1, 1, tz=BERLIN), task="plan", completed=False)
    assert FocusSession.from_dict(session.to_dict()) == session


def test_from_dict_accepts_pycrdt_floats_and_plain_ints() -> None:
    as_floats = FocusSession.from_dict(valid_dict())
    as_ints = FocusSession.from_dict(
        {**valid_dict(), "started_at": 1_767_225_600, "duration_s": 1500}
    )
    assert as_floats == as_ints


def test_from_dict_ignores_unknown_keys_from_newer_peers() -> None:
    assert FocusSession.from_dict({**valid_dict(), "mood": "great"}) == FocusSession.from_dict(
        valid_dict()
    )


def test_from_dict_accepts_the_longest_allowed_duration() -> None:
    assert FocusSession.from_dict({**valid_dict(), "duration_s": 4 * 3600.0}).duration_s == 14400


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"session_id": ""}, "session_id must be 1–128 characters"),
        ({"session_id": 7.0}, "session_id must be text, got float"),
        ({"room_id": None}, "room_id must be text, got NoneType"),
        ({"room_id": "r" * 129}, "room_id must be 1–128 characters, got 129"),
        ({"started_at": "1767225600"}, "started_at must be a number, got str"),
        ({"started_at": True}, "started_at must be a number, got bool"),
        ({"started_at": math.nan}, "started_at must be a finite number"),
        ({"started_at": -1.0}, "started_at must be a Unix time between 0 and"),
        ({"started_at": 1e300}, "started_at must be a Unix time between 0 and"),
        ({"duration_s": 0.0}, "duration_s must be more than 0 and at most 14400"),
        ({"duration_s": -25.0}, "duration_s must be more than 0"),
        ({"duration_s": MAX_DURATION_S + 0.5}, "at most 14400 seconds"),
        ({"duration_s": math.inf}, "duration_s must be a finite number"),
        ({"task": 3.0}, "task must be text, got float"),
        ({"task": "x" * (TASK_MAX + 1)}, "task must be at most 200 characters"),
        ({"completed": 1.0}, "completed must be true or false, got float"),
        ({"completed": "false"}, "completed must be true or false, got str"),
    ],
)
def test_from_dict_rejects_bad_fields(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FocusSession.from_dict({**valid_dict(), **changes})


def test_from_dict_names_every_missing_field() -> None:
    data = valid_dict()
    del data["duration_s"], data["task"]
    with pytest.raises(ValidationError, match="missing duration_s, task"):
        FocusSession.from_dict(data)


def test_from_dict_rejects_a_non_mapping() -> None:
    with pytest.raises(ValidationError, match="must be a mapping, got list"):
        FocusSession.from_dict([("session_id", "s1")])  # type: ignore[arg-type]


def test_constructor_validates_like_from_dict() -> None:
    with pytest.raises(ValidationError, match="duration_s must be more than 0"):
        FocusSession(
            session_id="s", room_id="r", started_at=0, duration_s=0, task="", completed=True
        )


# --- Totals and summaries --------------------------------------------------------------------


def test_interrupted_sessions_add_focus_time_but_not_sessions() -> None:
    sessions = [
        focus(at(2026, 1, 1, 9, tz=BERLIN), minutes=25),
        focus(at(2026, 1, 1, 10, tz=BERLIN), minutes=10, completed=False),
    ]
    assert total(sessions) == Totals(focus_s=35 * 60, sessions=1, interrupted=1)


def test_total_of_nothing_is_zero() -> None:
    assert total([]) == Totals(focus_s=0.0, sessions=0, interrupted=0)


def test_late_utc_session_is_tomorrow_in_berlin_and_today_in_new_york() -> None:
    late = focus(datetime(2026, 1, 1, 23, 30, tzinfo=UTC))  # 00:30 Jan 2 Berlin, 18:30 NY
    in_berlin = summarize([late], today=date(2026, 1, 2), tz=BERLIN)
    in_new_york = summarize([late], today=date(2026, 1, 2), tz=NEW_YORK)
    assert in_berlin.today.sessions == 1
    assert in_new_york.today.sessions == 0
    assert summarize([late], today=date(2026, 1, 1), tz=NEW_YORK).today.sessions == 1


def test_session_belongs_to_the_day_it_started_even_when_it_ends_after_midnight() -> None:
    across = focus(at(2026, 1, 1, 23, 50, tz=BERLIN), minutes=25)
    assert summarize([across], today=date(2026, 1, 1), tz=BERLIN).today.focus_s == 25 * 60
    assert summarize([across], today=date(2026, 1, 2), tz=BERLIN).today.focus_s == 0


def test_week_is_the_iso_week_monday_to_sunday() -> None:
    # 2026-01-01 is a Thursday: its ISO week runs Mon 2025-12-29 .. Sun 2026-01-04.
    sunday_before = focus(at(2025, 12, 28, 23, 59, tz=BERLIN))
    monday = focus(at(2025, 12, 29, 0, 0, tz=BERLIN))
    sunday = focus(at(2026, 1, 4, 23, 59, tz=BERLIN))
    monday_after = focus(at(2026, 1, 5, 0, 0, tz=BERLIN))
    summary = summarize(
        [sunday_before, monday, sunday, monday_after], today=date(2026, 1, 1), tz=BERLIN
    )
    assert summary.week.sessions == 2
    assert summary.month.sessions == 2  # Jan 4 and Jan 5; Dec 29 is last year's December
    assert summary.today.sessions == 0
    assert summary.all_time.sessions == 4


def test_week_when_today_is_sunday_and_monday() -> None:
    sessions = [focus(at(2026, 1, day, tz=BERLIN)) for day in range(4, 7)]  # Sun, Mon, Tue
    assert summarize(sessions, today=date(2026, 1, 4), tz=BERLIN).week.sessions == 1
    assert summarize(sessions, today=date(2026, 1, 5), tz=BERLIN).week.sessions == 2


def test_month_boundary_is_local_midnight() -> None:
    last_of_january = focus(at(2026, 1, 31, 23, 59, tz=BERLIN), completed=False)
    first_of_february = focus(at(2026, 2, 1, 0, 0, tz=BERLIN))
    summary = summarize([last_of_january, first_of_february], today=date(2026, 2, 1), tz=BERLIN)
    assert summary.month == Totals(focus_s=25 * 60, sessions=1, interrupted=0)
    assert summary.all_time == Totals(focus_s=50 * 60, sessions=1, interrupted=1)


def test_month_of_another_year_does_not_count() -> None:
    a_year_ago = focus(at(2025, 2, 10, tz=BERLIN))
    assert summarize([a_year_ago], today=date(2026, 2, 1), tz=BERLIN).month.sessions == 0


def test_dst_spring_forward_day_keeps_both_ends_of_the_short_day() -> None:
    # 2026-03-29 in Berlin has 23 hours: 02:00 jumps to 03:00.
    sessions = [
        focus(at(2026, 3, 29, 0, 30, tz=BERLIN)),
        focus(at(2026, 3, 29, 3, 0, tz=BERLIN)),
        focus(at(2026, 3, 29, 23, 30, tz=BERLIN)),
        focus(at(2026, 3, 30, 0, 0, tz=BERLIN)),
    ]
    assert summarize(sessions, today=date(2026, 3, 29), tz=BERLIN).today.sessions == 3


def test_dst_fall_back_repeated_hour_counts_on_the_same_day() -> None:
    # 2026-10-25 in Berlin: 02:30 happens twice (fold 0 in CEST, fold 1 in CET).
    first = focus(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0))
    second = focus(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1))
    assert second.started_at - first.started_at == 3600
    assert summarize([first, second], today=date(2026, 10, 25), tz=BERLIN).today.sessions == 2


# --- Daily totals ----------------------------------------------------------------------------


def test_daily_totals_has_exactly_days_entries_oldest_first_zero_filled() -> None:
    sessions = [
        focus(at(2026, 1, 1, tz=BERLIN)),
        focus(at(2026, 1, 1, 14, tz=BERLIN), minutes=5, completed=False),
        focus(at(2026, 1, 3, tz=BERLIN)),
        focus(at(2025, 12, 27, tz=BERLIN)),  # one day too early for a 7-day chart
        focus(at(2026, 1, 3, 23, 30, tz=BERLIN) + timedelta(hours=1)),  # Jan 4: after `end`
    ]
    bars = daily_totals(sessions, end=date(2026, 1, 3), days=7, tz=BERLIN)
    assert [bar.day for bar in bars] == [date(2025, 12, 28) + timedelta(days=i) for i in range(7)]
    assert bars[-3] == DayTotal(day=date(2026, 1, 1), focus_s=30 * 60, sessions=1)
    assert bars[-1] == DayTotal(day=date(2026, 1, 3), focus_s=25 * 60, sessions=1)
    assert sum(bar.sessions for bar in bars) == 2
    assert bars[0] == DayTotal(day=date(2025, 12, 28), focus_s=0.0, sessions=0)


def test_daily_totals_thirty_days_across_dst() -> None:
    sessions = [focus(at(2026, 3, 29, 0, 30, tz=BERLIN)), focus(at(2026, 3, 29, 23, 30, tz=BERLIN))]
    bars = daily_totals(sessions, end=date(2026, 4, 10), days=30, tz=BERLIN)
    assert len(bars) == 30
    assert len({bar.day for bar in bars}) == 30
    assert [bar.sessions for bar in bars if bar.day == date(2026, 3, 29)] == [2]


def test_daily_totals_edge_sizes() -> None:
    one = focus(at(2026, 1, 1, tz=BERLIN))
    assert daily_totals([one], end=date(2026, 1, 1), days=1, tz=BERLIN) == [
        DayTotal(day=date(2026, 1, 1), focus_s=1500.0, sessions=1)
    ]
    assert daily_totals([one], end=date(2026, 1, 1), days=0, tz=BERLIN) == []
    with pytest.raises(ValueError, match="days must not be negative"):
        daily_totals([one], end=date(2026, 1, 1), days=-1, tz=BERLIN)


# --- Streaks ---------------------------------------------------------------------------------


def days_of_focus(*days: date, tz: ZoneInfo = BERLIN) -> list[FocusSession]:
    return [focus(at(d.year, d.month, d.day, tz=tz)) for d in days]


def test_no_sessions_no_streak() -> None:
    assert streaks([], today=date(2026, 1, 1), tz=BERLIN) == Streaks(current=0, best=0)


def test_streak_counts_today() -> None:
    sessions = days_of_focus(date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3))
    assert streaks(sessions, today=date(2026, 1, 3), tz=BERLIN) == Streaks(current=3, best=3)


def test_streak_survives_while_today_has_no_session_yet() -> None:
    sessions = days_of_focus(date(2026, 1, 1), date(2026, 1, 2))
    assert streaks(sessions, today=date(2026, 1, 3), tz=BERLIN) == Streaks(current=2, best=2)


def test_streak_breaks_once_a_whole_day_is_missed() -> None:
    sessions = days_of_focus(date(2026, 1, 1), date(2026, 1, 2))
    assert streaks(sessions, today=date(2026, 1, 4), tz=BERLIN) == Streaks(current=0, best=2)


def test_current_and_best_differ_after_a_gap() -> None:
    before_gap = [date(2026, 1, 1) + timedelta(days=i) for i in range(5)]  # Jan 1-5
    after_gap = [date(2026, 1, 7), date(2026, 1, 8)]  # Jan 6 missed
    sessions = days_of_focus(*before_gap, *after_gap)
    assert streaks(sessions, today=date(2026, 1, 8), tz=BERLIN) == Streaks(current=2, best=5)
    assert streaks(sessions, today=date(2026, 1, 9), tz=BERLIN) == Streaks(current=2, best=5)


def test_interrupted_sessions_do_not_keep_a_streak() -> None:
    sessions = [
        *days_of_focus(date(2026, 1, 1), date(2026, 1, 3)),
        focus(at(2026, 1, 2, tz=BERLIN), completed=False),
    ]
    assert streaks(sessions, today=date(2026, 1, 3), tz=BERLIN) == Streaks(current=1, best=1)


def test_several_sessions_on_one_day_count_once() -> None:
    sessions = [focus(at(2026, 1, 1, hour, tz=BERLIN)) for hour in (8, 9, 10)]
    assert streaks(sessions, today=date(2026, 1, 1), tz=BERLIN) == Streaks(current=1, best=1)


def test_days_after_today_are_ignored() -> None:
    sessions = days_of_focus(date(2026, 1, 1), date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7))
    assert streaks(sessions, today=date(2026, 1, 1), tz=BERLIN) == Streaks(current=1, best=1)


def test_streak_uses_local_dates_of_the_given_zone() -> None:
    # 23:30 UTC each evening: consecutive days in New York, but "tomorrow" in Berlin.
    sessions = [
        focus(datetime(2026, 1, 1, 23, 30, tzinfo=UTC)),
        focus(datetime(2026, 1, 2, 23, 30, tzinfo=UTC)),
    ]
    assert streaks(sessions, today=date(2026, 1, 3), tz=BERLIN) == Streaks(current=2, best=2)
    assert streaks(sessions, today=date(2026, 1, 3), tz=NEW_YORK) == Streaks(current=2, best=2)
    assert streaks(sessions, today=date(2026, 1, 4), tz=NEW_YORK) == Streaks(current=0, best=2)
    assert streaks(sessions, today=date(2026, 1, 4), tz=BERLIN) == Streaks(current=2, best=2)


def test_streak_across_both_dst_changes() -> None:
    spring = [date(2026, 3, 27) + timedelta(days=i) for i in range(5)]  # Mar 27 .. 31
    autumn = [date(2026, 10, 23) + timedelta(days=i) for i in range(5)]  # Oct 23 .. 27
    late_evenings = [focus(at(d.year, d.month, d.day, 23, 45, tz=BERLIN)) for d in spring + autumn]
    assert streaks(late_evenings, today=date(2026, 3, 31), tz=BERLIN) == Streaks(current=5, best=5)
    assert streaks(late_evenings, today=date(2026, 10, 27), tz=BERLIN) == Streaks(current=5, best=5)


@given(st.sets(st.integers(min_value=0, max_value=60), max_size=40), st.integers(0, 70))
def test_streak_properties(day_offsets: set[int], today_offset: int) -> None:
    start = date(2026, 3, 1)
    sessions = days_of_focus(*(start + timedelta(days=i) for i in day_offsets), tz=UTC_ZONE)
    today = start + timedelta(days=today_offset)
    result = streaks(sessions, today=today, tz=UTC_ZONE)
    assert 0 <= result.current <= result.best <= len(day_offsets)
    assert (result.current > 0) == bool({today_offset, today_offset - 1} & day_offsets)


# --- CSV -------------------------------------------------------------------------------------


def test_csv_round_trips_through_dictreader_in_start_order() -> None:
    later = focus(at(2026, 1, 2, 9, tz=BERLIN), minutes=25, task='fix "quotes", commas')
    earlier = focus(at(2026, 1, 1, 23, 30, tz=BERLIN), minutes=12.5, completed=False, task="日本語")
    text = to_csv([later, earlier])

    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert text.splitlines()[0] == ",".join(CSV_HEADER)
    assert [row["session_id"] for row in rows] == [earlier.session_id, later.session_id]
    first = rows[0]
    assert first["room_id"] == earlier.room_id
    assert first["started_at_utc"] == "2026-01-01T22:30:00+00:00"
    assert datetime.fromisoformat(first["started_at_utc"]).timestamp() == earlier.started_at
    assert first["duration_min"] == "12.50"
    assert first["task"] == "日本語"
    assert first["completed"] == "false"
    assert rows[1]["task"] == 'fix "quotes", commas'
    assert rows[1]["completed"] == "true"
    assert float(rows[1]["duration_min"]) * 60 == later.duration_s


def test_csv_of_no_sessions_is_just_the_header() -> None:
    assert list(csv.reader(io.StringIO(to_csv([])))) == [list(CSV_HEADER)]
