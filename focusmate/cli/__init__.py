"""``focusmate``: the command line over a profile.

Every command opens the profile, does one thing, and exits. Errors a user can act on are printed
as one line on stderr with exit code 1 (2 for a malformed command line) and change nothing.
``main`` takes the clock and the output streams as arguments so tests run it in-process.

Commands that need more than the core (``focusmate daemon`` runs the sync engine) come in as
:class:`Extension` objects from the composition root (``ui/launcher.py``): this package never
imports ``sync`` or ``ui``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from focusmate import __version__, keyfile
from focusmate.cli.parser import build_parser
from focusmate.clock import Clock, SystemClock
from focusmate.errors import FocusMateError
from focusmate.keyfile import PASSPHRASE_ENV
from focusmate.workspace import KEY_NAME, Workspace, default_profile_dir

if TYPE_CHECKING:
    from focusmate.cli.commands import Context

# The commands themselves (``focusmate.cli.commands``, and what they need: exports,
# achievements, rendering) are imported only when one runs: ``focusmate`` alone opens the app
# through an extension, and the window should not wait for the rest of the command line.


class Extension(Protocol):
    """More subcommands: ``add_commands`` extends the grammar, ``commands`` maps each
    "command action" key (as in COMMANDS) to its handler. An extension may also have
    ``unopened_commands``: key -> handler(args, profile_dir, stdout) for commands that run
    without opening the profile."""

    @property
    def commands(self) -> Mapping[str, Callable[[Context], int]]: ...

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def main(
    argv: Sequence[str] | None = None,
    *,
    clock: Clock | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    extensions: Sequence[Extension] = (),
    default_command: str | None = None,
) -> int:
    """Run one command; with no subcommand, ``default_command`` (the app, when the launcher
    has it) or else an overview of the profile."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser, sub = build_parser()
    for extension in extensions:
        extension.add_commands(sub)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    profile_dir = Path(args.profile).expanduser() if args.profile else default_profile_dir()
    command = args.command or default_command  # `focusmate` alone runs the default command
    key = f"{command or ''} {getattr(args, 'action', '') or ''}".strip()
    try:
        for extension in extensions:
            # Commands that must not open the profile: `doctor` examines one that may be
            # missing, damaged or sealed, and opening would create, stop at or change it.
            unopened = getattr(extension, "unopened_commands", {})
            if key in unopened:
                return int(unopened[key](args, profile_dir, out))
        from focusmate.cli.commands import COMMANDS, Context  # noqa: PLC0415 - see above

        commands = dict(COMMANDS)
        for extension in extensions:
            commands.update(extension.commands)
        if args.command == "import":
            from focusmate.export import install_identity, read_export  # noqa: PLC0415

            # A fresh profile adopts the exported identity before it would create its own.
            install_identity(profile_dir, read_export(Path(args.file)))
        with _open(profile_dir, clock or SystemClock()) as ws:
            ctx = Context(ws=ws, args=args, out=out)
            if args.command is None and key not in commands:
                return _overview(ctx, parser)
            return commands[key](ctx)
    except FocusMateError as error:
        print(f"focusmate: {error}", file=err)
        return 1
    except OSError as error:  # the profile directory or a file in it cannot be made or written
        where = error.filename if error.filename is not None else profile_dir
        print(f"focusmate: cannot use {where}: {error.strerror or error}.", file=err)
        return 1
    except KeyboardInterrupt:
        print("focusmate: interrupted", file=err)
        return 130


def _open(profile_dir: Path, clock: Clock) -> Workspace:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        return Workspace(profile_dir, clock=clock, passphrase=passphrase)
    except keyfile.PassphraseRequiredError:
        if not sys.stdin.isatty():
            raise
    prompt = f"Passphrase for {profile_dir / KEY_NAME}: "
    return Workspace(profile_dir, clock=clock, passphrase=getpass.getpass(prompt))


def _overview(ctx: Context, parser: argparse.ArgumentParser) -> int:
    """``focusmate`` alone: who you are, your rooms right now, and where to go next."""
    from focusmate.cli.render import timer_line  # noqa: PLC0415 - see the imports above

    ws = ctx.ws
    rooms = [r for r in ws.rooms() if not r.deleted]
    print(f"FocusMate {__version__} — {ws.display_name} ({ws.user_id})", file=ctx.out)
    print(f"profile: {ws.profile_dir}", file=ctx.out)
    if rooms:
        for room in rooms:
            print(f"  {room.name}: {timer_line(room.timer_view(now=ws.now()))}", file=ctx.out)
    else:
        print(
            "You are in no rooms yet: `focusmate room create NAME` or `focusmate room join CODE`.",
            file=ctx.out,
        )
    print(file=ctx.out)
    parser.print_help(ctx.out)
    return 0
