"""The desktop bundle's entry point: PyInstaller runs this file as ``__main__``.

It is the ``focusmate`` command (``ui.launcher``): alone it opens the window, and every CLI
subcommand works from the bundle too.
"""

import os
import sys

# qasync picks its Qt binding from QT_API when set; only PySide6 is in the bundle.
os.environ["QT_API"] = "pyside6"

from ui.launcher import main  # after QT_API: qasync reads it on import

sys.exit(main())
