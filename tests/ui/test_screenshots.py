"""``make screenshots`` produces a real picture of every main view from the demo profile."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

from tests.ui.uikit import run
from ui.screenshots import capture


def test_every_main_view_is_captured_and_shows_something(
    tmp_path: Path, qloop: asyncio.AbstractEventLoop
) -> None:
    saved = run(qloop, capture(tmp_path / "out", tmp_path / "work"))
    assert sorted(p.stem for p in saved) == ["first-run", "messages", "room", "settings", "stats"]
    for path in saved:
        image = QImage(str(path))
        assert image.width() >= 400 and image.height() >= 300, path.name
        colours = {
            image.pixel(x, y)
            for x in range(0, image.width(), 5)
            for y in range(0, image.height(), 5)
        }
        assert len(colours) > 16, f"{path.name} is nearly blank"


def test_the_app_draws_at_200_percent_scaling(tmp_path: Path) -> None:
    """A HiDPI run end to end (Qt reads the scale factor at start-up, hence a process)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "ui.screenshots", str(tmp_path), "--scale", "2", "--theme", "dark"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    room = QImage(str(tmp_path / "room.png"))
    assert (room.width(), room.height()) == (2400, 1520)  # the 1200x760 window, at 2x
