"""The relay's Prometheus metrics, in one registry per relay (no process-wide state).

Names follow Prometheus conventions (``_total`` counters, base units); ``docs/operations.md``
lists what each means and which alerts to build on them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STALL_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class FastCounter:
    """A counter for the per-update path: a plain integer (the loop is single-threaded), exported
    by :class:`_FastCollector` at scrape time instead of taking prometheus_client's lock."""

    __slots__ = ("help", "name", "value")

    def __init__(self, name: str, help: str) -> None:
        self.name, self.help, self.value = name, help, 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class FastHistogram:
    """A histogram for the per-update path, bucketed with bisect; exported like FastCounter."""

    __slots__ = ("bounds", "counts", "help", "name", "sum")

    def __init__(self, name: str, help: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.bounds = name, help, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _FastCollector(Collector):
    def __init__(self, counters: list[FastCounter], histograms: list[FastHistogram]) -> None:
        self.counters = counters
        self.histograms = histograms

    def collect(self) -> Iterator[Metric]:
        for counter in self.counters:
            yield CounterMetricFamily(counter.name, counter.help, value=counter.value)
        for hist in self.histograms:
            cumulative, buckets = 0, []
            for bound, count in zip((*hist.bounds, float("inf")), hist.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            yield HistogramMetricFamily(hist.name, hist.help, buckets=buckets, sum_value=hist.sum)


class RelayMetrics:
    def __init__(self, *, shared: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "focusmate_relay_connections", "Open websocket connections.", ["endpoint"], registry=r
        )
        self.connections_total = Counter(
            "focusmate_relay_connections_opened",
            "Websocket connections accepted.",
            ["endpoint"],
            registry=r,
        )
        self.address_entries = Gauge(
            "focusmate_relay_address_entries",
            "Per-address limiter state held (buckets and connection counts); back to about the "
            "number of addresses active in the last minute after each housekeeping pass.",
            registry=r,
        )
        self.documents = Gauge(
            "focusmate_relay_documents_in_memory", "Documents loaded in memory.", registry=r
        )
        self.updates_in = FastCounter(
            "focusmate_relay_updates_received", "Document updates received and committed."
        )
        self.updates_out = FastCounter(
            "focusmate_relay_updates_forwarded", "Document update messages sent to subscribers."
        )
        self.bytes_in = FastCounter(
            "focusmate_relay_received_bytes", "Websocket payload bytes received."
        )
        self.bytes_out = FastCounter(
            "focusmate_relay_sent_bytes", "Websocket payload bytes queued for sending."
        )
        self.fanout_latency = FastHistogram(
            "focusmate_relay_fanout_latency_seconds",
            "From receiving an update to queueing it for every subscriber (commit included).",
            _LATENCY_BUCKETS,
        )
        self.loop_lag = FastHistogram(
            "focusmate_relay_event_loop_lag_seconds",
            "How late the event loop ran a timer (due every 0.1 s): a stall delays every "
            "connection by as much.",
            _STALL_BUCKETS,
        )
        self.gc_pauses = FastHistogram(
            "focusmate_relay_gc_full_collection_seconds",
            "Full (oldest-generation) garbage collections and how long each paused the relay.",
            _STALL_BUCKETS,
        )
        r.register(
            _FastCollector(
                [self.updates_in, self.updates_out, self.bytes_in, self.bytes_out],
                [self.fanout_latency, self.loop_lag, self.gc_pauses],
            )
        )
        self.commit_batch = Histogram(
            "focusmate_relay_commit_batch_writes",
            "Writes per group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "focusmate_relay_commit_seconds",
            "Time to commit one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "focusmate_relay_rejected_frames",
            "Frames or connections refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.dropped_slow = Counter(
            "focusmate_relay_slow_consumers_dropped",
            "Connections closed because they did not read what they were sent.",
            registry=r,
        )
        self.dropped_silent = Counter(
            "focusmate_relay_silent_connections_dropped",
            "Connections closed because nothing, not even a pong, came from them for two "
            "keepalive intervals.",
            registry=r,
        )
        self.mailbox_items = Gauge(
            "focusmate_relay_mailbox_items", "Direct messages and receipts waiting.", registry=r
        )
        self.mailbox_bytes = Gauge(
            "focusmate_relay_mailbox_bytes",
            "Bytes of direct messages and receipts waiting.",
            registry=r,
        )
        self.dms = Counter("focusmate_relay_dms", "Direct messages accepted.", registry=r)
        self.timer_commands = Counter(
            "focusmate_relay_timer_commands", "Hosted timer commands applied.", registry=r
        )
        # With --redis-url only (relay/shared_log.py); the Redis writer's pipelines count as
        # group commits above. Made either way, exported only then.
        shared_registry = r if shared else None
        self.redis_up = Gauge(
            "focusmate_relay_redis_up",
            "1 while this process's channel link to Redis is up (with --redis-url).",
            registry=shared_registry,
        )
        self.redis_catch_ups = Counter(
            "focusmate_relay_redis_catch_ups",
            "Times a document's log was read from its stream because channel messages were "
            "lost (a gap, or the link to Redis came back).",
            registry=shared_registry,
        )
        self.redis_reloads = Counter(
            "focusmate_relay_redis_reloads",
            "Times a document was reloaded because what this process missed had been folded "
            "into a snapshot meanwhile.",
            registry=shared_registry,
        )
        self.clock_offset = Gauge(
            "focusmate_relay_clock_offset_seconds",
            "Redis's clock minus this machine's (with --redis-url: timers and pongs use Redis's).",
            registry=shared_registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
