"""Qt tests run offscreen (tests/conftest.py sets QT_QPA_PLATFORM) on a qasync loop each."""

from tests.ui.uikit import qloop

__all__ = ["qloop"]
