"""``focusmate app --snapshot FILE`` from the source tree: the real window on a fresh profile,
offscreen, saved as a PNG before a clean exit (the desktop bundle's smoke test relies on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from ui.launcher import main

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60


def assert_window_png(path: Path) -> None:
    """``path`` is a PNG of a whole window (at least 800x500) with something drawn on it."""
    assert path.is_file(), f"no snapshot at {path}"
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    assert image.width() >= 800 and image.height() >= 500, (image.width(), image.height())
    colours = Counter(
        image.pixel(x, y) for x in range(0, image.width(), 4) for y in range(0, image.height(), 4)
    )
    dominant = colours.most_common(1)[0][1] / colours.total()
    # Text and controls bring dozens of antialiased shades; a blank window has one colour.
    assert len(colours) > 16 and dominant < 0.995, (len(colours), dominant)


def snapshot(profile: Path, png: Path) -> subprocess.CompletedProcess[str]:
    """``python -m ui.launcher --profile PROFILE app --no-lan --snapshot PNG``, offscreen."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("FOCUSMATE_PROFILE", None)
    command = [sys.executable, "-m", "ui.launcher", "--profile", str(profile), "app"]
    return subprocess.run(
        [*command, "--no-lan", "--snapshot", str(png)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


def test_snapshot_saves_the_window_of_a_fresh_profile_and_exits_cleanly(tmp_path: Path) -> None:
    profile, png = tmp_path / "profile", tmp_path / "shots" / "window.png"
    done = snapshot(profile, png)
    assert done.returncode == 0, done.stderr
    assert_window_png(png)
    assert (profile / "identity.key").is_file()  # the app created the profile's identity


def test_snapshot_to_an_unwritable_place_fails_with_a_reason(tmp_path: Path) -> None:
    in_the_way = tmp_path / "window.png"
    in_the_way.mkdir()  # a directory where the PNG should go
    done = snapshot(tmp_path / "profile", in_the_way)
    assert done.returncode == 1
    assert f"could not write the snapshot to {in_the_way}" in done.stderr


def test_snapshot_is_not_advertised_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--no-lan" in help_text
    assert "--snapshot" not in help_text
