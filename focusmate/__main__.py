"""``python -m focusmate``: the same as the ``focusmate`` command."""

import sys

from focusmate.cli import main

sys.exit(main())
