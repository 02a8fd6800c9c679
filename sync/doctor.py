"""``focusmate doctor``: the local checks (:mod:`focusmate.doctor`) plus the network ones.

For each relay (``--relay``, default the ``relay_urls`` setting): resolve its host, connect,
``GET /healthz``, and do a ``/v1`` identity handshake and one clock ping, each within
``--timeout``. For the LAN (unless ``--no-lan``): run zeroconf discovery (:mod:`sync.discovery`)
for ``--lan-wait`` seconds and count the FocusMate peers that answer.

The network checks use a throwaway identity, never the profile's: a relay hands a user's
waiting direct messages to whoever proves that identity, and a second LAN advert under the
user's own id would make peers think the running app went away when the doctor's advert does.
So the doctor needs no passphrase for them, and a sealed key does not stop them. While the LAN
check runs, peers may see an unnamed peer appear and leave again.

The command runs before the CLI opens the profile (it is one of the extension's
``unopened_commands``): opening would create a missing profile, and stops at a damaged or sealed
one, which are exactly the profiles a doctor must look at.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import urlsplit, urlunsplit

import zeroconf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from focusmate import __version__
from focusmate.cli.commands import Context
from focusmate.doctor import (
    PASSPHRASE_ENV,
    Check,
    Status,
    check_profile,
    exit_code,
    render_text,
    report_dict,
)
from focusmate.errors import FocusMateError
from focusmate.identity import Identity
from focusmate.settings import parse_setting
from sync import control, handshake
from sync.clock import ClockSample
from sync.discovery import Discovery, PeerAdvert, local_ipv4_addresses
from sync.engine_lock import LOCK_NAME
from sync.wire import ProtocolError

TIMEOUT_SECONDS = 5.0
LAN_WAIT_SECONDS = 3.0
CLOCK_WARN_SECONDS = 60.0
"""Shared timers run on the relay's clock, so skew breaks nothing; beyond this it is worth
fixing anyway."""
MAX_HEALTH_BYTES = 64 * 1024

UnopenedCommand = Callable[[argparse.Namespace, Path, TextIO], int]


class DoctorExtension:
    """The ``doctor`` subcommand, for ``focusmate.cli.main(extensions=...)``."""

    def __init__(self) -> None:
        self.commands: dict[str, Callable[[Context], int]] = {}
        self.unopened_commands: dict[str, UnopenedCommand] = {"doctor": self.run}

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = sub.add_parser(
            "doctor",
            help="check your profile, relays and LAN, and say what to do about any problem",
        )
        p.add_argument(
            "--relay",
            action="append",
            metavar="URL",
            help="check this relay (repeatable; default: the relay_urls setting)",
        )
        p.add_argument("--no-lan", action="store_true", help="skip the LAN discovery check")
        p.add_argument(
            "--timeout",
            type=_seconds,
            default=TIMEOUT_SECONDS,
            metavar="SECONDS",
            help=f"for each step of a relay check (default {TIMEOUT_SECONDS:g})",
        )
        p.add_argument(
            "--lan-wait",
            type=_seconds,
            default=LAN_WAIT_SECONDS,
            metavar="SECONDS",
            help=f"how long to listen for LAN peers (default {LAN_WAIT_SECONDS:g})",
        )
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")

    def run(self, args: argparse.Namespace, profile_dir: Path, out: TextIO) -> int:
        checks = diagnose(
            profile_dir,
            relays=args.relay,
            lan=not args.no_lan,
            timeout=args.timeout,
            lan_wait=args.lan_wait,
            passphrase=os.environ.get(PASSPHRASE_ENV),
        )
        if args.json:
            json.dump(report_dict(profile_dir, checks), out, ensure_ascii=False, indent=2)
            out.write("\n")
        else:
            print(render_text(profile_dir, checks), file=out)
        return exit_code(checks)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 600, got {text!r}")
    return value


def diagnose(
    profile_dir: Path,
    *,
    relays: Sequence[str] | None = None,
    lan: bool = True,
    timeout: float = TIMEOUT_SECONDS,
    lan_wait: float = LAN_WAIT_SECONDS,
    passphrase: str | None = None,
    lan_interfaces: Sequence[str] | None = None,
) -> list[Check]:
    """Every check, local then network; ``relays`` None means the profile's setting."""
    report = check_profile(profile_dir, passphrase=passphrase)
    checks = list(report.checks)
    if profile_dir.is_dir():
        checks.append(check_running(profile_dir))
    urls: tuple[str, ...] = ()
    if relays:
        try:
            _, parsed = parse_setting("relay_urls", ",".join(relays))
            urls = cast(tuple[str, ...], parsed)
        except FocusMateError as err:
            checks.append(
                Check(
                    "relays", Status.FAIL, str(err), "Give --relay as ws://HOST:PORT or wss://HOST."
                )
            )
    elif report.settings is not None:
        urls = report.settings.relay_urls
        if not urls and report.settings.lan_enabled:
            checks.append(
                Check("relays", Status.OK, "none configured: rooms sync with peers on your LAN")
            )
        elif not urls:
            checks.append(
                Check(
                    "relays",
                    Status.WARN,
                    "none configured, and LAN discovery is off: your rooms sync with no one",
                    "Add a relay (`focusmate settings set relay_urls wss://HOST`) or turn LAN "
                    "discovery on (`focusmate settings set lan_enabled on`).",
                )
            )
    lan_check = lan
    if lan and report.settings is not None and not report.settings.lan_enabled:
        lan_check = False
        checks.append(
            Check(
                "lan",
                Status.OK,
                "LAN discovery is off in your settings, so it was not checked "
                "(`focusmate settings set lan_enabled on` turns it on)",
            )
        )
    checks.extend(
        asyncio.run(
            _network_checks(
                urls,
                lan=lan_check,
                timeout=timeout,
                lan_wait=lan_wait,
                user_id=report.user_id,
                interfaces=lan_interfaces,
            )
        )
    )
    return checks


async def _network_checks(
    urls: Sequence[str],
    *,
    lan: bool,
    timeout: float,
    lan_wait: float,
    user_id: str | None,
    interfaces: Sequence[str] | None,
) -> list[Check]:
    relay_checks = [check_relay(url, timeout=timeout) for url in urls]
    if not lan:
        return list(await asyncio.gather(*relay_checks))
    *relays, lan_checks = await asyncio.gather(
        *relay_checks,
        check_lan(wait=lan_wait, own_user_id=user_id, interfaces=interfaces, timeout=timeout),
    )
    return [*cast(list[Check], relays), *cast(list[Check], lan_checks)]


# -- is FocusMate running? -----------------------------------------------------------------------


def check_running(profile_dir: Path) -> Check:
    """Whether an app or daemon holds the profile's engine lock (probed, never taken for longer
    than the probe)."""
    path = profile_dir / LOCK_NAME
    held = False
    holder = ""
    if path.exists():
        with contextlib.suppress(OSError), path.open("r") as handle:
            held = not _try_shared_lock(handle)
            holder = handle.read().strip()
    if held:
        who = f"process {holder}" if holder.isdigit() else "another process"
        return Check(
            "running",
            Status.OK,
            f"FocusMate ({who}) is syncing this profile; close it before copying the folder",
            data={"running": True, "pid": int(holder) if holder.isdigit() else None},
        )
    return Check(
        "running",
        Status.OK,
        "no FocusMate app or daemon is syncing this profile",
        data={"running": False, "pid": None},
    )


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_shared_lock(handle: Any) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBRLCK, 1)
        except OSError:
            return False
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return True

else:
    import fcntl

    def _try_shared_lock(handle: Any) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


# -- relays --------------------------------------------------------------------------------------


class _Failed(Exception):
    """One step of a relay check failed: what was found, and what to do."""

    def __init__(self, detail: str, next_step: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.next_step = next_step


CHECK_ADDRESS = (
    "Check the relay's address for typos (`focusmate settings show`; change it with "
    "`focusmate settings set relay_urls URL`) and that this machine is online."
)
NOTHING_THERE = (
    "Check the host and port, and ask whoever runs the relay whether it is up. A firewall, "
    "proxy or captive portal between you may also block it."
)
ASK_OPERATOR = "Tell whoever runs the relay; your data is safe here meanwhile."


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


# -- the LAN -------------------------------------------------------------------------------------


LAN_HELP = (
    "If a teammate runs FocusMate on this network and is not found: both machines must be on "
    "the same network (guest Wi-Fi, VPNs and some office networks block the multicast "
    "discovery uses), LAN discovery must be on for both (`focusmate settings set lan_enabled "
    "on`), and firewalls must let mDNS through (UDP port 5353). A relay works across networks."
)


async def check_lan(
    *,
    wait: float = LAN_WAIT_SECONDS,
    own_user_id: str | None = None,
    interfaces: Sequence[str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> list[Check]:
    """Advertise briefly under a throwaway identity and count who answers within ``wait``."""
    if interfaces is None and not local_ipv4_addresses():
        return [
            Check(
                "lan",
                Status.WARN,
                "this machine has no network address besides loopback",
                "Connect to a network to meet peers on it.",
            )
        ]
    identity = Identity.generate()
    # A port of our own that refuses connections: peers that dial our advert fail at once.
    with socket.socket() as placeholder:
        placeholder.bind(("", 0))
        discovery = Discovery(
            identity.user_id,
            placeholder.getsockname()[1],
            on_found=lambda advert: None,
            on_lost=lambda instance: None,
            interfaces=interfaces,
        )
        try:
            await asyncio.wait_for(discovery.start(), timeout)
        except (OSError, zeroconf.Error, TimeoutError) as err:
            with contextlib.suppress(Exception):
                await discovery.stop()
            return [
                Check(
                    "lan advert",
                    Status.FAIL,
                    "could not start LAN discovery or register our advert: "
                    f"{err or type(err).__name__}",
                    "Check that this machine is on a network and that no firewall blocks "
                    "mDNS (UDP port 5353). To sync without the LAN, use a relay and turn LAN "
                    "discovery off: `focusmate settings set lan_enabled off`.",
                )
            ]
        try:
            await asyncio.sleep(wait)  # adverts come when they come: listen for a fixed window
            peers = discovery.peers
        finally:
            await discovery.stop()
    return [
        Check(
            "lan advert",
            Status.OK,
            "LAN discovery started and our advert was registered",
            data={"service": discovery.instance},
        ),
        _peers_check(peers, own_user_id=own_user_id, wait=wait),
    ]


def _peers_check(peers: Mapping[str, PeerAdvert], *, own_user_id: str | None, wait: float) -> Check:
    users = [advert.user_id for advert in peers.values()]
    own = sum(user == own_user_id for user in users)
    data = {"peers": len(users), "own": own, "user_ids": sorted(set(users))}
    if not users:
        return Check(
            "lan peers",
            Status.WARN,
            f"no FocusMate peers answered within {wait:g} s (fine if no one else here runs it)",
            LAN_HELP,
            data,
        )
    noun = "peer" if len(users) == 1 else "peers"
    detail = f"{len(users)} FocusMate {noun} answered within {wait:g} s"
    if own:
        detail += f" ({own} of them you: this profile's app, or another device of yours)"
    return Check("lan peers", Status.OK, detail, data=data)
