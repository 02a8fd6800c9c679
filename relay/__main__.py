"""``focusmate-relay``: serve, and administer a relay's data directory.

The composition root of the relay: it builds the configuration from flags and environment
variables (``FOCUSMATE_RELAY_*``), then the server, and runs it until SIGTERM or SIGINT, which
drain it (close connections with 1001, commit everything received, exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fcntl
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from relay import __version__
from relay.admin import ADMIN_COMMANDS, add_admin_parsers, run_admin
from relay.config import Limits, RelayConfig
from relay.logs import configure, fields
from relay.redis_link import RedisUnavailable
from relay.server import Relay
from relay.storage import StorageError

ENV_PREFIX = "FOCUSMATE_RELAY_"
LOCK_NAME = "relay.lock"
log = logging.getLogger("focusmate.relay")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focusmate-relay",
        description="The FocusMate relay: syncs rooms for remote groups, hosts their timers and "
        "keeps end-to-end-encrypted direct messages until they are fetched.",
    )
    parser.add_argument("--version", action="version", version=f"focusmate-relay {__version__}")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("DATA_DIR", "relay-data") or "relay-data"),
        help="where the database lives (env FOCUSMATE_RELAY_DATA_DIR; default ./relay-data)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the relay")
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="(env ..._HOST)")
    serve.add_argument(
        "--port", type=int, default=int(_env("PORT", "8765") or 8765), help="0 picks a free port"
    )
    serve.add_argument("--tls-cert", type=Path, default=_path_env("TLS_CERT"))
    serve.add_argument("--tls-key", type=Path, default=_path_env("TLS_KEY"))
    serve.add_argument(
        "--public-url",
        action="append",
        default=[u for u in (_env("PUBLIC_URL") or "").split(",") if u],
        help="an address clients dial, e.g. wss://relay.example.org (repeatable; env "
        "FOCUSMATE_RELAY_PUBLIC_URL, comma-separated). Identity handshakes must name one.",
    )
    serve.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a limit, e.g. max_frame_bytes=262144 (env FOCUSMATE_RELAY_LIMIT_<NAME>); "
        "names: " + ", ".join(f.name for f in dataclasses.fields(Limits)),
    )
    serve.add_argument(
        "--idle-document-seconds",
        type=float,
        default=float(_env("IDLE_DOCUMENT_SECONDS", "60") or 60),
    )
    serve.add_argument(
        "--trust-forwarded-for",
        action="store_true",
        default=_env("TRUST_FORWARDED_FOR", "") in ("1", "true", "yes"),
        help="behind a reverse proxy: per-address limits use X-Forwarded-For (env ..._TRUST_"
        "FORWARDED_FOR=1). Only set this when every connection comes through your proxy.",
    )
    serve.add_argument(
        "--compact-after-updates",
        type=int,
        default=int(_env("COMPACT_AFTER_UPDATES", "500") or 500),
        help="fold a document's log into a snapshot after this many updates",
    )
    serve.add_argument(
        "--synchronous",
        choices=("normal", "full"),
        default=_env("SYNCHRONOUS", "normal"),
        help="normal: commits survive a relay crash or kill -9; full: also a power cut, at the "
        "cost of an fsync per group commit (env ..._SYNCHRONOUS)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=float(_env("DRAIN_SECONDS", "10") or 10),
        help="on SIGTERM, how long to wait for connections to close",
    )
    serve.add_argument(
        "--keepalive-seconds",
        type=float,
        default=float(_env("KEEPALIVE_SECONDS", "30") or 30),
        help="a connection silent this long is pinged, and closed if it stays silent as long "
        "again (env ..._KEEPALIVE_SECONDS)",
    )
    serve.add_argument(
        "--redis-url",
        default=_env("REDIS_URL") or None,
        help="share documents, presence, timers and mail with other relay processes through "
        "this Redis, e.g. redis://127.0.0.1:6379/0, instead of SQLite in --data-dir (env "
        "..._REDIS_URL; see docs/scale-out.md)",
    )
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    add_admin_parsers(sub)
    return parser


def _path_env(name: str) -> Path | None:
    value = _env(name)
    return Path(value) if value else None


def parse_limits(overrides: Sequence[str], environ: dict[str, str]) -> Limits:
    """Limits from ``FOCUSMATE_RELAY_LIMIT_<NAME>`` variables, then ``--limit`` flags."""
    known = {f.name: f for f in dataclasses.fields(Limits)}
    pairs = [
        (key[len(ENV_PREFIX + "LIMIT_") :].lower(), value)
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX + "LIMIT_")
    ]
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--limit takes NAME=VALUE, not {item!r}")
        pairs.append((name.strip(), value.strip()))
    values: dict[str, Any] = {}
    for name, value in pairs:
        if name not in known:
            raise ValueError(f"unknown limit {name!r}")
        kind = int if known[name].type in (int, "int") else float
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"limit {name} must be a number, not {value!r}") from None
        if number <= 0:
            raise ValueError(f"limit {name} must be positive")
        values[name] = number
    return Limits(**values)


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One relay per data directory; ``admin restore`` refuses while one runs."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / LOCK_NAME, "a+")  # noqa: SIM115 - closed below
    except OSError as err:
        raise StorageError(
            f"cannot use the data directory {data_dir}: {err.strerror or err}; the relay needs "
            "to write there"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(f"another relay is using {data_dir}") from None
        yield


def _tune_interpreter() -> None:
    """Latency settings for a server process (the composition root's call, not a library's).

    The storage thread hands each group commit back to the event loop; with CPython's default
    5 ms GIL switch interval that hand-off alone added milliseconds to every update's fan-out
    under load (bench/relay_fanout.py: p50 3.5 -> 1.9 ms at 2000 updates/s). Freezing the
    objects made at start-up keeps them out of every later full garbage collection.
    """
    sys.setswitchinterval(0.0005)
    gc.collect()
    gc.freeze()


async def _serve(config: RelayConfig) -> None:
    _tune_interpreter()
    relay = Relay(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await relay.start()
    await stop.wait()
    await relay.stop()


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    configure(getattr(args, "log_level", "warning"))
    try:
        if args.command == "serve":
            config = RelayConfig(
                host=args.host,
                port=args.port,
                data_dir=args.data_dir,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                public_urls=tuple(args.public_url),
                limits=parse_limits(args.limit, dict(os.environ)),
                trust_forwarded_for=args.trust_forwarded_for,
                idle_document_seconds=args.idle_document_seconds,
                compact_after_updates=args.compact_after_updates,
                synchronous=args.synchronous,
                drain_seconds=args.drain_seconds,
                keepalive_seconds=args.keepalive_seconds,
                redis_url=args.redis_url,
                log_level=args.log_level,
            )
            if (config.tls_cert is None) != (config.tls_key is None):
                raise ValueError("--tls-cert and --tls-key go together")
            if config.redis_url is not None:
                if not config.redis_url.startswith(("redis://", "rediss://", "unix://")):
                    raise ValueError("--redis-url must start with redis://, rediss:// or unix://")
                asyncio.run(_serve(config))  # (many processes share Redis: no data dir to lock)
            else:
                with data_dir_lock(config.data_dir):
                    asyncio.run(_serve(config))
            return 0
        if args.command in ADMIN_COMMANDS:
            result = run_admin(args, lock=data_dir_lock)
            print(json.dumps(result, indent=2, sort_keys=True), file=stdout)
            return 0
    except (StorageError, RedisUnavailable, ValueError, OSError) as err:
        log.error("relay.failed", extra=fields(error=str(err)))
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
