"""Relay configuration from flags and FOCUSMATE_RELAY_* variables, and its token buckets."""

from __future__ import annotations

import pytest

from relay.__main__ import build_parser, parse_limits
from relay.config import Limits
from sync.ratelimit import BucketsByKey, TokenBucket


def test_limits_come_from_the_environment_then_flags() -> None:
    env = {
        "FOCUSMATE_RELAY_LIMIT_MAX_FRAME_BYTES": "65536",
        "FOCUSMATE_RELAY_LIMIT_MESSAGES_PER_SECOND": "50",
        "UNRELATED": "1",
    }
    limits = parse_limits(["max_frame_bytes=1024"], env)
    assert limits.max_frame_bytes == 1024  # the flag wins
    assert limits.messages_per_second == 50.0
    assert limits.max_docs_per_connection == Limits().max_docs_per_connection


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("nonsense=1", "unknown limit"),
        ("max_frame_bytes", "NAME=VALUE"),
        ("max_frame_bytes=big", "must be a number"),
        ("max_frame_bytes=0", "positive"),
    ],
)
def test_bad_limits_are_refused_with_a_reason(override: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_limits([override], {})


def test_serve_flags_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOCUSMATE_RELAY_PORT", "9999")
    monkeypatch.setenv("FOCUSMATE_RELAY_PUBLIC_URL", "wss://a.example,wss://b.example")
    monkeypatch.setenv("FOCUSMATE_RELAY_SYNCHRONOUS", "full")
    args = build_parser().parse_args(["serve"])
    assert args.port == 9999
    assert args.public_url == ["wss://a.example", "wss://b.example"]
    assert args.synchronous == "full"


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket.full(rate=10.0, burst=5.0, now=0.0)
    assert [bucket.try_take(1, now=0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.try_take(1, now=0.1)  # 0.1 s at 10/s refills one
    assert bucket.take(1, now=0.1) == pytest.approx(0.1)  # overdrawn: wait 0.1 s
    assert bucket.available(now=10.0) == 5.0  # never above the burst


def test_buckets_by_key_forget_the_least_recently_used() -> None:
    buckets = BucketsByKey(rate=1.0, burst=1.0, max_keys=2)
    buckets.get("a", now=0.0).try_take(1, now=0.0)
    buckets.get("b", now=0.0)
    buckets.get("a", now=0.0)  # a is used again
    buckets.get("c", now=0.0)  # b goes
    assert buckets.get("a", now=0.0).available(now=0.0) == 0.0  # a was kept (still spent)
    assert buckets.get("b", now=0.0).available(now=0.0) == 1.0  # b is new again
