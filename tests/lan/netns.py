"""Network namespaces for LAN tests: a private Ethernet segment and child processes on it.

:func:`lan` makes a hub namespace holding a bridge and one namespace per peer, each joined to the
bridge by a veth pair whose peer end is ``eth0`` with address ``10.77.77.<i+1>/24``. Nothing is
created in the host's own namespace, so tests never touch the host's interfaces or routes, and
the subnet cannot clash with anything outside. Multicast is on and ``224.0.0.0/4`` is routed to
``eth0``, so mDNS works across the segment.

Namespace names are ``fmtest-<pid>-<random>-<role>``: parallel runs never share one, and
:func:`reap_stale` removes what an aborted run left behind (namespaces whose pid is gone).
Deleting the namespaces deletes the veths in them, so teardown is one ``ip netns del`` each.

:class:`Child` runs ``sys.executable -c CODE`` inside a namespace via ``ip netns exec``; it speaks
JSON lines (one object per line on stdout, commands on stdin). Waiting is on events with a
deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
PREFIX = "fmtest-"
SUBNET = "10.77.77"  # /24, only ever configured inside namespaces made here
IFACE = "eth0"
DEADLINE = 15.0

Event = dict[str, Any]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


@functools.cache
def netns_available() -> str | None:
    """None when namespaces can be made and entered here, otherwise exactly what is missing."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root: creating network namespaces (`ip netns add`) needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not on PATH"
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        made = _ip("netns", "add", name, check=False)
        if made.returncode != 0:
            return f"`ip netns add` fails: {made.stderr.strip()}"
        veth = _ip(
            "-n", name, "link", "add", "name", "a", "type", "veth", "peer", "name", "b", check=False
        )
        if veth.returncode != 0:
            return f"cannot create a veth pair in a namespace: {veth.stderr.strip()}"
        run = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c", "pass"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if run.returncode != 0:
            return f"`ip netns exec` fails: {run.stderr.strip()}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def reap_stale() -> None:
    """Delete ``fmtest-`` namespaces whose creating process no longer exists."""
    for name in _namespaces():
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _ip("netns", "del", name, check=False)


@dataclass(frozen=True)
class Host:
    """One peer's namespace and its address on the segment."""

    netns: str
    address: str


@dataclass
class Lan:
    hub: str
    hosts: list[Host] = field(default_factory=list)


@contextlib.contextmanager
def lan(n: int) -> Iterator[Lan]:
    """``n`` namespaces on one bridged segment; everything is deleted on exit."""
    if not 1 <= n <= 250:
        raise ValueError("between 1 and 250 hosts")
    reap_stale()
    base = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    segment = Lan(hub=f"{base}-hub")
    made: list[str] = []
    try:
        _ip("netns", "add", segment.hub)
        made.append(segment.hub)
        hub = ("-n", segment.hub)
        _ip(*hub, "link", "add", "name", "br0", "type", "bridge", "forward_delay", "0",
            "mcast_snooping", "0")  # fmt: skip
        _ip(*hub, "link", "set", "br0", "up")
        for i in range(n):
            host = Host(netns=f"{base}-p{i}", address=f"{SUBNET}.{i + 1}")
            _ip("netns", "add", host.netns)
            made.append(host.netns)
            here = ("-n", host.netns)
            _ip(*hub, "link", "add", "name", f"v{i}", "type", "veth", "peer", "name", IFACE,
                "netns", host.netns)  # fmt: skip
            _ip(*hub, "link", "set", f"v{i}", "master", "br0", "up")
            _ip(*here, "link", "set", "lo", "up")
            _ip(*here, "addr", "add", f"{host.address}/24", "dev", IFACE)
            _ip(*here, "link", "set", IFACE, "multicast", "on", "up")
            _ip(*here, "route", "add", "224.0.0.0/4", "dev", IFACE)
            segment.hosts.append(host)
        for host in segment.hosts:
            _wait_carrier(host.netns)
        yield segment
    finally:
        for name in reversed(made):
            _ip("netns", "del", name, check=False)


def _wait_carrier(netns: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while "LOWER_UP" not in _ip("-n", netns, "link", "show", IFACE).stdout:
        if time.monotonic() > end:
            raise RuntimeError(f"{IFACE} in {netns} has no carrier after {deadline} s")


class Child:
    """A Python program inside a namespace: JSON-line events out, JSON-line commands in."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, stderr: IO[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.events: list[Event] = []
        self._stderr = stderr
        self._changed = asyncio.Event()
        self._eof = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, netns: str, code: str, *args: str, name: str = "") -> Child:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, sys.executable, "-c", code, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            cwd=REPO, env=env,
        )  # fmt: skip
        return cls(name or netns, proc, stderr)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.events.append({"event": "garbage", "line": line.decode(errors="replace")})
                self._changed.set()
        finally:
            self._eof = True
            self._changed.set()

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def matching(self, predicate: Callable[[Event], bool], since: int = 0) -> list[Event]:
        return [event for event in self.events[since:] if predicate(event)]

    async def wait_for(
        self,
        predicate: Callable[[Event], bool],
        what: str,
        *,
        since: int = 0,
        timeout: float = DEADLINE,
    ) -> Event:
        """The first event from index ``since`` matching ``predicate``; AssertionError at the
        deadline (or when the child exits first), with the child's events and stderr."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            self._changed.clear()
            found = self.matching(predicate, since)
            if found:
                return found[0]
            if self._eof:
                raise AssertionError(f"{self.name} exited before {what}: {self._diagnosis()}")
            remaining = end - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no {what} within {timeout} s: {self._diagnosis()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _diagnosis(self) -> str:
        return f"events={self.events!r} stderr={self.stderr_text()[-3000:]!r}"

    async def send(self, command: Event) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self, grace: float = 5.0) -> None:
        """Close stdin (the child's cue to exit), then terminate or kill it if it lingers."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._stderr.close()
