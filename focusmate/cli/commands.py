"""What each CLI command does: thin functions over the workspace, one per subcommand."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, cast

from focusmate import achievements, keyfile, stats
from focusmate.board import Post
from focusmate.cli.render import (
    dump_json,
    hours,
    post_dict,
    post_text,
    room_dict,
    room_text,
    timer_dict,
    timer_line,
)
from focusmate.clock import local_zone
from focusmate.errors import NotFoundError, ValidationError
from focusmate.export import export_data, import_data, read_export
from focusmate.room import Room
from focusmate.settings import parse_setting
from focusmate.timer import Command
from focusmate.workspace import KEY_NAME, Workspace

NEW_PASSPHRASE_ENV = "FOCUSMATE_NEW_PASSPHRASE"


@dataclass
class Context:
    ws: Workspace
    args: argparse.Namespace
    out: TextIO

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def emit(self, data: Any, text: str) -> int:
        """Print JSON when ``--json`` was given, else the human text."""
        if getattr(self.args, "json", False):
            dump_json(data, self.out)
        else:
            self.print(text)
        return 0

    def room(self) -> Room:
        return self.ws.find_room(self.args.room)


# -- identity, profile, settings --------------------------------------------------------------


def cmd_id(ctx: Context) -> int:
    ws, args = ctx.ws, ctx.args
    path = ws.profile_dir / KEY_NAME
    if args.set_passphrase or args.remove_passphrase:
        new = None if args.remove_passphrase else _new_passphrase()
        old = os.environ.get("FOCUSMATE_PASSPHRASE") if keyfile.is_sealed(path) else None
        keyfile.change_passphrase(path, old=old, new=new)
        ctx.print("Your private key is now " + ("sealed." if new else "stored unsealed."))
        return 0
    data = {
        **ws.identity.public.to_dict(),
        "profile_dir": str(ws.profile_dir),
        "sealed": keyfile.is_sealed(path),
    }
    return ctx.emit(data, ws.user_id)


def _new_passphrase() -> str:
    env = os.environ.get(NEW_PASSPHRASE_ENV)
    if env is not None:
        value = env
    elif sys.stdin.isatty():
        value = getpass.getpass("New passphrase: ")
        if getpass.getpass("Repeat it: ") != value:
            raise ValidationError("The two passphrases differ; nothing was changed.")
    else:
        raise ValidationError(f"Set {NEW_PASSPHRASE_ENV} or run in a terminal to be asked.")
    if len(value) < 8:
        raise ValidationError("A passphrase needs at least 8 characters.")
    return value


def cmd_profile_show(ctx: Context) -> int:
    profile = ctx.ws.my_profile()
    if profile is None:
        raise NotFoundError("Your profile card is missing or does not verify.")
    card = profile.card
    text = (
        f"{card.avatar_emoji} {card.display_name}  ({card.user_id})\n"
        f"  colour {card.avatar_color}" + (f"\n  {card.bio}" if card.bio else "")
    )
    return ctx.emit(asdict(card), text)


def cmd_profile_set(ctx: Context) -> int:
    args = ctx.args
    changes = {
        key: value
        for key, value in (
            ("display_name", args.name),
            ("bio", args.bio),
            ("avatar_emoji", args.emoji),
            ("avatar_color", args.color),
        )
        if value is not None
    }
    if not changes:
        raise ValidationError("Nothing to change: give --name, --bio, --emoji or --color.")
    card = ctx.ws.profile_document().update(ctx.ws.identity, now=ctx.ws.now(), **changes)
    return ctx.emit(asdict(card), f"Profile updated: {card.avatar_emoji} {card.display_name}")


def cmd_settings_show(ctx: Context) -> int:
    data = ctx.ws.settings.to_dict()
    width = max(len(k) for k in data)
    text = "\n".join(f"{k.ljust(width)}  {_setting_text(v)}" for k, v in data.items())
    return ctx.emit(data, text)


def _setting_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


def cmd_settings_set(ctx: Context) -> int:
    key, value = parse_setting(ctx.args.key, ctx.args.value)
    ctx.ws.save_settings(ctx.ws.settings.replace(**{key: value}))
    ctx.print(f"{key} = {_setting_text(ctx.ws.settings.to_dict()[key])}")
    return 0


# -- rooms ------------------------------------------------------------------------------------


def _settings_changes(args: argparse.Namespace) -> dict[str, Any]:
    pairs = (
        ("focus_min", args.focus),
        ("short_break_min", args.short),
        ("long_break_min", args.long),
        ("rounds_before_long", args.rounds),
        ("auto_advance", args.auto_advance),
    )
    return {key: value for key, value in pairs if value is not None}


def _invite_fields(ctx: Context, room: Room) -> dict[str, Any]:
    """Code, link and, per relay, the URL a Yjs client syncs the room's document at."""
    relays = None
    if ctx.args.relay:
        _, parsed = parse_setting("relay_urls", ",".join(ctx.args.relay))
        relays = cast(tuple[str, ...], parsed)
    invite = ctx.ws.invite_for(room, relays=relays)
    urls = invite.doc_urls()
    return {
        "invite_code": invite.code,
        "invite_link": invite.link(),
        "doc_url": urls[0] if urls else None,
        "doc_urls": urls,
    }


def _invite_text(fields: dict[str, Any]) -> str:
    lines = [f"  code: {fields['invite_code']}", f"  link: {fields['invite_link']}"]
    lines += [f"  doc url: {url}" for url in fields["doc_urls"]]
    return "\n".join(lines)


def cmd_room_create(ctx: Context) -> int:
    room, _ = ctx.ws.create_room(ctx.args.name, **_settings_changes(ctx.args))
    fields = _invite_fields(ctx, room)
    data = room_dict(room, now=ctx.ws.now(), invite=fields)
    return ctx.emit(data, f"Created {room.name} ({room.room_id}).\n{_invite_text(fields)}")


def cmd_room_list(ctx: Context) -> int:
    rooms = [r for r in ctx.ws.rooms() if not r.deleted]
    data = [room_dict(r, now=ctx.ws.room_now(r.room_id)) for r in rooms]
    lines = [
        f"{r.room_id[:8]}  {r.name:<24} {timer_line(r.timer_view(now=ctx.ws.room_now(r.room_id)))}"
        if r.exists
        else f"{r.room_id[:8]}  (waiting for the room to sync)"
        for r in rooms
    ]
    return ctx.emit(data, "\n".join(lines) or "You are in no rooms yet.")


def cmd_room_show(ctx: Context) -> int:
    room = ctx.room()
    now = ctx.ws.room_now(room.room_id)
    return ctx.emit(room_dict(room, now=now), room_text(room, now=now))


def cmd_room_invite(ctx: Context) -> int:
    room = ctx.room()
    fields = _invite_fields(ctx, room)
    text = (
        f"Invite to {room.name}\n{_invite_text(fields)}\n"
        "Anyone with the code can join: share it privately."
    )
    return ctx.emit({"room_id": room.room_id, "name": room.name, **fields}, text)


def cmd_room_join(ctx: Context) -> int:
    room = ctx.ws.join_room(ctx.args.invite)
    if room.exists:
        text = f"Joined {room.name} ({room.room_id})."
    else:
        text = (
            f"Joined room {room.room_id}. Its name, timer and board arrive when a member or "
            "a relay is reachable."
        )
    return ctx.emit(room_dict(room, now=ctx.ws.now()), text)


def cmd_room_leave(ctx: Context) -> int:
    room = ctx.room()
    ctx.ws.leave_room(room)
    ctx.print(f"You left {room.name}.")
    return 0


def cmd_room_offer(ctx: Context) -> int:
    room = ctx.room()
    ctx.ws.offer_on_lan(room, not ctx.args.stop)
    if ctx.args.stop:
        ctx.print(f"{room.name} is no longer offered on your network.")
    else:
        ctx.print(
            f"{room.name} is offered to everyone on your network while FocusMate runs here: "
            "anyone on the LAN can join it. `focusmate room offer ROOM --stop` ends that."
        )
    return 0


def cmd_room_delete(ctx: Context) -> int:
    room = ctx.room()
    if not ctx.args.yes:
        if not sys.stdin.isatty():
            raise ValidationError("Deleting a room is for everyone in it: add --yes to confirm.")
        answer = input(f"Delete {room.name} for all its members? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            ctx.print("Nothing deleted.")
            return 1
    ctx.ws.delete_room(room)
    ctx.print(f"Deleted {room.name}.")
    return 0


def cmd_room_settings(ctx: Context) -> int:
    room = ctx.room()
    changes = _settings_changes(ctx.args)
    if ctx.args.name is not None:
        changes["name"] = ctx.args.name
    if changes:
        ctx.ws.record_focus(room)
        room.update_settings(now=ctx.ws.now(), **changes)
    return ctx.emit(room_dict(room, now=ctx.ws.now()), room_text(room, now=ctx.ws.now()))


# -- timer ------------------------------------------------------------------------------------


def _timer_command(command: Command) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        ws, room = ctx.ws, ctx.room()
        ws.record_focus(room)  # account for what ran under the old state first
        task = getattr(ctx.args, "task", None)
        if task is not None:
            ws.set_current_task(room, task)
        room.timer_command(command, now=ws.room_now(room.room_id))
        recorded = ws.record_focus(room)
        view = room.timer_view(now=ws.room_now(room.room_id))
        text = f"{room.name}: {timer_line(view)}"
        if recorded:
            text += f"\nRecorded {recorded} focus session(s) in your stats."
        return ctx.emit({"room_id": room.room_id, **timer_dict(view)}, text)

    return run


def cmd_timer_status(ctx: Context) -> int:
    ws, room = ctx.ws, ctx.room()
    ws.record_focus(room)
    view = room.timer_view(now=ws.room_now(room.room_id))
    return ctx.emit(
        {"room_id": room.room_id, "name": room.name, **timer_dict(view)},
        f"{room.name}: {timer_line(view)}",
    )


# -- board ------------------------------------------------------------------------------------


def _find_post(posts: list[Post], ref: str) -> Post:
    matches = [p for p in posts if p.post_id == ref] or [
        p for p in posts if len(ref) >= 4 and p.post_id.startswith(ref)
    ]
    if len(matches) != 1:
        raise NotFoundError(f"No single post matches {ref!r}; see `focusmate board ROOM`.")
    return matches[0]


def _find_comment_id(posts: list[Post], ref: str) -> str:
    ids = [c.comment_id for p in posts for c in p.comments]
    matches = [i for i in ids if i == ref] or [
        i for i in ids if len(ref) >= 4 and i.startswith(ref)
    ]
    if len(matches) != 1:
        raise NotFoundError(f"No single comment matches {ref!r}.")
    return matches[0]


def _require_text(text: str | None, what: str) -> str:
    if text is None:
        raise ValidationError(f"Give the {what}'s text.")
    return text


def cmd_post(ctx: Context) -> int:
    args, ws = ctx.args, ctx.ws
    board = ws.board(ctx.room())
    now = ws.now()
    if args.delete:
        post = _find_post(board.posts(), args.delete)
        board.delete_post(post.post_id, now=now)
        return ctx.emit({"post_id": post.post_id, "deleted": True}, "Post deleted.")
    if args.edit:
        ref, text = args.edit
        post = _find_post(board.posts(), ref)
        board.edit_post(post.post_id, text, now=now)
        return ctx.emit({"post_id": post.post_id}, f"Post {post.post_id} edited.")
    post_id = board.post(_require_text(args.text, "post"), now=now)
    return ctx.emit({"post_id": post_id}, f"Posted ({post_id}).")


def cmd_comment(ctx: Context) -> int:
    args, ws = ctx.args, ctx.ws
    board = ws.board(ctx.room())
    posts, now = board.posts(), ws.now()
    if args.delete:
        comment_id = _find_comment_id(posts, args.delete)
        board.delete_comment(comment_id, now=now)
        return ctx.emit({"comment_id": comment_id, "deleted": True}, "Comment deleted.")
    if args.edit:
        ref, text = args.edit
        comment_id = _find_comment_id(posts, ref)
        board.edit_comment(comment_id, text, now=now)
        return ctx.emit({"comment_id": comment_id}, "Comment edited.")
    if args.post is None:
        raise ValidationError("Give the post to comment on and the comment's text.")
    post = _find_post(posts, args.post)
    comment_id = board.comment(post.post_id, _require_text(args.text, "comment"), now=now)
    return ctx.emit({"comment_id": comment_id}, f"Commented ({comment_id}).")


def cmd_like(ctx: Context) -> int:
    board = ctx.ws.board(ctx.room())
    post = _find_post(board.posts(), ctx.args.post)
    if ctx.args.undo:
        board.unlike(post.post_id, now=ctx.ws.now())
        ctx.print("Like taken back.")
    else:
        board.like(post.post_id, now=ctx.ws.now())
        ctx.print(f"Liked {post.post_id}.")
    return 0


def cmd_board(ctx: Context) -> int:
    room = ctx.room()
    posts = ctx.ws.board(room).posts()[: max(0, ctx.args.limit)]
    text = "\n\n".join(post_text(p) for p in posts) or f"The board of {room.name} is empty."
    return ctx.emit([post_dict(p) for p in posts], text)


# -- stats, export, import --------------------------------------------------------------------


def cmd_stats(ctx: Context) -> int:
    ws, args = ctx.ws, ctx.args
    if not ws.store.read_only:  # (on a read-only filesystem: the sessions recorded so far)
        ws.record_all_focus()
    sessions = ws.stats().sessions()
    if args.csv:
        ctx.out.write(stats.to_csv(sessions))
        return 0
    if not 1 <= args.days <= 366:
        raise ValidationError("--days must be between 1 and 366.")
    tz = local_zone(args.tz)
    today = datetime.fromtimestamp(ws.now(), tz).date()
    summary = stats.summarize(sessions, today=today, tz=tz)
    streaks = stats.streaks(sessions, today=today, tz=tz)
    days = stats.daily_totals(sessions, end=today, days=args.days, tz=tz)
    grid = achievements.progress(sessions, tz=tz)
    data = {
        "today": asdict(summary.today),
        "week": asdict(summary.week),
        "month": asdict(summary.month),
        "all_time": asdict(summary.all_time),
        "streak": asdict(streaks),
        "days": [
            {"day": d.day.isoformat(), "focus_s": d.focus_s, "sessions": d.sessions} for d in days
        ],
        "achievements": [
            {
                "id": a.id,
                "title": a.title,
                "description": a.description,
                "value": value,
                "threshold": a.threshold,
                "unlocked_at": u.unlocked_at if u else None,
            }
            for a, value, u in grid
        ],
        "time_zone": str(tz),
    }
    peak = max((d.focus_s for d in days), default=0.0) or 1.0
    lines = [
        f"{'':10} {'focus':>8} {'sessions':>9}",
        *(
            f"{label:10} {hours(t.focus_s):>8} {t.sessions:>9}"
            for label, t in (
                ("today", summary.today),
                ("this week", summary.week),
                ("this month", summary.month),
                ("all time", summary.all_time),
            )
        ),
        f"streak: {streaks.current} day(s), best {streaks.best}",
        "",
        *(
            f"{d.day:%a %d %b} {'█' * round(20 * d.focus_s / peak):<20} {hours(d.focus_s)}"
            for d in days
        ),
        "",
        "achievements:",
        *(f"  [{'x' if u else ' '}] {a.title} — {a.description}" for a, _, u in grid),
    ]
    return ctx.emit(data, "\n".join(lines))


def cmd_export(ctx: Context) -> int:
    data = export_data(ctx.ws, with_identity=ctx.args.with_identity)
    text = json.dumps(data, ensure_ascii=False, indent=1)
    if ctx.args.file == "-":
        ctx.print(text)
    else:
        path = Path(ctx.args.file)
        path.write_text(text, "utf-8")
        if ctx.args.with_identity:
            path.chmod(0o600)
        print(
            f"Exported {len(data['rooms'])} room(s) and "
            f"{len(data['stats']['sessions'])} session(s) to {path}.",
            file=sys.stderr,
        )
    if ctx.args.stats_csv:
        Path(ctx.args.stats_csv).write_text(stats.to_csv(ctx.ws.stats().sessions()), "utf-8")
    return 0


def cmd_import(ctx: Context) -> int:
    result = import_data(ctx.ws, read_export(Path(ctx.args.file)))
    text = f"Imported {result['rooms']} room(s) and {result['sessions']} new session(s)."
    if not result["same_user"]:
        text += " (The export is another user's: their stats and profile were not imported.)"
    return ctx.emit(result, text)


# -- direct messages --------------------------------------------------------------------------


def cmd_dm_send(ctx: Context) -> int:
    recipient = ctx.ws.contact(ctx.args.who)
    message = ctx.ws.inbox.send(recipient, ctx.args.text)
    ctx.print(f"Queued for {recipient.user_id} ({message.id[:8]}): end-to-end encrypted.")
    return 0


def cmd_dm_list(ctx: Context) -> int:
    inbox = ctx.ws.inbox
    if ctx.args.who is None:
        conversations = inbox.conversations()
        lines = [f"{peer}  {unread} unread" for peer, unread in sorted(conversations.items())]
        data = [{"peer": peer, "unread": n} for peer, n in sorted(conversations.items())]
        return ctx.emit(data, "\n".join(lines) or "No direct messages yet.")
    peer = ctx.ws.contact(ctx.args.who).user_id
    messages = inbox.conversation(peer)
    inbox.mark_read(peer)
    lines = [f"{'you' if m.outgoing else peer[:11]}: {m.text}  [{m.state}]" for m in messages]
    return ctx.emit([asdict(m) for m in messages], "\n".join(lines) or "No messages yet.")


COMMANDS: dict[str, Callable[[Context], int]] = {
    "dm send": cmd_dm_send,
    "dm list": cmd_dm_list,
    "id": cmd_id,
    "profile show": cmd_profile_show,
    "profile set": cmd_profile_set,
    "settings show": cmd_settings_show,
    "settings set": cmd_settings_set,
    "room create": cmd_room_create,
    "room list": cmd_room_list,
    "room show": cmd_room_show,
    "room invite": cmd_room_invite,
    "room join": cmd_room_join,
    "room leave": cmd_room_leave,
    "room offer": cmd_room_offer,
    "room delete": cmd_room_delete,
    "room settings": cmd_room_settings,
    **{f"timer {c.value}": _timer_command(c) for c in Command},
    "timer status": cmd_timer_status,
    "post": cmd_post,
    "comment": cmd_comment,
    "like": cmd_like,
    "board": cmd_board,
    "stats": cmd_stats,
    "export": cmd_export,
    "import": cmd_import,
}
