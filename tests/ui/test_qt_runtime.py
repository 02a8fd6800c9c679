"""The Qt runtime we pin: a qasync loop must survive thousands of events.

PySide6 6.12.0 on CPython 3.11 corrupts the reference counts of None/True and aborts the process
after a few hundred signal emissions; pyproject.toml pins it away. This runs the loop in a child
process so that, should a bad build come back, the test fails with the abort instead of taking the
test run down with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SOAK = textwrap.dedent(
    """
    import asyncio, sys
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtWidgets import QApplication
    import qasync

    class Ticker(QObject):
        ticked = Signal(object, bool)

    app = QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    ticker = Ticker()
    seen = []
    ticker.ticked.connect(lambda value, flag: seen.append((value, flag)))

    async def churn(n):
        for i in range(n):
            ticker.ticked.emit(None, i % 2 == 0)
            done = loop.create_future()
            QTimer.singleShot(0, lambda: done.set_result(None))
            await done
            await asyncio.sleep(0)
        return len(seen)

    with loop:
        print(loop.run_until_complete(churn(5000)))
    """
)


def test_a_qasync_loop_survives_thousands_of_events() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", SOAK],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"the Qt event loop died: {done.stderr[-2000:]}"
    assert done.stdout.strip().splitlines()[-1] == "5000"
