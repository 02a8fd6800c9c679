"""One running sync engine per profile.

The app and ``focusmate daemon`` each run an engine, with the profile's identity. Two at once
on one profile would advertise the same user twice on the LAN, dial each other, and fight over
``timebase.json``; so an engine holds an exclusive lock on ``engine.lock`` in the profile while
it runs. The operating system drops the lock when the process dies, so a crash never leaves a
profile locked. CLI commands do not take it: they only edit the store, which is safe alongside.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from focusmate.errors import FocusMateError

LOCK_NAME = "engine.lock"


class AlreadyRunningError(FocusMateError):
    """Another FocusMate process is syncing this profile."""


class EngineLock:
    def __init__(self, profile_dir: Path) -> None:
        self.path = profile_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise AlreadyRunningError naming the process that holds it."""
        handle = self.path.open("a+")
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunningError(
                f"FocusMate is already running on the profile {self.path.parent} "
                f"(process {holder}): stop it first, or use another --profile."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.close()  # closing drops the lock
            self._file = None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
