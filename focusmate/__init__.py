"""FocusMate core: identity, the local CRDT store, rooms, timer, board, stats and the CLI.

Nothing in this package imports ``sync``, ``relay``, ``ui`` or Qt: it is the pure, local-first
centre that every other layer builds on.
"""

__version__ = "0.1.0"
