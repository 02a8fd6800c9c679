"""Relay configuration: where it listens and stores, and every limit it enforces.

Every option is a command-line flag and an environment variable (``FOCUSMATE_RELAY_<NAME>``;
limits as ``--limit NAME=VALUE`` or ``FOCUSMATE_RELAY_LIMIT_<NAME>``), so the same binary is
configured by a systemd unit, a container or a shell. Defaults suit one small
community on one machine; ``docs/operations.md`` explains each limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Limits:
    """What one connection, one address and one mailbox may use."""

    max_frame_bytes: int = 1 * MIB
    max_docs_per_connection: int = 256
    max_connections: int = 20_000
    max_connections_per_ip: int = 512
    # token buckets: sustained rate per second, and the burst allowed on top
    messages_per_second: float = 200.0
    message_burst: float = 400.0
    bytes_per_second: float = 1 * MIB
    byte_burst: float = 4 * MIB
    # All of an address's connections together: 2x one connection (a NAT'd office of ~100
    # people writing a few updates a second each still fits). At 10x, one address flooding over
    # many connections kept a relay's event loop ~80 % busy and every other room waited (bench/
    # flood_fairness.py, the ``conns`` flood).
    ip_messages_per_second: float = 400.0
    ip_message_burst: float = 800.0
    # Frames of one address handled per turn of the event loop, over all its connections (relay/
    # turns.py): one address cannot crowd the others out of the loop however many connections
    # it opens. At 8 a flooding address's share of a turn was ~5 ms of relay CPU, at 2 ~1.5 ms
    # (calm p99 ~11 ms against ~9.4, bench/flood_fairness.py ``conns``).
    ip_frames_per_turn: int = 2
    connects_per_ip_per_second: float = 50.0
    connect_burst_per_ip: float = 200.0
    auth_failures_per_ip_per_minute: float = 20.0
    # a peer whose unsent bytes exceed this is not reading: it is dropped, not buffered for
    send_queue_bytes: int = 8 * MIB
    max_inflight_updates: int = 256
    awareness_clients_per_connection: int = 8
    handshake_seconds: float = 10.0
    mailbox_max_items: int = 1_000
    mailbox_max_bytes: int = 4 * MIB  # below send_queue_bytes: a full mailbox fits the queue
    max_receipts_per_request: int = 64
    mailbox_max_age_seconds: float = 30 * 24 * 3600.0


@dataclass(frozen=True)
class RelayConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = Path("relay-data")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Addresses clients dial (e.g. wss://relay.example.org); the handshake signature must name
    # one. Empty: whatever the request's Host header says (fine on a LAN, set it in production).
    public_urls: tuple[str, ...] = ()
    # Behind a reverse proxy every connection comes from the proxy's address; with this set the
    # per-address limits use the address the proxy puts last in X-Forwarded-For instead.
    trust_forwarded_for: bool = False
    limits: Limits = field(default_factory=Limits)
    idle_document_seconds: float = 60.0
    compact_after_updates: int = 500
    synchronous: str = "normal"  # SQLite's: "full" adds an fsync per group commit (storage.py)
    drain_seconds: float = 10.0
    # A connection silent this long is pinged, and closed if it stays silent as long again.
    keepalive_seconds: float = 30.0
    # Several relay processes share documents, presence, timers and mail through this Redis
    # (relay/shared_log.py) instead of each keeping its own SQLite database.
    redis_url: str | None = None
    log_level: str = "info"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_NAME


DATABASE_NAME = "relay.db"
