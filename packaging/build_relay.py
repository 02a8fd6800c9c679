"""Build the one-file ``focusmate-relay`` executable (no Qt inside) with PyInstaller.

    python packaging/build_relay.py --out DIR

PyInstaller runs on ``packaging/relay/focusmate-relay.spec`` in a throwaway work directory, so
nothing is cached in the repository. The result is then checked: no Qt module or library may
be in the archive (a build machine usually has PySide6 installed for the desktop app), and the
binary must answer ``--version``. Needs the ``packaging`` extra (``pip install '.[packaging]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE / "relay" / "focusmate-relay.spec"
NAME = "focusmate-relay"

# Import roots that would mean Qt (or the desktop app) is inside, and Qt's shared libraries.
FORBIDDEN_ROOTS = frozenset({"PySide6", "shiboken6", "qasync", "PyQt5", "PyQt6", "ui"})
FORBIDDEN_LIBRARY_PREFIXES = ("libQt", "libpyside6", "libshiboken6")


def forbidden_entries(names: Iterable[str]) -> list[str]:
    """Archive entries (module names or file paths) that belong to Qt or the desktop app."""
    found = []
    for name in names:
        parts = name.replace("\\", "/").replace("/", ".").split(".")
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        if parts[0] in FORBIDDEN_ROOTS or base.startswith(FORBIDDEN_LIBRARY_PREFIXES):
            found.append(name)
    return found


def archive_entries(executable: Path) -> list[str]:
    """Every entry of the executable's archive, the embedded module archive included."""
    from PyInstaller.archive.readers import pkg_archive_contents  # noqa: PLC0415

    return list(pkg_archive_contents(str(executable), recursive=True))


def build(out: Path, *, work: Path | None = None) -> Path:
    """Build into ``out`` and return the executable's path; raise ``RuntimeError`` on failure."""
    out = out.resolve()
    with tempfile.TemporaryDirectory(prefix="focusmate-relay-build-") as scratch:
        workpath = Path(scratch) if work is None else work.resolve()
        workpath.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(out),
            "--workpath",
            str(workpath),
            str(SPEC),
        ]
        # cwd: PyInstaller puts it on sys.path, and the repository's packaging/ folder must not
        # stand in for the `packaging` library PyInstaller itself imports.
        result = subprocess.run(command, cwd=workpath, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"PyInstaller failed with exit status {result.returncode}")
    executable = out / NAME
    if not executable.is_file():
        raise RuntimeError(f"PyInstaller finished but {executable} is missing")
    leaked = forbidden_entries(archive_entries(executable))
    if leaked:
        raise RuntimeError(f"Qt got into the relay binary: {', '.join(sorted(leaked)[:10])}")
    check = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    if check.returncode != 0 or not check.stdout.startswith(NAME):
        raise RuntimeError(f"the built relay does not start:\n{check.stdout}{check.stderr}")
    return executable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where the binary goes")
    parser.add_argument(
        "--work", type=Path, help="PyInstaller's work directory (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("PyInstaller") is None:
        print("build_relay: PyInstaller is missing; pip install '.[packaging]'", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        executable = build(args.out, work=args.work)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        print(f"build_relay: {err}", file=sys.stderr)
        return 1
    size_mb = executable.stat().st_size / 1_000_000
    elapsed = time.monotonic() - started
    print(f"{executable}  {size_mb:.1f} MB  built in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
