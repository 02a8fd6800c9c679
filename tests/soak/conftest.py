"""Soak runs: the long versions of the reliability tests, run by ``make soak``.

They take minutes to hours, so the README's test command skips them, loudly and with the reason,
unless ``FOCUSMATE_SOAK=1`` is set. Their figures go to ``docs/reliability.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SOAK = os.environ.get("FOCUSMATE_SOAK") == "1"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="soak run: set FOCUSMATE_SOAK=1 (make soak) to run it")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.soak)
            if not SOAK:
                item.add_marker(skip)
