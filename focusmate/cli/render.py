"""How the CLI shows things to people: text for the terminal, plain dicts for ``--json``."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO

from focusmate.board import Post
from focusmate.room import Room
from focusmate.timer import PHASE_NAMES, Status, TimerView, clock_text


def local_time(instant: float) -> str:
    return datetime.fromtimestamp(instant).astimezone().strftime("%H:%M:%S")


def local_datetime(instant: float) -> str:
    return datetime.fromtimestamp(instant).astimezone().strftime("%Y-%m-%d %H:%M")


def timer_dict(view: TimerView) -> dict[str, Any]:
    return {
        "status": view.status.value,
        "phase": view.phase.value,
        "round": view.round,
        "rounds_before_long": view.rounds_before_long,
        "remaining_s": round(view.remaining_s, 3),
        "duration_s": view.duration_s,
        "ends_at": view.ends_at,
    }


def timer_line(view: TimerView) -> str:
    phase = PHASE_NAMES[view.phase].lower()
    where = f"{phase}, round {view.round}/{view.rounds_before_long}"
    if view.status is Status.RUNNING:
        ends = f", ends {local_time(view.ends_at)}" if view.ends_at is not None else ""
        return f"{clock_text(view.remaining_s)} left of {where} (running{ends})"
    if view.status is Status.PAUSED:
        return f"{clock_text(view.remaining_s)} left of {where} (paused)"
    return f"{where}, {clock_text(view.remaining_s)} (not started)"


def room_dict(room: Room, *, now: float, invite: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = room.settings
    data: dict[str, Any] = {
        "room_id": room.room_id,
        "name": settings.name,
        "owner": room.owner_id,
        "deleted": room.deleted,
        "synced": room.exists,
        "settings": {k: v for k, v in asdict(settings).items() if k != "name"},
        "members": [
            {
                "user_id": m.user_id,
                "name": m.name,
                "role": m.role.value,
                "active": m.active,
            }
            for m in sorted(room.members().values(), key=lambda m: m.joined_at)
        ],
        "timer": timer_dict(room.timer_view(now=now)),
    }
    if invite:
        data.update(invite)
    return data


def room_text(room: Room, *, now: float) -> str:
    if not room.exists:
        return (
            f"Room {room.room_id}\n  Waiting for the room's contents: they arrive when a "
            "member or a relay is reachable."
        )
    s = room.settings
    lines = [
        f"{s.name}  ({room.room_id})" + ("  [deleted by its owner]" if room.deleted else ""),
        f"  timer:    {timer_line(room.timer_view(now=now))}",
        f"  settings: focus {s.focus_min} min, short break {s.short_break_min} min, "
        f"long break {s.long_break_min} min, {s.rounds_before_long} rounds, "
        f"auto-advance {'on' if s.auto_advance else 'off'}",
        "  members:",
    ]
    for m in sorted(room.members().values(), key=lambda m: m.joined_at):
        state = "" if m.active else " (left)"
        lines.append(f"    {m.name} [{m.role.value}] {m.user_id}{state}")
    return "\n".join(lines)


def post_dict(post: Post) -> dict[str, Any]:
    return asdict(post)


def post_text(post: Post) -> str:
    mark = "" if post.verified else "  [UNVERIFIED author]"
    edited = " (edited)" if post.edited_at else ""
    likes = f"  ♥ {post.likes}" if post.likes else ""
    lines = [
        f"[{post.post_id}] {post.author_name} · {local_datetime(post.created_at)}{edited}"
        f"{likes}{mark}",
        *("  " + line for line in post.body.splitlines()),
    ]
    for c in post.comments:
        cmark = "" if c.verified else "  [UNVERIFIED author]"
        lines.append(f"    ↳ [{c.comment_id}] {c.author_name}: {c.body}{cmark}")
    return "\n".join(lines)


def hours(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m"


def dump_json(data: Any, out: TextIO) -> None:
    json.dump(data, out, ensure_ascii=False, indent=2, sort_keys=True)
    out.write("\n")
