"""One engine per profile: a second one is refused with a sentence naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync.engine_lock import AlreadyRunningError, EngineLock


def test_a_second_engine_on_one_profile_is_refused_until_the_first_stops(tmp_path: Path) -> None:
    first, second = EngineLock(tmp_path), EngineLock(tmp_path)
    first.acquire()
    with pytest.raises(AlreadyRunningError, match=rf"process {os.getpid()}"):
        second.acquire()
    first.release()
    second.acquire()  # free again
    second.release()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A crashed app never leaves its profile locked: the OS drops the lock with the process."""
    code = (
        "import sys; from pathlib import Path; from sync.engine_lock import EngineLock; "
        "EngineLock(Path(sys.argv[1])).acquire(); import os; os._exit(9)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False, timeout=60)
    assert done.returncode == 9
    lock = EngineLock(tmp_path)
    lock.acquire()
    lock.release()
