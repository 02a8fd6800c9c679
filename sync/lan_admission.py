"""Failed LAN handshakes, counted per address: a host that keeps failing is refused for a while.

Anyone on the network can dial a LAN listener, and each hello costs it a signature check. So a
listener counts the handshakes that fail (a bad or misaddressed hello, a malformed frame, no
hello in time) per remote address, as a token bucket: ``burst`` failures are allowed, and one
more every ``60 / failures_per_minute`` seconds. An address whose budget is spent is refused at
the websocket upgrade (HTTP 429), before any challenge is sent or any signature checked. Other
addresses are not affected, so a legitimate peer still connects while another host hammers.
At most ``max_addresses`` addresses are remembered (the least recently seen are forgotten), so
a host cycling through addresses cannot grow the table without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sync.ratelimit import BucketsByKey

FAILURES_PER_MINUTE = 10.0
FAILURE_BURST = 10.0
MAX_ADDRESSES = 4096


class LanAdmission:
    def __init__(
        self,
        *,
        failures_per_minute: float = FAILURES_PER_MINUTE,
        burst: float = FAILURE_BURST,
        max_addresses: int = MAX_ADDRESSES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monotonic = monotonic
        self._budgets = BucketsByKey(failures_per_minute / 60.0, burst, max_keys=max_addresses)

    def refused(self, address: str) -> bool:
        """Whether ``address`` has spent its budget of failed handshakes (an address never
        seen has not, and is not remembered for asking)."""
        return self._budgets.peek(address, now=self.monotonic()) < 1

    def failed(self, address: str) -> None:
        """Count one failed handshake from ``address``."""
        now = self.monotonic()
        self._budgets.get(address, now=now).take(1, now=now)

    def __len__(self) -> int:
        return len(self._budgets)
