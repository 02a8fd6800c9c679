"""Qt tests run offscreen (tests/conftest.py sets QT_QPA_PLATFORM) on a qasync loop each."""

from tests.ui.uikit import qloop, restored_look

__all__ = ["qloop", "restored_look"]
