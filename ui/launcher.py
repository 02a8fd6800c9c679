"""``focusmate``: the command people type, and the composition root that wires the layers.

The core CLI (``focusmate.cli``) gets the commands that need the sync engine or Qt as
extensions, so ``focusmate/`` never imports ``sync`` or ``ui``. ``focusmate`` alone opens the
app; Qt is imported only then, so the command line works where PySide6 is not installed (and
``focusmate`` alone then prints an overview instead).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO, cast

from focusmate import cli
from focusmate.settings import parse_setting

if TYPE_CHECKING:
    from focusmate.cli.commands import Context


def display_problem(environ: dict[str, str] | None = None, platform: str = sys.platform) -> str:
    """Why no window can open here (empty when one can): Qt would abort without a display."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return ""
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return ""
    return (
        "There is no display to open the FocusMate window on. Run `focusmate daemon` to sync "
        "without a window, or set QT_QPA_PLATFORM=offscreen."
    )


class AppExtension:
    """The ``app`` subcommand (also what ``focusmate`` alone runs), for the CLI."""

    def __init__(self) -> None:
        self.commands: dict[str, Callable[[Context], int]] = {}
        # The app opens the profile itself: a sealed key gets a passphrase dialog, not a
        # terminal prompt nobody sees.
        self.unopened_commands = {"app": self.run}

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = sub.add_parser("app", help="open the FocusMate window (what `focusmate` alone does)")
        p.add_argument("--relay", action="append", metavar="URL", help="sync through this relay")
        p.add_argument("--no-lan", action="store_true", help="no LAN discovery or LAN peers")
        # Hidden: save a PNG of the window once it is up, then quit (the bundle's smoke test).
        p.add_argument("--snapshot", type=Path, metavar="FILE", help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace, profile_dir: Path, out: TextIO) -> int:
        problem = display_problem()
        if problem:
            print(f"focusmate: {problem}", file=sys.stderr)
            return 1
        relays = None
        if getattr(args, "relay", None):
            _, parsed = parse_setting("relay_urls", ",".join(args.relay))
            relays = cast(tuple[str, ...], parsed)
        lan = False if getattr(args, "no_lan", False) else None
        from ui.app import run_app  # noqa: PLC0415 - Qt loads only when the window opens

        snapshot = getattr(args, "snapshot", None)
        return run_app(profile_dir, relays=relays, lan=lan, snapshot=snapshot)


class _NotTheApp(Exception):
    pass


class _CommandPeek(argparse.ArgumentParser):
    """The top level of the grammar, just enough to tell which command will run."""

    def error(self, message: str) -> NoReturn:
        raise _NotTheApp(message)


def opens_app(argv: Sequence[str]) -> bool:
    """Whether ``argv`` opens the window (``app``, or no command at all) and asks for no help or
    version: parsing it then needs no other command's grammar. (The top-level options here are
    those of ``focusmate.cli.parser.build_parser``; anything unexpected takes the long way.)"""
    peek = _CommandPeek(add_help=False)
    peek.add_argument("-h", "--help", action="store_true")
    peek.add_argument("--version", action="store_true")
    peek.add_argument("--profile")
    peek.add_argument("command", nargs="?")
    try:
        known, _rest = peek.parse_known_args(list(argv))
    except _NotTheApp:
        return False
    return known.command in (None, "app") and not known.help and not known.version


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    has_qt = importlib.util.find_spec("PySide6") is not None and (
        importlib.util.find_spec("qasync") is not None
    )
    if has_qt and opens_app(args):
        # Opening the window: the headless commands (and the CLI machinery behind them) stay
        # unimported, so the window is not kept waiting for them.
        return cli.main(args, extensions=[AppExtension()], default_command="app")
    from sync.daemon import DaemonExtension  # noqa: PLC0415 - see above
    from sync.doctor import DoctorExtension  # noqa: PLC0415

    extensions: list[cli.Extension] = [DaemonExtension()]
    extensions.append(DoctorExtension())
    if has_qt:
        extensions.append(AppExtension())
    return cli.main(args, extensions=extensions, default_command="app" if has_qt else None)


if __name__ == "__main__":
    sys.exit(main())
