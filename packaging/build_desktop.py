"""Build the FocusMate desktop bundle: one folder with the app, its menu entry and an installer.

    python packaging/build_desktop.py [--out DIR] [--work DIR] [--quiet]

PyInstaller (the ``packaging`` extra) freezes the ``focusmate`` command with PySide6 and every
Qt plugin the window needs into ``DIR/FocusMate/`` (default ``dist/``), following
``packaging/desktop/focusmate.spec``, in a throwaway work directory unless ``--work`` keeps one.
Beside the executable go ``focusmate.desktop``, the icons in the hicolor layout and
``install.sh``, which installs the folder for the current user. The build checks that the result
has what the app loads at run time, then prints its size and how long it took. Linux only: the
menu entry and the installer follow the XDG conventions.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESKTOP = ROOT / "packaging" / "desktop"
SPEC = DESKTOP / "focusmate.spec"
NAME = "FocusMate"
EXECUTABLE = "focusmate"
ICON_SIZES = (256, 512)

# What the running app loads from the bundle; a build without one of these is broken even if
# PyInstaller succeeded (a hook changed, or the spec filtered too much).
REQUIRED = (
    EXECUTABLE,
    "focusmate.desktop",
    "install.sh",
    "icons/hicolor/scalable/apps/focusmate.svg",
    *(f"icons/hicolor/{n}x{n}/apps/focusmate.png" for n in ICON_SIZES),
    "_internal/ui/assets/focusmate.svg",
    "_internal/ui/assets/focusmate.png",
    "_internal/PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "_internal/PySide6/Qt/plugins/platforms/libqxcb.so",
    "_internal/PySide6/Qt/plugins/platforms/libqwayland.so",
    "_internal/PySide6/Qt/plugins/imageformats/libqsvg.so",
    "_internal/PySide6/Qt/plugins/iconengines/libqsvgicon.so",
    "_internal/PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so",
    "_internal/PySide6/Qt/lib/libQt6Charts.so.6",
    "_internal/PySide6/Qt/lib/libQt6Svg.so.6",
)


@dataclass(frozen=True)
class Bundle:
    folder: Path
    size_bytes: int
    files: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.folder}: {self.size_bytes / 1e6:.1f} MB in {self.files} files, "
            f"built in {self.seconds:.1f} s"
        )


class BuildError(Exception):
    """The bundle could not be built; the message says why."""


def build(out: Path, *, work: Path | None = None, quiet: bool = False) -> Bundle:
    """Build ``out/FocusMate`` (replacing an earlier build there) and check it."""
    for module in ("PyInstaller", "PySide6", "qasync"):
        if importlib.util.find_spec(module) is None:
            raise BuildError(
                f"{module} is not installed: pip install -e '.[desktop,packaging]' first"
            )
    if not sys.platform.startswith("linux"):
        raise BuildError("the desktop bundle is built on Linux (its menu entry is XDG)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="focusmate-desktop-build-") as scratch:
        command = [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--distpath",
            str(out),
            "--workpath",
            str(work or scratch),
            "--log-level",
            "WARN" if quiet else "INFO",
            str(SPEC),
        ]
        done = subprocess.run(command, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise BuildError(f"PyInstaller failed with exit code {done.returncode} (see above)")
    folder = out / NAME
    add_desktop_files(folder)
    missing = [path for path in REQUIRED if not (folder / path).exists()]
    if missing:
        raise BuildError(f"the bundle in {folder} lacks: {', '.join(missing)}")
    dangling = [str(p.relative_to(folder)) for p in folder.rglob("*") if not p.exists()]
    if dangling:  # a link to something the spec left out
        raise BuildError(f"the bundle in {folder} has broken links: {', '.join(dangling)}")
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return Bundle(
        folder=folder,
        size_bytes=sum(p.stat().st_size for p in files),
        files=len(files),
        seconds=time.monotonic() - started,
    )


def add_desktop_files(folder: Path) -> None:
    """The menu entry, the icons (hicolor layout) and the installer, beside the executable."""
    shutil.copy2(DESKTOP / "focusmate.desktop", folder / "focusmate.desktop")
    icons = folder / "icons" / "hicolor"
    if icons.exists():
        shutil.rmtree(icons)
    shutil.copytree(DESKTOP / "icons" / "hicolor", icons)
    scalable = icons / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "ui" / "assets" / "focusmate.svg", scalable / "focusmate.svg")
    installer = folder / "install.sh"
    shutil.copy2(DESKTOP / "install.sh", installer)
    installer.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build_desktop.py", description="Build the FocusMate desktop bundle (one folder)."
    )
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where FocusMate/ goes")
    parser.add_argument("--work", type=Path, help="keep PyInstaller's work files here")
    parser.add_argument("--quiet", action="store_true", help="only PyInstaller's warnings")
    args = parser.parse_args(argv)
    work = args.work.resolve() if args.work else None
    try:
        bundle = build(args.out.resolve(), work=work, quiet=args.quiet)
    except BuildError as error:
        print(f"build_desktop: {error}", file=sys.stderr)
        return 1
    print(bundle.summary())
    print(f"run it: {bundle.folder / EXECUTABLE}; install it: {bundle.folder / 'install.sh'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
