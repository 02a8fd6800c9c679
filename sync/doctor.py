"""``focusmate doctor``: the local checks (:mod:`focusmate.doctor`), whether FocusMate is
running, then the relays (:mod:`sync.doctor_relay`) and the LAN (:mod:`sync.doctor_lan`).

The command runs before the CLI opens the profile (it is one of the extension's
``unopened_commands``): opening would create a missing profile, and stops at a damaged or sealed
one, which are exactly the profiles a doctor must look at.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from focusmate.cli.commands import Context
from focusmate.doctor import check_profile
from focusmate.doctor_report import Check, Status, exit_code, render_text, report_dict
from focusmate.errors import FocusMateError
from focusmate.keyfile import PASSPHRASE_ENV
from focusmate.settings import parse_setting
from sync.doctor_lan import LAN_WAIT_SECONDS, check_lan
from sync.doctor_relay import TIMEOUT_SECONDS, check_relay
from sync.engine_lock import LOCK_NAME

UnopenedCommand = Callable[[argparse.Namespace, Path, TextIO], int]


class DoctorExtension:
    """The ``doctor`` subcommand, for ``focusmate.cli.main(extensions=...)``."""

    def __init__(self) -> None:
        self.commands: dict[str, Callable[[Context], int]] = {}
        self.unopened_commands: dict[str, UnopenedCommand] = {"doctor": self.run}

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = sub.add_parser(
            "doctor",
            help="check your profile, relays and LAN, and say what to do about any problem",
        )
        p.add_argument(
            "--relay",
            action="append",
            metavar="URL",
            help="check this relay (repeatable; default: the relay_urls setting)",
        )
        p.add_argument("--no-lan", action="store_true", help="skip the LAN discovery check")
        p.add_argument(
            "--timeout",
            type=_seconds,
            default=TIMEOUT_SECONDS,
            metavar="SECONDS",
            help=f"for each step of a relay check (default {TIMEOUT_SECONDS:g})",
        )
        p.add_argument(
            "--lan-wait",
            type=_seconds,
            default=LAN_WAIT_SECONDS,
            metavar="SECONDS",
            help=f"how long to listen for LAN peers (default {LAN_WAIT_SECONDS:g})",
        )
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")

    def run(self, args: argparse.Namespace, profile_dir: Path, out: TextIO) -> int:
        checks = diagnose(
            profile_dir,
            relays=args.relay,
            lan=not args.no_lan,
            timeout=args.timeout,
            lan_wait=args.lan_wait,
            passphrase=os.environ.get(PASSPHRASE_ENV),
        )
        if args.json:
            json.dump(report_dict(profile_dir, checks), out, ensure_ascii=False, indent=2)
            out.write("\n")
        else:
            print(render_text(profile_dir, checks), file=out)
        return exit_code(checks)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 600, got {text!r}")
    return value


def diagnose(
    profile_dir: Path,
    *,
    relays: Sequence[str] | None = None,
    lan: bool = True,
    timeout: float = TIMEOUT_SECONDS,
    lan_wait: float = LAN_WAIT_SECONDS,
    passphrase: str | None = None,
    lan_interfaces: Sequence[str] | None = None,
) -> list[Check]:
    """Every check, local then network; ``relays`` None means the profile's setting."""
    report = check_profile(profile_dir, passphrase=passphrase)
    checks = list(report.checks)
    if profile_dir.is_dir():
        checks.append(check_running(profile_dir))
    urls: tuple[str, ...] = ()
    if relays:
        try:
            _, parsed = parse_setting("relay_urls", ",".join(relays))
            urls = cast(tuple[str, ...], parsed)
        except FocusMateError as err:
            checks.append(
                Check(
                    "relays", Status.FAIL, str(err), "Give --relay as ws://HOST:PORT or wss://HOST."
                )
            )
    elif report.settings is not None:
        urls = report.settings.relay_urls
        if not urls and report.settings.lan_enabled:
            checks.append(
                Check("relays", Status.OK, "none configured: rooms sync with peers on your LAN")
            )
        elif not urls:
            checks.append(
                Check(
                    "relays",
                    Status.WARN,
                    "none configured, and LAN discovery is off: your rooms sync with no one",
                    "Add a relay (`focusmate settings set relay_urls wss://HOST`) or turn LAN "
                    "discovery on (`focusmate settings set lan_enabled on`).",
                )
            )
    lan_off = report.settings is not None and not report.settings.lan_enabled
    if lan and lan_off:
        checks.append(
            Check(
                "lan",
                Status.OK,
                "LAN discovery is off in your settings, so it was not checked "
                "(`focusmate settings set lan_enabled on` turns it on)",
            )
        )
    checks.extend(
        asyncio.run(
            _network_checks(
                urls,
                lan=lan and not lan_off,
                timeout=timeout,
                lan_wait=lan_wait,
                user_id=report.user_id,
                interfaces=lan_interfaces,
            )
        )
    )
    return checks


async def _network_checks(
    urls: Sequence[str],
    *,
    lan: bool,
    timeout: float,
    lan_wait: float,
    user_id: str | None,
    interfaces: Sequence[str] | None,
) -> list[Check]:
    """The relays and the LAN at once, so the slowest sets the pace."""
    relays = asyncio.gather(*(check_relay(url, timeout=timeout) for url in urls))
    if not lan:
        return list(await relays)
    relay_checks, lan_checks = await asyncio.gather(
        relays,
        check_lan(timeout=timeout, wait=lan_wait, own_user_id=user_id, interfaces=interfaces),
    )
    return [*relay_checks, *lan_checks]


# -- is FocusMate running? -----------------------------------------------------------------------


def check_running(profile_dir: Path) -> Check:
    """Whether an app or daemon holds the profile's engine lock (probed, never taken for longer
    than the probe)."""
    path = profile_dir / LOCK_NAME
    held = False
    holder = ""
    if path.exists():
        with contextlib.suppress(OSError), path.open("r") as handle:
            held = not _try_shared_lock(handle)
            holder = handle.read().strip()
    if held:
        who = f"process {holder}" if holder.isdigit() else "another process"
        return Check(
            "running",
            Status.OK,
            f"FocusMate ({who}) is syncing this profile; close it before copying the folder",
            data={"running": True, "pid": int(holder) if holder.isdigit() else None},
        )
    return Check(
        "running",
        Status.OK,
        "no FocusMate app or daemon is syncing this profile",
        data={"running": False, "pid": None},
    )


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_shared_lock(handle: Any) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBRLCK, 1)
        except OSError:
            return False
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return True

else:
    import fcntl

    def _try_shared_lock(handle: Any) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True
