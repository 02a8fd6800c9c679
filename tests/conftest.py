"""Shared test set-up: Qt runs offscreen everywhere, and every test gets its own profile dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The suite is deterministic: property tests draw the same examples on every run, so a CI run
# cannot fail on a draw no one has seen before. `make soak` explores fresh random examples (and
# many more of the fuzz tests'); whatever it finds gets pinned with @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    path = tmp_path / "profile"
    path.mkdir()
    return path
