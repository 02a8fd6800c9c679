"""``make screenshots`` produces a real picture of every main view from the demo profile."""

from __future__ import annotations

import asyncio
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
