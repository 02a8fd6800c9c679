"""LAN discovery: every running peer advertises ``_focusmate._tcp.local.`` over mDNS (zeroconf).

An advert says "user X can be dialled at these addresses on this port". Rules:

- Adverts are **hints, never trusted**: anyone on the LAN can publish one under any user id.
  Identity is proven later, by the handshake over the connection a hint leads to.
- Everything parsed from the network is validated before it reaches a callback: the ``id`` TXT
  key must be a valid user id (:func:`focusmate.identity.parse_user_id`), ``v`` a decimal
  protocol version we speak, the SRV port in 1..65535, and addresses valid unicast IPs. An advert
  that fails is dropped with a debug log, as are adverts of our own user id (including our own
  advert, which mDNS loops back to us) and of protocol versions we do not speak.
- The TXT record holds ``id=<user id>`` and ``v=<protocol version>``; the port is the SRV port.
- An instance name is ``<first group of the user id>-<12 random hex digits>``, so two devices of
  the same user never collide. Callers treat :attr:`PeerAdvert.instance` as an opaque key.
- ``on_found`` fires when an instance appears and again whenever its advert changes;
  ``on_lost`` fires once when a found instance goes away (goodbye packet or expiry, or an update
  that makes it invalid). Callbacks run on the event loop; an exception in one is logged.
- Only the async zeroconf API is used, so nothing here blocks the event loop. Records are read
  from zeroconf's cache picking the freshest of each kind, never a superseded one.
- A peer that vanishes without a goodbye (crash, cable pulled) is only reported lost when its PTR
  record expires: we advertise a 120 s TTL, but zeroconf keeps a received PTR for at least
  1125 s. Liveness is the connection layer's job; discovery only brings hints.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import ifaddr

# The ignore: zeroconf keeps its DNS record classes importable from the package root "for
# backwards compatibility" but leaves them out of __all__, which mypy --strict reports.
from zeroconf import (  # type: ignore[attr-defined]
    BadTypeInNameException,
    DNSAddress,
    DNSRecord,
    DNSService,
    DNSText,
    InterfaceChoice,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from focusmate.errors import ValidationError
from focusmate.identity import parse_user_id

SERVICE_TYPE = "_focusmate._tcp.local."
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({PROTOCOL_VERSION})
ADVERT_TTL = 120  # seconds, for every record we publish (RFC 6762's host-record TTL)
_RESOLVE_TIMEOUT_MS = 3000
_VERSION = re.compile(r"[0-9]{1,5}")
_MAX_USER_ID_CHARS = 64
_TYPE_A, _TYPE_TXT, _TYPE_AAAA, _TYPE_SRV, _CLASS_IN = 1, 16, 28, 33, 1  # RFC 1035, 2782, 3596

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PeerAdvert:
    """A validated (but unauthenticated) advert of another peer."""

    user_id: str
    addresses: tuple[str, ...]
    port: int
    version: int
    instance: str


def parse_advert(instance: str, port: int, txt: bytes, addresses: Sequence[str]) -> PeerAdvert:
    """Validate a resolved service (SRV port, raw TXT rdata, A/AAAA addresses) as an advert.

    Raises ValidationError saying what is wrong; nothing else escapes for any input.
    """
    props = parse_txt(txt)
    user_id = parse_user_id(_txt_value(props, "id", max_chars=_MAX_USER_ID_CHARS))
    raw_version = _txt_value(props, "v", max_chars=5)
    if not _VERSION.fullmatch(raw_version):
        raise ValidationError(f"version {raw_version!r} is not a number")
    version = int(raw_version)
    if version not in SUPPORTED_VERSIONS:
        raise ValidationError(f"unsupported protocol version {version}")
    if not 1 <= port <= 65535:
        raise ValidationError(f"port {port} is out of range")
    valid: list[str] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ValidationError(f"address {text!r} is not an IP address") from None
        if address.is_multicast or address.is_unspecified:
            raise ValidationError(f"address {text!r} is not a unicast address")
        if text not in valid:
            valid.append(text)
    if not valid:
        raise ValidationError("the advert has no address")
    return PeerAdvert(
        user_id=user_id, addresses=tuple(valid), port=port, version=version, instance=instance
    )


def parse_txt(rdata: bytes) -> dict[str, bytes | None]:
    """TXT rdata as RFC 6763 key/value pairs: keys case-insensitive, the first of a key wins."""
    props: dict[str, bytes | None] = {}
    i = 0
    while i < len(rdata):
        length = rdata[i]
        entry = rdata[i + 1 : i + 1 + length]
        i += 1 + length
        if len(entry) != length:
            raise ValidationError("the TXT record is truncated")
        key, sep, value = entry.partition(b"=")
        try:
            name = key.decode("ascii").lower()
        except UnicodeDecodeError:
            raise ValidationError("a TXT key is not ASCII") from None
        if name and name not in props:
            props[name] = value if sep else None
    return props


def _txt_value(props: dict[str, bytes | None], key: str, *, max_chars: int) -> str:
    value = props.get(key)
    if value is None:
        raise ValidationError(f"TXT key {key!r} is missing")
    if len(value) > max_chars:
        raise ValidationError(f"TXT key {key!r} is too long")
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationError(f"TXT key {key!r} is not ASCII") from None


def _freshest(records: Iterable[DNSRecord], now: float) -> DNSRecord | None:
    """The live record that expires last: the newest data for a name and type.

    ``DNSCache.get_by_details`` can return a superseded record still within its one-second
    cache-flush grace period (e.g. after a TXT change back to an earlier value).
    """
    live = [record for record in records if not record.is_expired(now)]
    return max(live, key=lambda record: record.get_expiration_time(100), default=None)


def read_advert(zc: Zeroconf, instance: str) -> PeerAdvert:
    """The advert for ``instance`` from zeroconf's cache, or ValidationError."""
    now = current_time_millis()
    srv = _freshest(zc.cache.get_all_by_details(instance, _TYPE_SRV, _CLASS_IN), now)
    txt = _freshest(zc.cache.get_all_by_details(instance, _TYPE_TXT, _CLASS_IN), now)
    if not isinstance(srv, DNSService) or not isinstance(txt, DNSText):
        raise ValidationError("it has no SRV or TXT record")
    addresses: list[str] = []
    for rtype in (_TYPE_A, _TYPE_AAAA):
        for record in zc.cache.get_all_by_details(srv.server, rtype, _CLASS_IN):
            if isinstance(record, DNSAddress) and not record.is_expired(now):
                try:
                    address = str(ipaddress.ip_address(record.address))
                except ValueError:
                    raise ValidationError("an address record is malformed") from None
                if record.scope_id and ipaddress.ip_address(address).is_link_local:
                    address = f"{address}%{record.scope_id}"
                addresses.append(address)
    return parse_advert(instance, srv.port, txt.text, addresses)


def local_ipv4_addresses() -> list[str]:
    """Every non-loopback IPv4 address of this host (what to advertise on all interfaces)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return sorted(set(found))


class Discovery:
    """Advertise this peer and report the others: ``await start()`` ... ``await stop()``.

    ``interfaces`` is None for every interface (IPv4), or a list of local interface IPs to
    advertise and listen on. ``random_bytes`` makes the instance name; inject it in tests.
    No callback runs after ``stop()`` begins.
    """

    def __init__(
        self,
        user_id: str,
        port: int,
        *,
        on_found: Callable[[PeerAdvert], None],
        on_lost: Callable[[str], None],
        interfaces: Sequence[str] | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not 1 <= port <= 65535:
            raise ValidationError(f"port {port} is out of range")
        self.user_id = parse_user_id(user_id)
        self.port = port
        self._interfaces: list[str] | None = None
        if interfaces is not None:  # a typo'd interface is a ValueError here, not at start()
            self._interfaces = [str(ipaddress.ip_address(ip)) for ip in interfaces]
            if not self._interfaces:
                raise ValueError("interfaces must name at least one IP (or be None for all)")
        self._on_found = on_found
        self._on_lost = on_lost
        label = f"{self.user_id.split('-')[0]}-{random_bytes(6).hex()}"
        self.instance = f"{label}.{SERVICE_TYPE}"
        self._server = f"{label}.local."
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._announcing: Awaitable[object] | None = None
        self._known: dict[str, PeerAdvert] = {}
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._started = False
        self._stopped = False

    @property
    def peers(self) -> dict[str, PeerAdvert]:
        """The adverts currently found, by instance name."""
        return dict(self._known)

    async def start(self) -> None:
        """Start browsing, then advertise at once (no probing: see below)."""
        if self._started:
            raise RuntimeError("a Discovery can be started only once")
        self._started = True
        if self._interfaces is None:
            self._zc = AsyncZeroconf(interfaces=InterfaceChoice.All)
            addresses = local_ipv4_addresses()
        else:
            self._zc = AsyncZeroconf(interfaces=list(self._interfaces))
            addresses = list(self._interfaces)
        if not addresses:
            _log.warning("no non-loopback address to advertise: LAN peers cannot reach us")
        try:
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_state_change]
            )
            self._info = AsyncServiceInfo(
                SERVICE_TYPE,
                self.instance,
                port=self.port,
                properties={b"id": self.user_id.encode(), b"v": str(PROTOCOL_VERSION).encode()},
                server=self._server,
                parsed_addresses=addresses,
                host_ttl=ADVERT_TTL,
                other_ttl=ADVERT_TTL,
            )
            # No probing (about 1 s of silence before anyone can find us): our instance name
            # carries 48 random bits, so a conflict it would resolve does not happen. The
            # announcements go on in the background.
            self._announcing = await self._zc.async_register_service(
                self._info, cooperating_responders=True
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Send goodbyes and close; safe to call more than once, or before start."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._resolving.values():
            task.cancel()
        self._resolving.clear()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._announcing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcing  # else its packets could follow our goodbyes
        if self._zc is not None:
            if self._info is not None:
                await (await self._zc.async_unregister_service(self._info))  # the goodbyes
            await self._zc.async_close()
        self._known.clear()

    def _on_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if self._stopped or service_type != SERVICE_TYPE:
            return
        pending = self._resolving.pop(name, None)
        if pending is not None:
            pending.cancel()
        if state_change is ServiceStateChange.Removed:
            if self._known.pop(name, None) is not None:
                self._call(self._on_lost, name)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(name))
        self._resolving[name] = task
        task.add_done_callback(lambda done: self._forget_task(name, done))

    def _forget_task(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]

    async def _resolve(self, name: str) -> None:
        assert self._zc is not None
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            # Asks the network only for what the cache lacks; then read the freshest records.
            if not await info.async_request(self._zc.zeroconf, _RESOLVE_TIMEOUT_MS):
                raise ValidationError("it did not resolve")
            advert = read_advert(self._zc.zeroconf, name)
            if advert.user_id == self.user_id:
                raise ValidationError("it is our own user id")
        except (ValidationError, BadTypeInNameException) as err:
            _log.debug("ignoring advert %s: %s", name, err)
            if self._known.pop(name, None) is not None:
                self._call(self._on_lost, name)
            return
        if self._known.get(name) != advert:
            self._known[name] = advert
            self._call(self._on_found, advert)

    @staticmethod
    def _call(callback: Callable[[_T], None], arg: _T) -> None:
        try:
            callback(arg)
        except Exception:
            _log.exception("discovery callback %r failed", callback)
