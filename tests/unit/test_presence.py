"""Presence states merge by the Yjs awareness rules, and stale ones expire."""

from __future__ import annotations

import pytest

from focusmate.clock import FakeClock
from focusmate.timer import Command, TimerConfig, apply, initial_state, view
from sync.presence import RENEW_SECONDS, TIMEOUT_SECONDS, RoomPresence, status_for
from sync.ysync import AwarenessEntry, AwarenessMessage


def _msg(client_id: int, clock: int, state: dict[str, object] | None) -> AwarenessMessage:
    return AwarenessMessage((AwarenessEntry(client_id, clock, state),))


def test_newer_states_replace_older_ones_and_echoes_are_ignored() -> None:
    clock = FakeClock()
    presence = RoomPresence(client_id=1, now=clock.now)
    assert presence.receive(_msg(2, 1, {"status": "focusing"})) is not None
    assert presence.receive(_msg(2, 1, {"status": "idle"})) is None  # same clock: stale
    assert presence.receive(_msg(2, 3, {"status": "break"})) is not None
    assert presence.receive(_msg(1, 99, {"status": "away"})) is None  # our own, echoed
    assert presence.peers() == [{"status": "break"}]
    assert presence.receive(_msg(2, 3, None)) is not None  # removal at the same clock
    assert presence.peers() == []


def test_our_state_is_validated_and_each_change_bumps_the_clock() -> None:
    presence = RoomPresence(client_id=7, now=FakeClock().now)
    first = presence.set_local({"status": "focusing", "task": "write"})
    second = presence.set_local({"status": "break", "task": None})
    assert first.entries[0].clock < second.entries[0].clock
    assert presence.announcement() == second
    with pytest.raises(ValueError, match="status"):
        presence.set_local({"status": "sleeping"})
    with pytest.raises(ValueError, match="task"):
        presence.set_local({"status": "idle", "task": "x" * 500})


def test_states_not_renewed_expire() -> None:
    clock = FakeClock()
    presence = RoomPresence(client_id=1, now=clock.now)
    presence.receive(_msg(2, 1, {"status": "focusing"}))
    clock.advance(TIMEOUT_SECONDS - 1)
    presence.receive(_msg(2, 1, {"status": "focusing"}))  # a renewal of the same state
    clock.advance(TIMEOUT_SECONDS - 1)
    assert presence.expire() == []
    clock.advance(2)
    assert presence.expire() == [2]
    assert presence.peers() == []


def test_our_state_is_renewed_before_peers_would_forget_it() -> None:
    clock = FakeClock()
    presence = RoomPresence(client_id=1, now=clock.now)
    assert presence.renew() is None  # nothing to renew
    first = presence.set_local({"status": "focusing", "task": "draft"})
    clock.advance(RENEW_SECONDS - 1)
    assert presence.renew() is None  # not due yet
    clock.advance(1)
    renewal = presence.renew()
    assert renewal is not None
    (entry,) = renewal.entries
    assert entry.clock > first.entries[0].clock  # peers accept it as newer
    assert entry.state == {"status": "focusing", "task": "draft"}
    assert presence.renew() is None  # and not again until the next interval
    assert RENEW_SECONDS < TIMEOUT_SECONDS


def test_a_members_status_follows_the_rooms_timer() -> None:
    config = TimerConfig(focus_s=1500, short_break_s=300, long_break_s=900, rounds_before_long=4)
    idle = initial_state(now=100.0)
    assert status_for(view(idle, config, now=100.0)) == "idle"
    focusing = apply(idle, Command.START, config, now=100.0)
    assert status_for(view(focusing, config, now=101.0)) == "focusing"
    assert status_for(view(focusing, config, now=100.0 + 1500 + 1)) == "break"
    paused = apply(focusing, Command.PAUSE, config, now=102.0)
    assert status_for(view(paused, config, now=103.0)) == "idle"
