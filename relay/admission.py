"""Admission: who may connect, how fast, and with which token.

Per client address: open connections, a connect rate, a shared message budget, and a budget of
failed logins (per address for handshakes; per address *and document* for bad tokens, so a stock
client retrying a mistyped URL forever cannot lock everyone behind its NAT out of other rooms).
Refusals before the websocket upgrade are HTTP 429/503; after it, close codes.
"""

from __future__ import annotations

import collections
import hmac
import logging
import re
from collections.abc import Callable
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection

from focusmate.invite import room_id_for_token
from relay.config import Limits
from relay.logs import fields
from relay.metrics import RelayMetrics
from sync.control import CloseCode
from sync.ratelimit import BucketsByKey, TokenBucket

log = logging.getLogger("focusmate.relay")
DOC_ID = re.compile(r"[0-9a-f]{32}")
DOC_PREFIX = "/doc/"
CONTROL_PATH = "/v1"


class Admission:
    def __init__(
        self,
        limits: Limits,
        *,
        metrics: RelayMetrics,
        monotonic: Callable[[], float],
        trust_forwarded_for: bool,
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self.monotonic = monotonic
        self.trust_forwarded_for = trust_forwarded_for
        self.open = 0
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._messages = BucketsByKey(limits.ip_messages_per_second, limits.ip_message_burst)
        self._connects = BucketsByKey(
            limits.connects_per_ip_per_second, limits.connect_burst_per_ip
        )
        per_minute = limits.auth_failures_per_ip_per_minute
        self._auth_failures = BucketsByKey(per_minute / 60.0, per_minute)

    def ip(self, connection: ServerConnection) -> str:
        """The client's address; behind a reverse proxy (``--trust-forwarded-for``) the one the
        proxy appended last to X-Forwarded-For, as a client can forge the earlier entries. (nginx
        appends to the client's header; HAProxy adds a header line of its own after it.)"""
        if self.trust_forwarded_for and connection.request is not None:
            lines = connection.request.headers.get_all("X-Forwarded-For")
            last = lines[-1].rsplit(",", 1)[-1].strip() if lines else ""
            if last:
                return last[:64]
        address = connection.remote_address
        return str(address[0]) if address else "unknown"

    def refusal(self, ip: str, path: str) -> tuple[HTTPStatus, str] | None:
        """Why a websocket upgrade from ``ip`` to ``path`` is refused, or None to let it in."""
        now = self.monotonic()
        refused = None
        if self.open >= self.limits.max_connections:
            refused = (HTTPStatus.SERVICE_UNAVAILABLE, "relay full", "max_connections")
        elif self._per_ip[ip] >= self.limits.max_connections_per_ip:
            refused = (HTTPStatus.TOO_MANY_REQUESTS, "too many connections", "connections_per_ip")
        elif not self._connects.get(ip, now=now).try_take(1, now=now):
            refused = (HTTPStatus.TOO_MANY_REQUESTS, "connecting too fast", "connect_rate")
        elif self._auth_failures.peek(_auth_key(ip, path), now=now) < 1:
            refused = (HTTPStatus.TOO_MANY_REQUESTS, "too many failed logins", "auth_failures")
        if refused is None:
            return None
        status, text, reason = refused
        self.metrics.rejected.labels(reason).inc()
        return status, text

    def connected(self, ip: str) -> None:
        self.open += 1
        self._per_ip[ip] += 1

    def disconnected(self, ip: str) -> None:
        self.open -= 1
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]

    def prune(self) -> int:
        """Forget the per-address buckets that have refilled (an address that comes back gets
        an identical full one), but not the message budget of an address with connections
        open (they share that bucket). Returns how many went."""
        now = self.monotonic()
        return (
            self._messages.prune(now=now, keep=self._per_ip)
            + self._connects.prune(now=now)
            + self._auth_failures.prune(now=now)
        )

    def tracked(self) -> int:
        """Per-address state held: buckets and connection counts (for tests and metrics)."""
        return (
            len(self._messages) + len(self._connects) + len(self._auth_failures) + len(self._per_ip)
        )

    def message_bucket(self, ip: str) -> TokenBucket:
        """The budget every connection from ``ip`` shares."""
        return self._messages.get(ip, now=self.monotonic())

    def check_token(self, ip: str, doc_id: str, token: str | None) -> tuple[int, str] | None:
        """None when the token opens ``doc_id``; else a close code and reason (and the failure
        is counted)."""
        if not DOC_ID.fullmatch(doc_id):
            self.metrics.rejected.labels("bad_doc_id").inc()
            return CloseCode.NOT_FOUND, "malformed document id"
        if token is None or not hmac.compare_digest(room_id_for_token(token), doc_id):
            self.auth_failed(ip, "bad_token", doc_id=doc_id)
            return CloseCode.UNAUTHORIZED, "invalid token for this document"
        return None

    def auth_failed(self, ip: str, reason: str, *, doc_id: str | None = None) -> None:
        self.metrics.rejected.labels(reason).inc()
        now = self.monotonic()
        key = _auth_key(ip, DOC_PREFIX + doc_id if doc_id else CONTROL_PATH)
        self._auth_failures.get(key, now=now).take(1, now=now)
        log.info("relay.auth_failed", extra=fields(ip=ip, reason=reason))


def _auth_key(ip: str, path: str) -> str:
    return f"{ip} {path}" if path.startswith(DOC_PREFIX) else ip
