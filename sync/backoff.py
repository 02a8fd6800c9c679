"""Reconnection delays: exponential, capped, with full jitter so peers do not reconnect in step.

After a relay restart every client notices at once; without jitter they would all come back in
the same instant, again and again. Each delay is drawn uniformly from [base·2^n / 2, base·2^n],
capped, with the random source injected.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    rng: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return ceiling * (0.5 + 0.5 * self.rng())

    def reset(self) -> None:
        self.attempt = 0
