"""The doctor's relay check: resolve the host, connect, ``GET /healthz``, then a ``/v1``
identity handshake and one clock ping, each within the timeout, so that a failure names the
step that failed and what to do about it.

The handshake uses a throwaway identity, never the profile's: a relay hands a user's waiting
direct messages to whoever proves that identity. So it needs no passphrase, and a sealed key
does not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from focusmate import __version__
from focusmate.doctor_report import Check, Status
from focusmate.errors import FocusMateError
from focusmate.identity import Identity
from sync import control, handshake
from sync.clock import ClockSample
from sync.wire import ProtocolError

TIMEOUT_SECONDS = 5.0
CLOCK_WARN_SECONDS = 60.0
"""Shared timers run on the relay's clock, so skew breaks nothing; beyond this it is worth
fixing anyway."""
MAX_HEALTH_BYTES = 64 * 1024

CHECK_ADDRESS = (
    "Check the relay's address for typos (`focusmate settings show`; change it with "
    "`focusmate settings set relay_urls URL`) and that this machine is online."
)
NOTHING_THERE = (
    "Check the host and port, and ask whoever runs the relay whether it is up. A firewall, "
    "proxy or captive portal between you may also block it."
)
ASK_OPERATOR = "Tell whoever runs the relay; your data is safe here meanwhile."


class _Failed(Exception):
    """One step of a relay check failed: what was found, and what to do."""

    def __init__(self, detail: str, next_step: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.next_step = next_step


async def check_relay(url: str, *, timeout: float = TIMEOUT_SECONDS) -> Check:
    """Resolve, connect, ``/healthz``, then the ``/v1`` handshake and one clock ping."""
    name = f"relay {url}"
    url = url.rstrip("/")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    data: dict[str, Any] = {"url": url}
    try:
        proxy = get_proxy(parse_uri(url))
        if proxy is None:
            await _resolve_and_connect(host, port, timeout=timeout)
        else:
            data["proxy"] = proxy
        health = await asyncio.to_thread(_get_health, url, timeout)
        data.update(health)
        started = time.monotonic()
        sample = await _handshake(url, timeout=timeout)
        data["handshake_ms"] = round((time.monotonic() - started) * 1000, 1)
    except _Failed as failed:
        return Check(name, Status.FAIL, failed.detail, failed.next_step, data)
    data["clock_offset_s"] = round(sample.offset, 3)
    data["round_trip_ms"] = round(sample.delay * 1000, 1)
    detail = (
        f"healthy (relay {health.get('version', '?')}), handshake in {data['handshake_ms']:g} ms, "
        f"its clock is {sample.offset:+.2f} s from yours"
    )
    if proxy is not None:
        detail += f", through the proxy {proxy}"
    if abs(sample.offset) >= CLOCK_WARN_SECONDS:
        return Check(
            name,
            Status.WARN,
            detail,
            f"This machine's clock is {abs(sample.offset):.0f} s off. Shared timers still agree "
            "(they run on the relay's clock), but turn on automatic date and time in your "
            "system settings.",
            data,
        )
    return Check(name, Status.OK, detail, data=data)


async def _resolve_and_connect(host: str, port: int, *, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError:
        raise _Failed(f"looking up {host} took longer than {timeout:g} s", CHECK_ADDRESS) from None
    except OSError as err:
        raise _Failed(f"{host} cannot be found ({_os_reason(err)})", CHECK_ADDRESS) from None
    last = ""
    for family, _, proto, _, address in infos:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(str(address[0]), port, family=family, proto=proto),
                timeout,
            )
        except TimeoutError:
            last = f"{address[0]} port {port} did not answer within {timeout:g} s"
            continue
        except OSError as err:
            last = f"nothing accepts connections at {address[0]} port {port} ({_os_reason(err)})"
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise _Failed(last or f"{host} has no address", NOTHING_THERE)


def _get_health(url: str, timeout: float) -> dict[str, Any]:
    """``GET /healthz`` (next to ``/v1`` under the relay URL's path) as the relay's JSON."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    target = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/healthz", "", ""))
    request = urllib.request.Request(target, headers={"User-Agent": f"focusmate/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = int(response.status), response.read(MAX_HEALTH_BYTES)
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read(MAX_HEALTH_BYTES)
    except (urllib.error.URLError, OSError) as err:
        raise _unreachable(err, timeout, what=f"{target} did not answer") from None
    try:
        health = json.loads(body)
        if not isinstance(health, dict):
            raise ValueError("not an object")
    except ValueError:
        raise _Failed(
            f"{target} answered HTTP {status}, but not as a FocusMate relay does",
            "Check the address: something else answers there, or the URL's path is wrong.",
        ) from None
    if status != 200 or health.get("status") != "ok":
        raise _Failed(
            f"the relay is up but unhealthy (HTTP {status}, storage: {health.get('storage')})",
            ASK_OPERATOR,
        )
    return {"version": health.get("version"), "status": health.get("status")}


def _unreachable(err: BaseException, timeout: float, *, what: str) -> _Failed:
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _Failed(
            f"the relay's TLS certificate is not trusted here ({reason.verify_message})",
            "If the relay uses its own certificate authority, make this machine trust it "
            "(SSL_CERT_FILE); otherwise ask whoever runs the relay to fix its certificate.",
        )
    if isinstance(reason, ssl.SSLError):
        return _Failed(
            f"the TLS connection failed ({reason.reason or reason})",
            "Check that the URL starts with wss:// only if the relay serves TLS (ws:// if not).",
        )
    if isinstance(reason, TimeoutError | socket.timeout):
        return _Failed(f"{what} within {timeout:g} s", NOTHING_THERE)
    text = _os_reason(reason) if isinstance(reason, OSError) else str(reason)
    return _Failed(f"{what}: {text}", NOTHING_THERE)


async def _handshake(url: str, *, timeout: float) -> ClockSample:
    """The ``/v1`` handshake under a throwaway identity, then one ping for the clock."""
    identity = Identity.generate()
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                url + "/v1", compression=None, max_size=2**20, open_timeout=timeout
            ) as ws:
                challenge = control.decode(await ws.recv())
                if not isinstance(challenge, control.Challenge):
                    raise ProtocolError(f"it sent {challenge.TYPE!r} instead of a challenge")
                await ws.send(control.encode(handshake.answer(identity, challenge, address=url)))
                welcome = control.decode(await ws.recv())
                if not isinstance(welcome, control.Welcome):
                    raise ProtocolError(f"it sent {welcome.TYPE!r} instead of welcome")
                t0 = time.time()
                await ws.send(control.encode(control.Ping(id="doctor", t0=t0)))
                while True:
                    message = control.decode(await ws.recv())
                    if isinstance(message, control.Pong) and message.id == "doctor":
                        return ClockSample.from_times(t0, message.t1, message.t2, time.time())
    except TimeoutError:
        raise _Failed(
            f"the /v1 handshake did not finish within {timeout:g} s",
            "The relay is slow or overloaded; try again, and tell whoever runs it if it lasts.",
        ) from None
    except InvalidStatus as err:
        code = err.response.status_code
        why = {
            429: "it refuses this address for now (too many connections or failed logins)",
            503: "it is full or shutting down",
            404: "there is no /v1 there",
        }.get(code, "it refused the connection")
        raise _Failed(f"/v1 answered HTTP {code}: {why}", ASK_OPERATOR) from None
    except ConnectionClosed as err:
        received = err.rcvd
        reason = f"{received.code} {received.reason}".strip() if received else "no reason"
        if received is not None and received.code == control.CloseCode.UNAUTHORIZED:
            raise _Failed(
                f"the relay refused the identity handshake ({reason})",
                "The relay knows itself by another address: use exactly the URL its operator "
                "gave you (the relay's --public-url), with the same host name and port.",
            ) from None
        raise _Failed(f"the relay closed the connection ({reason})", ASK_OPERATOR) from None
    except (ProtocolError, FocusMateError) as err:
        raise _Failed(
            f"it does not speak FocusMate's protocol: {err}",
            "Check the address; if it is right, the relay may run a version this FocusMate "
            "cannot talk to: update one or the other.",
        ) from None
    except (InvalidHandshake, InvalidURI, OSError) as err:
        raise _unreachable(err, timeout, what="/v1 failed") from None


def _os_reason(err: OSError) -> str:
    """The OS's words ("Connection refused"), not asyncio's "Connect call failed (...)"."""
    if err.errno and err.errno > 0 and not isinstance(err, socket.gaierror):
        return os.strerror(err.errno)
    return err.strerror or str(err) or type(err).__name__
