"""Tests of what we ship: the one-file relay binary and the installed wheel.

Shared here: running a relay *command* (a frozen binary or an installed console script) as a
user would, outside the repository, and waiting on its ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focusmate.invite import relay_token, room_id_for
from tests.integration.synckit import free_port

REPO = Path(__file__).resolve().parents[2]
# A one-file binary unpacks itself before Python starts; a slow CI machine gets time for that.
START_DEADLINE = 60.0
STOP_DEADLINE = 30.0


def outside_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would let a command see the source tree or a
    developer's settings (PYTHONPATH, an active venv, FOCUSMATE_* variables)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("FOCUSMATE_")
    }
    env.update(extra)
    return env


def health(port: int) -> dict[str, Any] | None:
    """``GET /healthz`` as JSON, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        with err:
            return dict(json.loads(err.read()))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@dataclass
class RelayCommand:
    """A relay started from a command line, its stderr (JSON log lines) in a file."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def doc_url(self, secret: bytes) -> str:
        return f"{self.url}/doc/{room_id_for(secret)}?token={relay_token(secret)}"

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    async def terminate(self) -> int:
        """SIGTERM, then the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), STOP_DEADLINE)


@contextlib.asynccontextmanager
async def serving(
    command: Sequence[str], data_dir: Path, *, cwd: Path
) -> AsyncIterator[RelayCommand]:
    """``COMMAND --data-dir D serve`` on a free loopback port, yielded once ``/healthz`` is ok;
    killed on the way out if the test did not stop it."""
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}-{port}.log"
    with open(log, "wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *command,
            "--data-dir",
            str(data_dir),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=cwd,
            env=outside_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    relay = RelayCommand(proc, port, log)
    try:
        await _until_healthy(relay)
        yield relay
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _until_healthy(relay: RelayCommand) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_DEADLINE
    while True:
        status = await asyncio.to_thread(health, relay.port)
        if status is not None and status.get("status") == "ok":
            return
        if relay.proc.returncode is not None:
            raise AssertionError(
                f"the relay exited ({relay.proc.returncode}) before it was healthy:\n"
                + relay.stderr
            )
        if loop.time() > deadline:
            raise AssertionError(f"/healthz not ok within {START_DEADLINE:.0f} s:\n{relay.stderr}")
        await asyncio.sleep(0.05)
