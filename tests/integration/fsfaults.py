"""Test kit for filesystem faults: a data directory on a tiny tmpfs in a private mount namespace.

Tests run as root, where ``chmod`` stops nothing, so a full or read-only directory has to be a
real one. :class:`TinyFs` starts a holder process in a new mount namespace that mounts a tmpfs
of a few hundred KiB over a directory; every process under test runs in that namespace through
``nsenter`` (nothing outside it sees the mount, and it vanishes with the holder). The test then
fills the filesystem, frees it, or remounts it read-only at the moment it chooses.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

from tests.integration.relaykit import REPO, RelayProcess

FILLER = ".filler"


def unavailable() -> str | None:
    """Why mount namespaces cannot be used here, or None when they can."""
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"`unshare -m` + tmpfs mount failed: {probe.stderr.strip() or probe.returncode}"
    return None


def require_mount_namespaces() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"mount namespaces unavailable (needs root): {reason}")


class TinyFs:
    """A ``size_kib`` tmpfs over ``mountpoint``, seen only by commands run through :meth:`argv`.

    The holder is ``cat`` reading a pipe from this process, so the namespace (and the tmpfs with
    it) goes away when the test closes it or dies.
    """

    def __init__(self, mountpoint: Path, *, size_kib: int) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        args = (str(size_kib), str(mountpoint))
        script = 'mount -t tmpfs -o size="$1"k tmpfs "$2" && echo mounted && exec cat'
        self._holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != "mounted":
            self.close()
            raise RuntimeError(f"cannot mount a tmpfs at {mountpoint}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._holder.poll() is None:
            assert self._holder.stdin is not None
            self._holder.stdin.close()
            try:
                self._holder.wait(10)
            except subprocess.TimeoutExpired:
                self._holder.kill()
                self._holder.wait()

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside the namespace, from the repository."""
        pid = str(self._holder.pid)
        return ["nsenter", "-t", pid, "-m", f"--wd={REPO}", "--", *command]

    def run(
        self, command: Sequence[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(command), capture_output=True, text=True, check=False, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command} failed ({result.returncode}): {result.stderr}")
        return result

    def python(self, code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", code, *args], check=check)

    # -- faults ---------------------------------------------------------------------------------

    def fill(self) -> int:
        """Take every free byte with a filler file (as another program filling the disk would);
        returns how many bytes it took."""
        self.run(["sh", "-c", 'cat /dev/zero > "$1" 2>/dev/null; true', "sh", self._filler])
        return int(self.run(["stat", "-c", "%s", self._filler]).stdout)

    def free(self) -> None:
        """Delete the filler: the space is back."""
        self.run(["rm", "-f", self._filler])

    def free_bytes(self) -> int:
        out = self.run(["stat", "-f", "-c", "%a %S", str(self.mountpoint)]).stdout.split()
        return int(out[0]) * int(out[1])

    def read_only(self) -> None:
        self.run(["mount", "-o", "remount,ro", str(self.mountpoint)])

    def read_write(self) -> None:
        self.run(["mount", "-o", "remount,rw", str(self.mountpoint)])

    @property
    def _filler(self) -> str:
        return str(self.mountpoint / FILLER)

    # -- what is on it --------------------------------------------------------------------------

    def integrity(self, database: Path) -> str:
        """``PRAGMA integrity_check`` of an SQLite file on this filesystem (``ok`` when sound)."""
        code = (
            "import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1])\n"
            "print('; '.join(r[0] for r in conn.execute('PRAGMA integrity_check')))\n"
        )
        return self.python(code, str(database)).stdout.strip()


@contextlib.contextmanager
def tiny_fs(mountpoint: Path, *, size_kib: int) -> Iterator[TinyFs]:
    """A :class:`TinyFs`, skipping the test (saying why) when mount namespaces are unavailable."""
    require_mount_namespaces()
    with TinyFs(mountpoint, size_kib=size_kib) as fs:
        yield fs


class RelayInFs(RelayProcess):
    """:class:`RelayProcess` with its data directory on a :class:`TinyFs`."""

    def __init__(self, fs: TinyFs, data_dir: Path) -> None:
        super().__init__(data_dir, command=fs.argv([sys.executable, "-m", "relay"]))
        self.fs = fs


def relay_argv(data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "relay", "--data-dir", str(data_dir), "serve", "--port", "0"]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
