"""``focusmate``: the command people type, and the composition root that wires the layers.

The core CLI (``focusmate.cli``) gets the commands that need the sync engine as extensions, so
``focusmate/`` never imports ``sync`` or ``ui``. Qt is imported only to open the app, so the
command line works where PySide6 is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from focusmate import cli
from sync.daemon import DaemonExtension


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, extensions=[DaemonExtension()])


if __name__ == "__main__":
    sys.exit(main())
