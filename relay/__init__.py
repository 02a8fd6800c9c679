"""The self-hostable relay: document sync fan-out, hosted timers, DM mailboxes, health, metrics.

Imports ``sync``'s protocol and ``focusmate``'s timer and ids; never Qt.
"""

from focusmate import __version__

__all__ = ["__version__"]
