"""Drive Node's Yjs tooling from async tests: y-websocket's reference server and a CLI client.

The Node side lives in ``tests/interop/node`` (``npm ci`` there installs it). Everything here
waits on events or polls against a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

NODE_DIR = Path(__file__).resolve().parent / "node"
YCLIENT = NODE_DIR / "yclient.cjs"
REFERENCE_SERVER = NODE_DIR / "node_modules" / "y-websocket" / "bin" / "server.cjs"

Event = dict[str, Any]


def node_available() -> str | None:
    """None when the Node toolkit can run, otherwise why not (for a loud skip)."""
    if shutil.which("node") is None:
        return "node is not on PATH: install Node 20+ to run the Yjs interop tests"
    modules = NODE_DIR / "node_modules"
    needed = [REFERENCE_SERVER, *(modules / name / "package.json" for name in ("yjs", "ws"))]
    if not all(path.is_file() for path in needed):
        return (
            f"{NODE_DIR / 'node_modules'} is missing or incomplete: "
            f"run `npm ci --no-audit --no-fund` in {NODE_DIR}"
        )
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server is told it through its PORT env)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """Terminate a child process, killing it if it outlives the grace period."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def start_node_server(
    host: str = "127.0.0.1", port: int | None = None, *, timeout: float = 10.0
) -> asyncio.subprocess.Process:
    """Start y-websocket's ``bin/server.cjs`` on host:port; return once it accepts TCP.

    server.cjs reads HOST/PORT from its environment, so it cannot pick a port itself: pass one
    from :func:`free_port` (the default). The caller owns the process: :func:`stop_process`.
    """
    if port is None:
        port = free_port(host)
    # Server output goes to an anonymous file, read back only if the server fails to start.
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(REFERENCE_SERVER),
            cwd=NODE_DIR,
            env={**os.environ, "HOST": host, "PORT": str(port)},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        exited = asyncio.ensure_future(proc.wait())
        try:
            await _until_listening(host, port, exited, timeout, log)
        except BaseException as exc:
            await stop_process(proc)
            if isinstance(exc, Exception):
                raise RuntimeError(
                    f"server.cjs on {host}:{port} did not start ({exc}); output:\n{_log_text(log)}"
                ) from exc
            raise
        finally:
            exited.cancel()
    return proc


async def _until_listening(
    host: str, port: int, exited: asyncio.Future[int], timeout: float, log: IO[bytes]
) -> None:
    """Poll until server.cjs is listening on host:port; fail on ``exited`` or the deadline.

    Ready means a TCP connect succeeds *and* the server printed its "running at" line (from its
    listen callback), so a port someone else grabbed after :func:`free_port` is not mistaken
    for ours.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not exited.done():
        if await _accepts_tcp(host, port) and _says_running(log):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"not listening within {timeout}s")
        # Not ready yet: pause briefly, waking at once if the server dies.
        await asyncio.wait({exited}, timeout=0.05)
    raise RuntimeError(f"exited with code {exited.result()}")


async def _accepts_tcp(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _says_running(log: IO[bytes]) -> bool:
    return "running at" in _log_text(log)


def _log_text(log: IO[bytes]) -> str:
    """The server's output so far. pread: the child shares (and advances) the file offset."""
    return os.pread(log.fileno(), 1 << 20, 0).decode(errors="replace")


class YClient:
    """``node yclient.cjs URL`` as an async context manager speaking JSON lines.

    Every event the client prints is kept in :attr:`events` (for failure messages) and in a
    backlog: :meth:`next_event` takes the earliest backlog event that matches and leaves the
    others for later calls, so waiting for one reply never loses an unrelated event. Set
    ``no_reconnect=True`` for clients the server is expected to reject.
    """

    def __init__(self, url: str, *, no_reconnect: bool = False) -> None:
        self.url = url
        self.no_reconnect = no_reconnect
        self.events: list[Event] = []  # everything seen, for failure messages
        self._proc: asyncio.subprocess.Process | None = None
        self._backlog: list[Event] = []  # not yet taken by next_event
        self._arrived = asyncio.Event()  # set when the backlog grows or stdout ends
        self._eof = False
        self._reader: asyncio.Task[None] | None = None
        self._stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        env = dict(os.environ)
        if self.no_reconnect:
            env["YCLIENT_NO_RECONNECT"] = "1"
        self._proc = await asyncio.create_subprocess_exec(
            "node",
            str(YCLIENT),
            self.url,
            cwd=NODE_DIR,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_stdout())
        self._stderr_task = asyncio.create_task(self._read_stderr())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, grace: float = 5.0) -> None:
        """Ask the client to exit; kill it if it has not within ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send({"cmd": "exit"})
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                await stop_process(proc, 1.0)
        for task in (self._reader, self._stderr_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def stderr(self) -> str:
        return self._stderr.decode(errors="replace")

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                event: Event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "unparsed", "line": line}
            self.events.append(event)
            self._backlog.append(event)
            self._arrived.set()
        self._eof = True
        self._arrived.set()

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            self._stderr.extend(raw)

    async def send(self, cmd: dict[str, Any]) -> None:
        """Write one command line to the client's stdin."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("YClient is not running (use `async with YClient(url)`)")
        self._proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self._proc.stdin.drain()

    def _describe(self) -> str:
        events = "\n  ".join(json.dumps(e) for e in self.events) or "(none)"
        return (
            f"yclient {self.url} (exit code {self.returncode})\n"
            f"events seen:\n  {events}\nstderr:\n{self.stderr or '(empty)'}"
        )

    async def next_event(
        self, predicate: Callable[[Event], bool] | None = None, timeout: float = 10.0
    ) -> Event:
        """Take and return the earliest unconsumed event satisfying ``predicate`` (any if None).

        Raises TimeoutError after ``timeout`` seconds, AssertionError if the client's output ends
        first; both messages list every event seen and the client's stderr.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, event in enumerate(self._backlog):
                if predicate is None or predicate(event):
                    return self._backlog.pop(i)
            if self._eof:
                if self._stderr_task is not None:  # let stderr finish, for the message
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self._stderr_task), 2.0)
                raise AssertionError(f"client output ended before a match\n{self._describe()}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise TimeoutError(
                    f"no matching event within {timeout}s\n{self._describe()}"
                ) from None

    async def expect(self, event: str, timeout: float = 10.0, **fields: Any) -> Event:
        """The next event named ``event`` whose fields include ``fields``."""
        return await self.next_event(
            lambda e: e.get("event") == event and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )

    async def synced(self, timeout: float = 10.0) -> None:
        """Wait until the provider reports its first sync with the server."""
        await self.expect("synced", timeout)

    async def set(self, map_name: str, key: str, value: Any) -> None:
        await self.send({"cmd": "set", "map": map_name, "key": key, "value": value})
        await self.expect("ok", cmd="set")

    async def get(self, map_name: str) -> dict[str, Any]:
        await self.send({"cmd": "get", "map": map_name})
        event = await self.expect("map", map=map_name)
        value: dict[str, Any] = event["value"]
        return value

    async def wait_for(self, map_name: str, key: str, value: Any, timeout: float = 10.0) -> None:
        """Return once ``map_name[key] == value`` in the client's document, else raise."""
        await self.send(
            {"cmd": "wait", "map": map_name, "key": key, "value": value, "timeout": timeout}
        )
        event = await self.next_event(
            lambda e: e.get("cmd") == "wait" and e.get("event") in {"ok", "timeout"},
            timeout + 5,
        )
        if event["event"] != "ok":
            raise AssertionError(
                f"{map_name}[{key!r}] never became {value!r} "
                f"(last value {event.get('value')!r})\n{self._describe()}"
            )

    async def set_awareness(self, state: dict[str, Any] | None) -> None:
        await self.send({"cmd": "awareness", "state": state})
        await self.expect("ok", cmd="awareness")

    async def peers(self) -> list[dict[str, Any]]:
        """Awareness states of every other client, as this client sees them now."""
        await self.send({"cmd": "peers"})
        event = await self.expect("peers")
        states: list[dict[str, Any]] = event["states"]
        return states
