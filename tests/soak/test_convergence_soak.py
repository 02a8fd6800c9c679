"""The long version of ``tests/integration/test_convergence_engines.py``: five real engines
(one a daemon process killed with SIGKILL), two relays and a LAN bridge, thousands of random
edits under duplicated, reordered, delayed and dropped frames, cut connections and restarts,
for several seeds. Every profile must end with the same room and every committed edit.

``FOCUSMATE_SOAK=1`` runs it; ``FOCUSMATE_SOAK_SEEDS`` (default ``1,2,3``) and
``FOCUSMATE_SOAK_STEPS`` (default 1000 per seed) size it. Each seed's figures are printed as one
JSON line (edits by kind, faults by kind, seconds of chaos, seconds to converge after it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_convergence_engines import run_chaos

SEEDS = [int(s) for s in os.environ.get("FOCUSMATE_SOAK_SEEDS", "1,2,3").split(",") if s]
STEPS = int(os.environ.get("FOCUSMATE_SOAK_STEPS", "1000"))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.timeout(3600)
async def test_five_engines_converge_after_a_long_chaos(tmp_path: Path, seed: int) -> None:
    report = await run_chaos(tmp_path, seed=seed, steps=STEPS, converge_within=120.0)
    print(report.summary())
    assert report.missing == 0
    committed = sum(v for k, v in report.edits.items() if k != "refused")
    assert committed >= STEPS  # bursts make more edits than steps
    for kind in ("duplicate", "reorder", "delay", "drop", "cut", "restart", "kill_9"):
        assert report.faults[kind] > 0, (kind, report.faults)
