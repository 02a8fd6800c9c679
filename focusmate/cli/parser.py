"""The command line's grammar: every subcommand, its arguments and its help, in one place."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from focusmate import __version__
from focusmate.settings import SETTING_KEYS
from focusmate.timer import Command


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _room_settings_flags(parser: argparse.ArgumentParser, *, defaults_from_settings: bool) -> None:
    note = " (default: your settings)" if defaults_from_settings else ""
    parser.add_argument("--focus", type=int, metavar="MIN", help=f"focus minutes, 1-60{note}")
    parser.add_argument("--short", type=int, metavar="MIN", help=f"short break, 1-30{note}")
    parser.add_argument("--long", type=int, metavar="MIN", help=f"long break, 1-60{note}")
    parser.add_argument("--rounds", type=int, metavar="N", help=f"focus rounds per cycle{note}")
    parser.add_argument(
        "--auto-advance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start the next phase automatically",
    )


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> tuple[argparse.ArgumentParser, Subcommands]:
    """The parser, and its subcommands so extensions can add theirs."""
    parser = argparse.ArgumentParser(
        prog="focusmate",
        description="Focus together: shared pomodoro rooms, a board, and your focus stats.",
    )
    parser.add_argument("--version", action="version", version=f"focusmate {__version__}")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="profile directory (default: $FOCUSMATE_PROFILE or the per-user data directory)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_identity_commands(sub)
    _add_room_commands(sub)
    _add_board_commands(sub)
    _add_data_commands(sub)
    _add_dm_commands(sub)
    return parser, sub


def _add_identity_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("id", help="show your user id and public keys")
    _json_flag(p)
    p.add_argument(
        "--set-passphrase",
        action="store_true",
        help="seal the private key with a passphrase, or change it",
    )
    p.add_argument("--remove-passphrase", action="store_true", help="store the key unsealed")

    profile = sub.add_parser("profile", help="your public profile").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    _json_flag(profile.add_parser("show", help="show your profile"))
    p = profile.add_parser("set", help="change your display name, bio or avatar")
    p.add_argument("--name", help="display name, 1-40 characters")
    p.add_argument("--bio", help="a short bio, up to 280 characters")
    p.add_argument("--emoji", help="avatar emoji")
    p.add_argument("--color", help="avatar colour as #RRGGBB")
    _json_flag(p)

    settings = sub.add_parser("settings", help="your local settings").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    _json_flag(settings.add_parser("show", help="show all settings"))
    p = settings.add_parser("set", help="change one setting")
    p.add_argument("key", metavar="KEY", help="one of: " + ", ".join(SETTING_KEYS))
    p.add_argument("value", metavar="VALUE")


def _relay_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--relay",
        action="append",
        metavar="URL",
        help="a relay (ws:// or wss://) to name in the invite and give a doc_url for "
        "(repeatable; default: the relay_urls setting)",
    )


def _add_room_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    room = sub.add_parser("room", help="create, join and manage rooms").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = room.add_parser("create", help="create a room and print its invite")
    p.add_argument("name", help="room name, 3-50 characters")
    _room_settings_flags(p, defaults_from_settings=True)
    _relay_flag(p)
    _json_flag(p)
    _json_flag(room.add_parser("list", help="the rooms you are in, with their timers"))
    for action, text in (
        ("show", "a room's settings, members and timer"),
        ("invite", "the invite link and code of a room"),
    ):
        p = room.add_parser(action, help=text)
        p.add_argument("room", metavar="ROOM", help="room id, id prefix or name")
        if action == "invite":
            _relay_flag(p)
        _json_flag(p)
    p = room.add_parser("join", help="join a room by invite link or code")
    p.add_argument("invite", metavar="INVITE", help="a focusmate://join/... link or the code")
    _json_flag(p)
    p = room.add_parser("leave", help="leave a room")
    p.add_argument("room", metavar="ROOM")
    p = room.add_parser(
        "offer", help="offer a room to everyone on your network (a running daemon or app does)"
    )
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--stop", action="store_true", help="stop offering it")
    p = room.add_parser("delete", help="delete a room you own, for everyone")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = room.add_parser("settings", help="change a room's settings (owner only)")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--name", help="new room name")
    _room_settings_flags(p, defaults_from_settings=False)
    _json_flag(p)

    timer = sub.add_parser("timer", help="run a room's shared timer").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    for command in Command:
        p = timer.add_parser(command.value, help=f"{command.value} the timer")
        p.add_argument("room", metavar="ROOM")
        if command in (Command.START, Command.RESUME):
            p.add_argument("--task", help="what you are working on (recorded in your stats)")
        _json_flag(p)
    p = timer.add_parser("status", help="phase, round and remaining time")
    p.add_argument("room", metavar="ROOM")
    _json_flag(p)


def _add_board_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("post", help="post on a room's board (or edit/delete your post)")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("text", nargs="?", help="the post's text")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--edit", nargs=2, metavar=("POST", "TEXT"), help="replace the text of your post"
    )
    group.add_argument("--delete", metavar="POST", help="delete your post POST")
    _json_flag(p)

    p = sub.add_parser("comment", help="comment on a post (or edit/delete your comment)")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("post", metavar="POST", nargs="?", help="post id (or a unique prefix)")
    p.add_argument("text", nargs="?", help="the comment's text")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--edit", nargs=2, metavar=("COMMENT", "TEXT"), help="replace the text of your comment"
    )
    group.add_argument("--delete", metavar="COMMENT", help="delete your comment")
    _json_flag(p)

    p = sub.add_parser("like", help="like a post")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("post", metavar="POST")
    p.add_argument("--undo", action="store_true", help="take the like back")

    p = sub.add_parser("board", help="read a room's board")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--limit", type=int, default=20, help="how many posts (default 20)")
    _json_flag(p)


def _add_dm_commands(sub: Subcommands) -> None:
    dm = sub.add_parser(
        "dm", help="end-to-end-encrypted direct messages to people you share a room with"
    ).add_subparsers(dest="action", metavar="ACTION", required=True)
    p = dm.add_parser("send", help="send a message (a running daemon or app delivers it)")
    p.add_argument("who", metavar="WHO", help="user id, or the name they use in a shared room")
    p.add_argument("text", metavar="TEXT")
    p = dm.add_parser("list", help="your conversations, or one of them (which marks it read)")
    p.add_argument("who", metavar="WHO", nargs="?")
    _json_flag(p)


def _add_data_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stats", help="your focus totals, streaks and achievements")
    p.add_argument("--days", type=int, default=7, help="daily bars to show (default 7)")
    p.add_argument("--tz", metavar="ZONE", help="IANA time zone (default: this machine's)")
    p.add_argument("--csv", action="store_true", help="print every session as CSV")
    _json_flag(p)

    p = sub.add_parser("export", help="write all your data to a JSON file")
    p.add_argument("file", metavar="FILE", help="where to write the export ('-' for stdout)")
    p.add_argument(
        "--with-identity",
        action="store_true",
        help="include your private key (sealed if you set a passphrase)",
    )
    p.add_argument("--stats-csv", metavar="CSV", help="also write your sessions as CSV")

    p = sub.add_parser("import", help="merge an export into this profile")
    p.add_argument("file", metavar="FILE")
    _json_flag(p)
