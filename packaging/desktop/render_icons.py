"""Render the app icon (ui/assets/focusmate.svg) to the PNGs that are committed beside it.

Desktops look up ``Icon=focusmate`` in the hicolor theme, and a few of them (and Qt builds
without the SVG plugin) only read PNGs, so the sizes they ask for are rendered here once with
QtSvg, offscreen, and committed:

    python packaging/desktop/render_icons.py          # rewrite the PNGs
    python packaging/desktop/render_icons.py --check  # exit 1 if one is missing or the wrong size

Run it again after editing the SVG.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt loads: no display needed

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[2]
SVG = ROOT / "ui" / "assets" / "focusmate.svg"
ICONS = Path(__file__).resolve().parent / "icons"
SIZES = (256, 512)
APP_PNG = ROOT / "ui" / "assets" / "focusmate.png"  # what the app can load without QtSvg
APP_PNG_SIZE = 256


def hicolor_png(size: int, icons: Path = ICONS) -> Path:
    """Where the ``size`` px PNG lives in the hicolor layout (``<size>x<size>/apps/``)."""
    return icons / "hicolor" / f"{size}x{size}" / "apps" / "focusmate.png"


def render(svg: Path, size: int) -> QImage:
    """``svg`` as a ``size`` px square image on a transparent background."""
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG image Qt can read")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def targets() -> list[tuple[Path, int]]:
    return [(hicolor_png(size), size) for size in SIZES] + [(APP_PNG, APP_PNG_SIZE)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="render_icons.py", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the committed PNGs")
    args = parser.parse_args(argv)
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    assert app is not None
    problems = []
    for path, size in targets():
        if args.check:
            image = QImage(str(path))
            if image.isNull() or (image.width(), image.height()) != (size, size):
                problems.append(f"{path.relative_to(ROOT)}: missing or not {size}x{size}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render(SVG, size).save(str(path)):
            problems.append(f"{path.relative_to(ROOT)}: could not be written")
            continue
        print(f"{path.relative_to(ROOT)}: {size}x{size}, {path.stat().st_size} bytes")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
