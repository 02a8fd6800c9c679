"""Test kit for the relay: a real relay on port 0 and small, real websocket clients.

``DocClient`` speaks plain y-websocket on ``/doc/<id>`` with a pycrdt document; ``ControlClient``
speaks the control channel on ``/v1``. Waiting is always on an event, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from pycrdt import Doc, Map, TransactionEvent, get_update, merge_updates
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from focusmate.clock import Clock
from focusmate.identity import Identity
from focusmate.invite import relay_token, room_id_for
from relay.config import Limits, RelayConfig
from relay.server import Relay
from sync import control, handshake
from sync.ysync import (
    AwarenessEntry,
    AwarenessMessage,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_message,
)

DEADLINE = 10.0
REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def running_relay(
    data_dir: Path,
    *,
    clock: Clock | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    limits: Limits | None = None,
    port: int = 0,
    **options: Any,
) -> AsyncIterator[Relay]:
    config = RelayConfig(
        host="127.0.0.1", port=port, data_dir=data_dir, limits=limits or Limits(), **options
    )
    relay = Relay(config, clock=clock, monotonic=monotonic)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


def base_url(relay: Relay) -> str:
    return f"ws://127.0.0.1:{relay.port}"


def doc_url(relay: Relay, secret: bytes, *, token: str | None = None) -> str:
    token = relay_token(secret) if token is None else token
    return f"{base_url(relay)}/doc/{room_id_for(secret)}?token={token}"


def limits(**changes: Any) -> Limits:
    return dataclasses.replace(Limits(), **changes)


async def wait_until(predicate: Callable[[], bool], changed: asyncio.Event, what: str) -> None:
    """Re-check ``predicate`` each time ``changed`` fires, up to the deadline."""
    try:
        async with asyncio.timeout(DEADLINE):
            while not predicate():
                changed.clear()
                if predicate():
                    return
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def poll(predicate: Callable[[], bool], what: str, *, interval: float = 0.005) -> None:
    """Poll ``predicate`` until it holds or the deadline passes (for state with no event)."""
    try:
        async with asyncio.timeout(DEADLINE):
            while not predicate():
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def relay_value(relay: Relay, doc_id: str, key: str, *, name: str = "m") -> Any:
    """What the relay has committed for ``key`` (None while the document is not in memory)."""
    state = relay.hub.docs.get(doc_id)
    if state is None:
        return None
    doc: Doc[Any] = Doc()
    doc.apply_update(state.merged())
    return doc.get(name, type=Map).get(key)


async def relay_committed(
    relay: Relay, doc_id: str, key: str, value: Any, *, name: str = "m"
) -> None:
    """A barrier: the relay has committed ``key = value`` (so it survives and is served)."""
    await poll(lambda: relay_value(relay, doc_id, key, name=name) == value, f"{key}={value!r}")


async def healthz(relay: Relay) -> dict[str, Any]:
    """``GET /healthz`` with a plain HTTP client (in a thread: urllib blocks)."""

    def get() -> dict[str, Any]:
        url = f"http://127.0.0.1:{relay.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            body: dict[str, Any] = json.loads(response.read())
            return body

    return await asyncio.to_thread(get)


async def open_room(relay: Relay, secret: bytes, count: int) -> list[DocClient]:
    """``count`` clients in one room, each synced (so the relay's handler has them)."""
    clients = [await DocClient.open(doc_url(relay, secret)) for _ in range(count)]
    async with asyncio.timeout(DEADLINE):
        for client in clients:
            await client.synced.wait()
    return clients


class DocClient:
    """A y-websocket client with a pycrdt document (what a Yjs app does, in Python)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Any] = Doc()
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.received: list[Any] = []
        self.awareness: dict[int, dict[str, Any] | None] = {}
        self._updates: list[bytes] = []  # (recorded during set() only: a long run stays small)
        self._recording = False
        self._received: list[bytes] = []
        self._waiting: list[bytes] = []
        self._observer = self.doc.observe(self._on_txn)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> DocClient:
        client = cls(await connect(url, compression=None, max_size=None))
        with contextlib.suppress(ConnectionClosed):  # a refused client is closed at once
            await client.ws.send(encode_message(SyncStep1(client.doc.get_state())))
        return client

    def _on_txn(self, event: TransactionEvent) -> None:
        if self._recording:
            self._updates.append(event.update)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                message = decode_message(frame)
                self.received.append(message)
                if isinstance(message, SyncStep1):
                    diff = self.doc.get_update(message.state_vector)
                    await self.ws.send(encode_message(SyncStep2(diff)))
                elif isinstance(message, SyncStep2 | SyncUpdate):
                    self._apply(message.update)
                    if isinstance(message, SyncStep2):
                        self.synced.set()
                elif isinstance(message, AwarenessMessage):
                    for entry in message.entries:
                        self.awareness[entry.client_id] = entry.state
                self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.changed.set()

    def _apply(self, update: bytes) -> None:
        """Apply a received update. Live updates can overtake the sync step 2 they depend on,
        and pycrdt 0.14 drops map entries when one client's updates are applied out of order
        (see focusmate.document), so a gap is healed by rebuilding from the merged updates,
        which is correct in any order."""
        self._received.append(update)
        self.doc.apply_update(update)
        state = self.doc.get_state()
        self._waiting = [u for u in (*self._waiting, update) if get_update(u, state)[:1] != b"\x00"]
        if self._waiting:
            merged = merge_updates(*self._received)
            # (unobserved first: pycrdt never frees an observed document, a copy per rebuild)
            self.doc.unobserve(self._observer)
            self.doc = Doc()
            self._observer = self.doc.observe(self._on_txn)
            self.doc.apply_update(merged)
            self._received = [merged]

    def map(self, name: str = "m") -> Map[Any]:
        shared: Map[Any] = self.doc.get(name, type=Map)
        return shared

    async def set(self, key: str, value: Any, *, name: str = "m") -> bytes:
        self._updates.clear()
        self._recording = True
        try:
            self.map(name)[key] = value
        finally:
            self._recording = False
        (update,) = self._updates
        self._updates.clear()
        self._received.append(update)  # part of the document if it is ever rebuilt
        await self.ws.send(encode_message(SyncUpdate(update)))
        return update

    async def push(self, update: bytes) -> None:
        """Send an update made elsewhere (e.g. a room created by a Workspace)."""
        self.doc.apply_update(update)
        self._received.append(update)
        await self.ws.send(encode_message(SyncUpdate(update)))

    async def send_awareness(
        self, client_id: int, clock: int, state: dict[str, Any] | None
    ) -> None:
        entry = AwarenessEntry(client_id, clock, state)
        await self.ws.send(encode_message(AwarenessMessage((entry,))))

    def value(self, key: str, *, name: str = "m") -> Any:
        return self.map(name).get(key)

    async def wait_value(self, key: str, value: Any, *, name: str = "m") -> None:
        await wait_until(
            lambda: self.value(key, name=name) == value, self.changed, f"{key}={value!r}"
        )

    async def wait_closed(self) -> tuple[int | None, str | None]:
        async with asyncio.timeout(DEADLINE):
            await self._reader
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


class ControlClient:
    """A control-channel client: handshake as ``identity``, then request and wait for replies."""

    def __init__(self, ws: ClientConnection, identity: Identity) -> None:
        self.ws = ws
        self.identity = identity
        self.inbox: list[control.ControlMessage] = []
        self.frames: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, relay: Relay, identity: Identity, *, address: str | None = None
    ) -> ControlClient:
        url = base_url(relay)
        ws = await connect(url + "/v1", compression=None, max_size=None)
        client = cls(ws, identity)
        challenge = control.decode(await ws.recv())
        assert isinstance(challenge, control.Challenge)
        hello = handshake.answer(identity, challenge, address=address or url)
        await ws.send(control.encode(hello))
        client._reader = asyncio.get_running_loop().create_task(client._read())
        return client

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.frames.append(control.decode_doc_frame(frame))
                else:
                    self.inbox.append(control.decode(frame))
                self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.changed.set()

    async def send(self, message: control.ControlMessage) -> None:
        await self.ws.send(control.encode(message))

    async def expect(self, kind: type[Any], where: Callable[[Any], bool] = lambda m: True) -> Any:
        """The first received message of ``kind`` matching ``where`` (removed from the inbox)."""

        def find() -> Any:
            for message in self.inbox:
                if isinstance(message, kind) and where(message):
                    return message
            return None

        await wait_until(
            lambda: find() is not None or self.ws.close_code is not None,
            self.changed,
            f"{kind.__name__} (inbox: {self.inbox})",
        )
        found = find()
        if found is None:
            raise AssertionError(
                f"closed ({self.ws.close_code} {self.ws.close_reason}) before {kind.__name__}"
            )
        self.inbox.remove(found)
        return found

    async def wait_closed(self) -> tuple[int | None, str | None]:
        async with asyncio.timeout(DEADLINE):
            assert self._reader is not None
            await self._reader
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


def relay_env() -> dict[str, str]:
    """This environment without FOCUSMATE_RELAY_* settings that could change the relay."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FOCUSMATE_RELAY_")}


class RelayProcess:
    """``python -m relay --data-dir D serve --port 0 [ARGS]``, its stderr read as JSON log lines.

    ``args`` go after ``serve`` (e.g. ``--limit NAME=VALUE``); ``env`` is added to the clean
    environment of :func:`relay_env` (e.g. ``FOCUSMATE_RELAY_LIMIT_<NAME>``); ``command``
    replaces ``python -m relay`` (e.g. a benchmark's wrapper that tunes the interpreter first).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.wanted_port = port
        self.extra_args = list(args)
        self.extra_env = dict(env or {})
        self.command = list(command) if command is not None else [sys.executable, "-m", "relay"]
        self.lines: list[str] = []
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._eof = False

    async def __aenter__(self) -> Self:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            "--data-dir",
            str(self.data_dir),
            "serve",
            "--port",
            str(self.wanted_port),
            *self.extra_args,
            cwd=REPO,
            env={**relay_env(), **self.extra_env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            listening = await self.wait_event("relay.listening")
        except BaseException:
            await self.kill()
            raise
        self.port = int(listening["port"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._eof = True
        self._changed.set()

    def events(self) -> list[dict[str, Any]]:
        """Every log line as JSON (a line that does not parse fails the test)."""
        parsed = []
        for line in self.lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON log line: {line!r}") from None
        return parsed

    async def wait_event(self, name: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((e for e in self.events() if e.get("event") == name), None)

        try:
            async with asyncio.timeout(DEADLINE):
                while (found := find()) is None:
                    if self._eof:
                        raise AssertionError(f"relay exited before {name}:\n{self.stderr}")
                    self._changed.clear()
                    if find() is None and not self._eof:
                        await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {name} log line in time:\n{self.stderr}") from None
        return found

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def doc_url(self, secret: bytes) -> str:
        return f"{self.url}/doc/{room_id_for(secret)}?token={relay_token(secret)}"

    async def terminate(self) -> int:
        """SIGTERM, then the exit code (within the deadline)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), DEADLINE)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, DEADLINE)
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, DEADLINE)


def self_signed(
    directory: Path, host: str, *, cert_name: str = "cert.pem", key_name: str = "key.pem"
) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (an IP address or a DNS name) and its key, as
    PEM files in ``directory``; a client trusts it with ``ssl.create_default_context(cafile=)``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / cert_name, directory / key_name
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
