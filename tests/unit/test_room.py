"""A room as its users see it: settings, membership, ownership and the shared timer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from focusmate import timer
from focusmate.errors import FocusMateError, PermissionDeniedError, ValidationError
from focusmate.room import LIMITS, Role, RoomSettings
from tests.unit._rooms import T0, make_user, room_with, send, sync

# -- settings validation ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "a" * 50, "  Deep   work  ", "a\t b"])
def test_room_name_within_limits_is_accepted(name: str) -> None:
    settings = RoomSettings(name=name)

    assert settings.name == " ".join(name.split())


@pytest.mark.parametrize("name", ["ab", "a" * 51, "", "   ", " ab   ", "a" * 25 + "  " + "b" * 25])
def test_room_name_outside_limits_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="3–50 characters"):
        RoomSettings(name=name)


def test_room_name_must_be_text() -> None:
    with pytest.raises(ValidationError):
        RoomSettings(name=12345)  # type: ignore[arg-type]


def test_room_name_whitespace_is_collapsed() -> None:
    assert RoomSettings(name="  Deep \n\n  work ").name == "Deep work"


BOUNDARIES = [(key, low, high) for key, (low, high) in LIMITS.items()]


def test_limits_match_the_product_rules() -> None:
    assert dict(LIMITS) == {
        "focus_min": (1, 60),
        "short_break_min": (1, 30),
        "long_break_min": (1, 60),
        "rounds_before_long": (1, 12),
    }


@pytest.mark.parametrize(("key", "low", "high"), BOUNDARIES)
def test_setting_boundaries_are_accepted(key: str, low: int, high: int) -> None:
    assert getattr(RoomSettings(name="Room", **{key: low}), key) == low
    assert getattr(RoomSettings(name="Room", **{key: high}), key) == high


@pytest.mark.parametrize(("key", "low", "high"), BOUNDARIES)
def test_setting_just_outside_boundaries_is_refused(key: str, low: int, high: int) -> None:
    with pytest.raises(ValidationError, match=f"{key} must be between {low} and {high}"):
        RoomSettings(name="Room", **{key: low - 1})
    with pytest.raises(ValidationError, match=f"{key} must be between {low} and {high}"):
        RoomSettings(name="Room", **{key: high + 1})


@pytest.mark.parametrize("value", [25.0, 25.5, True, "25", None])
def test_setting_must_be_a_whole_number(value: object) -> None:
    with pytest.raises(ValidationError, match="whole number"):
        RoomSettings(name="Room", focus_min=value)  # type: ignore[arg-type]


def test_auto_advance_must_be_a_bool() -> None:
    with pytest.raises(ValidationError, match="true or false"):
        RoomSettings(name="Room", auto_advance=1)  # type: ignore[arg-type]


def test_settings_drive_the_timer_durations() -> None:
    config = RoomSettings(name="Room", focus_min=50, short_break_min=10).timer_config()

    assert config.focus_s == 3000
    assert config.short_break_s == 600


# -- lenient reading of what peers wrote -----------------------------------------------------


GARBAGE = ["25", "", 1e300, -1, 0, 10**18, True, False, None, 25.5, float("nan"), [25], {"a": 1}]


@pytest.mark.parametrize("value", GARBAGE, ids=repr)
@pytest.mark.parametrize("key", list(LIMITS))
def test_read_falls_back_per_field_when_a_peer_wrote_garbage(key: str, value: object) -> None:
    raw: dict[str, Any] = {
        "name": "Deep work",
        "focus_min": 50.0,
        "short_break_min": 10.0,
        "long_break_min": 20.0,
        "rounds_before_long": 3.0,
        "auto_advance": False,
    }
    raw[key] = value

    settings = RoomSettings.read(raw)

    default = getattr(RoomSettings(name="x y z"), key)
    assert getattr(settings, key) == default
    # The other fields keep what was written.
    expected = {k: int(v) for k, v in raw.items() if k in LIMITS and k != key}
    assert {k: getattr(settings, k) for k in expected} == expected
    assert settings.name == "Deep work"
    assert settings.auto_advance is False


@pytest.mark.parametrize("value", ["yes", 1, 0.0, None, "true"], ids=repr)
def test_read_auto_advance_garbage_falls_back(value: object) -> None:
    settings = RoomSettings.read({"name": "Room", "auto_advance": value})

    assert settings.auto_advance is True


@pytest.mark.parametrize("name", [None, 42, 3.0, "", "x", "y" * 51, ["Deep work"]], ids=repr)
def test_read_bad_or_missing_name_reads_as_unnamed(name: object) -> None:
    raw = {} if name is None else {"name": name}

    assert RoomSettings.read(raw).name == "Unnamed room"


def test_read_of_an_empty_document_is_all_defaults() -> None:
    settings = RoomSettings.read({})

    assert settings == RoomSettings(name="Unnamed room")


def test_read_accepts_floats_pycrdt_hands_back() -> None:
    settings = RoomSettings.read({"name": "Room", "focus_min": 45.0, "rounds_before_long": 12.0})

    assert settings.focus_min == 45
    assert settings.rounds_before_long == 12


# -- ownership and membership ----------------------------------------------------------------


def test_creator_is_owner_and_joiner_is_member(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")

    for user in (alice, bob):
        members = user.room.members()
        assert members[alice.user_id].role is Role.OWNER
        assert members[bob.user_id].role is Role.MEMBER
        assert members[bob.user_id].name == "Bob"
        assert user.room.owner_id == alice.user_id
        assert user.room.name == "Deep work"


def test_owner_updates_settings_and_members_see_them(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")

    alice.room.update_settings(now=T0 + 5, focus_min=50, name="  Deep   focus ")
    send(alice, bob)

    assert bob.room.settings.focus_min == 50
    assert bob.room.name == "Deep focus"


def test_invalid_update_changes_nothing(tmp_path: Path) -> None:
    (alice,) = room_with(tmp_path, "Alice")

    with pytest.raises(ValidationError):
        alice.room.update_settings(now=T0 + 5, focus_min=61)
    with pytest.raises(ValidationError, match="Unknown room setting"):
        alice.room.update_settings(now=T0 + 5, colour="red")

    assert alice.room.settings == RoomSettings(name="Deep work")


def test_member_cannot_update_settings_or_delete(tmp_path: Path) -> None:
    _alice, bob = room_with(tmp_path, "Alice", "Bob")

    with pytest.raises(PermissionDeniedError, match="owner"):
        bob.room.update_settings(now=T0 + 5, focus_min=50)
    with pytest.raises(PermissionDeniedError, match="owner"):
        bob.room.delete(now=T0 + 5)

    assert bob.room.settings.focus_min == 25
    assert not bob.room.deleted


def test_member_writing_owner_role_is_still_a_member(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    with bob.doc.edit(now=T0 + 5):
        entry = dict(bob.doc.map("members")[bob.user_id])
        bob.doc.map("members")[bob.user_id] = {**entry, "role": "owner"}
    sync(alice, bob)

    for user in (alice, bob):
        assert user.room.members()[bob.user_id].role is Role.MEMBER
    with pytest.raises(PermissionDeniedError):
        bob.room.update_settings(now=T0 + 6, focus_min=50)


def test_join_leave_and_rejoin(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")

    bob.room.leave(now=T0 + 10)
    sync(alice, bob)
    left = alice.room.members()[bob.user_id]
    assert not left.active
    assert left.left_at == T0 + 10
    with pytest.raises(PermissionDeniedError, match="not a member"):
        bob.room.timer_command(timer.Command.START, now=T0 + 11)

    bob.room.join(my_name="Bobby", now=T0 + 20)
    sync(alice, bob)
    back = alice.room.members()[bob.user_id]
    assert back.active
    assert back.name == "Bobby"
    assert bob.room.timer_command(timer.Command.START, now=T0 + 21).status is timer.Status.RUNNING


def test_leaving_twice_is_harmless(tmp_path: Path) -> None:
    (alice,) = room_with(tmp_path, "Alice")

    alice.room.leave(now=T0 + 1)
    alice.room.leave(now=T0 + 2)

    assert alice.room.members()[alice.user_id].left_at == T0 + 1


def test_joiner_before_sync_sees_an_empty_room(tmp_path: Path) -> None:
    bob = make_user(tmp_path, "Bob")

    bob.room.join(my_name="Bob", now=T0)

    assert not bob.room.exists
    assert bob.room.members()[bob.user_id].role is Role.MEMBER


def test_malformed_member_entries_are_skipped(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    with bob.doc.edit(now=T0 + 5):
        bob.doc.map("members")["garbage-1"] = "not a member"
        bob.doc.map("members")["garbage-2"] = {"name": "No join time"}
        bob.doc.map("members")["garbage-3"] = {"joined_at": "soon"}
    sync(alice, bob)

    assert set(alice.room.members()) == {alice.user_id, bob.user_id}


# -- deletion --------------------------------------------------------------------------------


def test_deleted_room_refuses_timer_commands_for_everyone(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")

    alice.room.delete(now=T0 + 5)
    sync(alice, bob)

    assert bob.room.deleted
    for user in (alice, bob):
        with pytest.raises(FocusMateError, match="deleted by its owner"):
            user.room.timer_command(timer.Command.START, now=T0 + 6)
    with pytest.raises(FocusMateError, match="deleted"):
        bob.board.post("still here?", now=T0 + 6)
    with pytest.raises(FocusMateError, match="deleted"):
        alice.room.update_settings(now=T0 + 6, focus_min=30)


# -- timer -----------------------------------------------------------------------------------


def test_timer_command_is_shared(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")

    alice.room.timer_command(timer.Command.START, now=T0 + 100)
    send(alice, bob)

    view = bob.room.timer_view(now=T0 + 160)
    assert view.status is timer.Status.RUNNING
    assert view.phase is timer.Phase.FOCUS
    assert view.remaining_s == 25 * 60 - 60


def test_illegal_timer_command_is_refused(tmp_path: Path) -> None:
    (alice,) = room_with(tmp_path, "Alice")

    with pytest.raises(FocusMateError, match="not running"):
        alice.room.timer_command(timer.Command.PAUSE, now=T0 + 1)


@pytest.mark.parametrize(
    "garbage",
    [
        "running",
        42,
        None,
        [1, 2, 3],
        {},
        {"status": "running"},
        {**timer.initial_state(now=T0).to_dict(), "status": "exploded"},
        {**timer.initial_state(now=T0).to_dict(), "round": -3},
        {**timer.initial_state(now=T0).to_dict(), "round": "2"},
        {**timer.initial_state(now=T0).to_dict(), "status": "running"},  # no start instant
        {**timer.initial_state(now=T0).to_dict(), "changed_at": float("inf")},
        {**timer.initial_state(now=T0).to_dict(), "extra": 1},
    ],
    ids=repr,
)
def test_malformed_timer_state_from_a_peer_reads_as_fresh_timer(
    tmp_path: Path, garbage: object
) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    alice.room.timer_command(timer.Command.START, now=T0 + 10)
    sync(alice, bob)
    with bob.doc.edit(now=T0 + 20):
        bob.doc.map("timer")["state"] = garbage
    send(bob, alice)

    state = alice.room.timer_state
    view = alice.room.timer_view(now=T0 + 30)

    assert state.status is timer.Status.IDLE
    assert state.revision == 0
    assert view.remaining_s == 25 * 60
    # And the room is usable again: the next command starts from that fresh state.
    started = alice.room.timer_command(timer.Command.START, now=T0 + 40)
    assert started.status is timer.Status.RUNNING


def test_extreme_but_valid_timer_state_does_not_crash(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    hostile = {
        **timer.initial_state(now=T0).to_dict(),
        "status": "running",
        "round": 1e18,
        "revision": 1e18,
        "phase_started_at": -1e300,
    }
    with bob.doc.edit(now=T0 + 20):
        bob.doc.map("timer")["state"] = hostile
    send(bob, alice)

    view = alice.room.timer_view(now=T0 + 30)

    assert 0 <= view.remaining_s <= view.duration_s
    assert 1 <= view.round <= view.rounds_before_long


# -- two replicas ----------------------------------------------------------------------------


def test_concurrent_edits_of_different_settings_both_survive(tmp_path: Path) -> None:
    laptop, _bob = room_with(tmp_path, "Alice", "Bob")
    phone = make_user(tmp_path, "Alice-phone", identity=laptop.identity)
    send(laptop, phone)

    laptop.room.update_settings(now=T0 + 10, focus_min=45)
    phone.room.update_settings(now=T0 + 10, short_break_min=7, name="Phone room")
    sync(laptop, phone)

    for device in (laptop, phone):
        assert device.room.settings.focus_min == 45
        assert device.room.settings.short_break_min == 7
        assert device.room.name == "Phone room"


def test_concurrent_timer_commands_never_mix_fields(tmp_path: Path) -> None:
    alice, bob = room_with(tmp_path, "Alice", "Bob")
    alice.room.timer_command(timer.Command.START, now=T0 + 10)
    sync(alice, bob)

    paused = alice.room.timer_command(timer.Command.PAUSE, now=T0 + 70)
    skipped = bob.room.timer_command(timer.Command.SKIP, now=T0 + 80)
    sync(alice, bob)

    assert alice.room.timer_state == bob.room.timer_state
    assert alice.room.timer_state in (paused, skipped)


def test_concurrent_join_of_two_members_both_survive(tmp_path: Path) -> None:
    (alice,) = room_with(tmp_path, "Alice")
    bob = make_user(tmp_path, "Bob")
    carol = make_user(tmp_path, "Carol")
    send(alice, bob)
    send(alice, carol)

    bob.room.join(my_name="Bob", now=T0 + 1)
    carol.room.join(my_name="Carol", now=T0 + 1)
    sync(alice, bob, carol)

    for user in (alice, bob, carol):
        assert {m.name for m in user.room.members().values()} == {"Alice", "Bob", "Carol"}
