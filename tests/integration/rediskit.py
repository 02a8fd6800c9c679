"""A real ``redis-server`` for the scale-out tests, on a free loopback port in a temporary dir.

apt installs Redis without starting it (and CI keeps services from starting), so each test that
needs one starts its own: nothing is shared between tests, and a test may kill, restart or
flush its server. Without the ``redis-server`` binary the tests skip, loudly, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.integration.synckit import free_port

REDIS_SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (.ci/run installs it)"
)
START_DEADLINE = 10.0


class RedisServer:
    """One ``redis-server`` process. ``persistent`` turns on the append-only file (fsync every
    second), as docs/scale-out.md recommends, so a restart keeps what was written."""

    def __init__(
        self, directory: Path, *, persistent: bool = True, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.directory = directory
        self.persistent = persistent
        self.tls = tls  # (certificate, key): TLS only, clients trust the certificate
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[0]}"
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self, port: int) -> list[str]:
        assert REDIS_SERVER is not None
        listen = ["--port", str(port)]
        if self.tls is not None:
            listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.tls[0]),
                      "--tls-key-file", str(self.tls[1]), "--tls-auth-clients", "no"]  # fmt: skip
        return [
            REDIS_SERVER,
            *listen,
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip

    async def start(self) -> None:
        """Start on a free port (another free one if it was taken meanwhile), or on the port
        of a previous start, so clients configured with the URL find it again."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            port = self.port or free_port()
            self.proc = subprocess.Popen(
                self.args(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if await self._ready(port):
                self.port = port
                return
            self.stop()
        raise AssertionError(f"redis-server did not start:\n{self.log()}")

    async def _ready(self, port: int) -> bool:
        deadline = time.monotonic() + START_DEADLINE
        self.port, previous = port, self.port
        client = self.client()
        self.port = previous
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False  # (the port was taken: try another)
                with contextlib.suppress(RedisConnectionError, OSError):
                    if await client.ping():
                        return True
                await asyncio.sleep(0.02)  # (polling a process that is starting)
            return False
        finally:
            await client.aclose()

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: what the append-only file has not fsynced yet may be lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(START_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url)


@contextlib.asynccontextmanager
async def running_redis(
    directory: Path, *, persistent: bool = True, tls: tuple[Path, Path] | None = None
) -> AsyncIterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    server = RedisServer(directory, persistent=persistent, tls=tls)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisProxy:
    """``redis://127.0.0.1:<port>`` forwarding to a Redis server, standing in for the network
    between one relay process and Redis: :meth:`hold` keeps back what Redis sends (a stalled
    link; requests still go through), :meth:`cut` aborts every connection and loses what was
    held, as a partition that ends in dead connections does."""

    def __init__(self, target: RedisServer) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> RedisProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        loop = asyncio.get_running_loop()
        for task in (
            loop.create_task(self._pump(reader, up_writer, held=False)),
            loop.create_task(self._pump(up_reader, writer, held=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, held: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if held:
                    await self._flowing.wait()
                if sink.transport.is_closing():
                    return
                sink.write(data)
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()
