"""``python -m focusmate``: the core commands (``focusmate daemon`` comes with ``ui.launcher``)."""

import sys

from focusmate.cli import main

sys.exit(main())
