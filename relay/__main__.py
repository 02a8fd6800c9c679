"""``focusmate-relay``: the relay's command line (composition root of the relay server)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from focusmate import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focusmate-relay",
        description="The FocusMate relay: syncs rooms for remote groups.",
    )
    parser.add_argument("--version", action="version", version=f"focusmate-relay {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(
        "focusmate-relay: this version has no relay server yet; FocusMate works offline and "
        "on the LAN without one.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
