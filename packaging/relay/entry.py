"""What the frozen ``focusmate-relay`` runs: the same ``main`` as the installed command."""

import sys

from relay.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
