"""LAN discovery across real network namespaces: peers, departures, and hostile adverts.

The parsing tests at the top need no network; the ``netns`` tests skip, saying why, without root.

Each peer runs :class:`sync.discovery.Discovery` in a child process inside its own namespace and
reports ``found``/``lost`` (and the discovery module's debug log) as JSON lines. Negative checks
("X was ignored") wait for the log line saying X was ignored, so they prove the advert arrived.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from focusmate.errors import ValidationError
from focusmate.identity import user_id_for
from sync.discovery import SERVICE_TYPE, Discovery, PeerAdvert, parse_advert, parse_txt
from tests.lan.netns import Child, Host, Lan

Spawn = Callable[..., Awaitable[Child]]

PEER = """
import asyncio, dataclasses, json, logging, sys
from sync.discovery import Discovery

def out(**event):
    print(json.dumps(event), flush=True)

class Forward(logging.Handler):
    def emit(self, record):
        out(event="log", msg=record.getMessage())

async def main():
    user_id, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = logging.getLogger("sync.discovery")
    log.setLevel(logging.DEBUG)
    log.addHandler(Forward())
    discovery = Discovery(
        user_id, port, interfaces=[address],
        on_found=lambda advert: out(event="found", **dataclasses.asdict(advert)),
        on_lost=lambda instance: out(event="lost", instance=instance),
    )
    await discovery.start()
    out(event="started", instance=discovery.instance)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()  # a command or EOF: stop
    await discovery.stop()
    await discovery.stop()  # idempotent
    out(event="stopped")

asyncio.run(main())
"""

# Publishes arbitrary adverts with plain zeroconf: {"op": "register"|"update"|"unregister",
# "label": ..., "port": ..., "txt": {...}} in, {"event": "done", ...} out.
# Publishes arbitrary adverts with plain zeroconf, each command concurrently (probing takes about
# a second): {"op": "register"|"update"|"unregister", "label": ..., "port": ..., "txt": {...}}
# in, {"event": "done", **command} out.
PUBLISHER = """
import asyncio, json, sys
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

TYPE = "_focusmate._tcp.local."

async def main():
    address = sys.argv[1]
    zc = AsyncZeroconf(interfaces=[address])
    infos = {}

    async def run(cmd):
        label = cmd["label"]
        if cmd["op"] == "unregister":
            await (await zc.async_unregister_service(infos.pop(label)))
        else:
            info = AsyncServiceInfo(
                TYPE, f"{label}.{TYPE}", port=cmd["port"], properties=cmd["txt"],
                server=f"{label}.local.", parsed_addresses=[address],
            )
            if cmd["op"] == "register":
                await zc.async_register_service(info)
            else:
                await (await zc.async_update_service(info))
            infos[label] = info
        print(json.dumps({"event": "done", **cmd}), flush=True)

    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()
    while line := await reader.readline():
        tasks.add(asyncio.create_task(run(json.loads(line))))
    await asyncio.gather(*tasks)
    await zc.async_close()

asyncio.run(main())
"""


def new_user_id() -> str:
    return user_id_for(secrets.token_bytes(32))


def txt(*entries: bytes) -> bytes:
    return b"".join(bytes([len(entry)]) + entry for entry in entries)


def test_parse_txt_follows_rfc_6763() -> None:
    assert parse_txt(b"") == {}
    assert parse_txt(txt(b"ID=a", b"id=b", b"flag", b"", b"v=")) == {
        "id": b"a",  # keys are case-insensitive and the first one wins
        "flag": None,
        "v": b"",
    }
    with pytest.raises(ValidationError, match="truncated"):
        parse_txt(b"\x05id=a")
    with pytest.raises(ValidationError, match="ASCII"):
        parse_txt(txt(b"\xff=1"))


def test_parse_advert_accepts_a_valid_advert_and_normalises_the_user_id() -> None:
    user = new_user_id()
    advert = parse_advert(
        "x._focusmate._tcp.local.",
        7000,
        txt(b"id=" + user.lower().replace("-", "").encode(), b"v=1"),
        ["10.77.77.1", "fe80::1%2", "10.77.77.1"],
    )
    assert advert == PeerAdvert(
        user_id=user,
        addresses=("10.77.77.1", "fe80::1%2"),
        port=7000,
        version=1,
        instance="x._focusmate._tcp.local.",
    )


@pytest.mark.parametrize(
    ("port", "entries", "addresses", "reason"),
    [
        (7000, [b"v=1"], ["10.0.0.1"], "'id' is missing"),
        (7000, [b"id", b"v=1"], ["10.0.0.1"], "'id' is missing"),
        (7000, [b"id=ABCDE", b"v=1"], ["10.0.0.1"], "user id"),
        (7000, [b"id=" + b"A" * 65, b"v=1"], ["10.0.0.1"], "too long"),
        (7000, [b"id=\xc3\xa9", b"v=1"], ["10.0.0.1"], "not ASCII"),
        (7000, [b"id=ok"], ["10.0.0.1"], "'v' is missing"),
        (7000, [b"id=ok", b"v=2"], ["10.0.0.1"], "unsupported protocol version 2"),
        (7000, [b"id=ok", b"v=-1"], ["10.0.0.1"], "not a number"),
        (7000, [b"id=ok", b"v=\xd9\xa1"], ["10.0.0.1"], "not ASCII"),  # Arabic-Indic 1
        (7000, [b"id=ok", b"v=123456"], ["10.0.0.1"], "too long"),
        (0, [b"id=ok", b"v=1"], ["10.0.0.1"], "port 0"),
        (65536, [b"id=ok", b"v=1"], ["10.0.0.1"], "port 65536"),
        (7000, [b"id=ok", b"v=1"], [], "no address"),
        (7000, [b"id=ok", b"v=1"], ["10.0.0.300"], "not an IP address"),
        (7000, [b"id=ok", b"v=1"], ["224.0.0.251"], "not a unicast"),
        (7000, [b"id=ok", b"v=1"], ["0.0.0.0"], "not a unicast"),
    ],
)
def test_parse_advert_rejects_what_it_cannot_trust(
    port: int, entries: list[bytes], addresses: list[str], reason: str
) -> None:
    user = new_user_id().encode()
    rdata = txt(*(entry.replace(b"id=ok", b"id=" + user) for entry in entries))
    with pytest.raises(ValidationError, match=reason):
        parse_advert("x._focusmate._tcp.local.", port, rdata, addresses)


def test_discovery_validates_its_arguments_and_names_instances_uniquely() -> None:
    user = new_user_id()

    def make(**kwargs: Any) -> Discovery:
        args: dict[str, Any] = {"on_found": print, "on_lost": print, **kwargs}
        return Discovery(args.pop("user_id", user), args.pop("port", 7000), **args)

    with pytest.raises(ValidationError):
        make(user_id="nope")
    with pytest.raises(ValidationError):
        make(port=0)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        make(interfaces=["eth0"])
    with pytest.raises(ValueError, match="at least one"):
        make(interfaces=[])
    fixed = make(random_bytes=lambda n: bytes(range(n)))
    assert fixed.instance == f"{user[:5]}-000102030405.{SERVICE_TYPE}"
    assert make().instance != make().instance


def found(instance: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        return (
            event["event"] == "found"
            and event["instance"] == instance
            and all(event[key] == value for key, value in fields.items())
        )

    return match


def lost(instance: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["event"] == "lost" and event["instance"] == instance


def done(label: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["event"] == "done" and event["label"] == label


def ignored(instance: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    prefix = f"ignoring advert {instance}: "
    return lambda event: (
        event["event"] == "log" and event["msg"].startswith(prefix) and reason in event["msg"]
    )


async def start_peers(
    spawn: Spawn, hosts: list[Host], user_ids: list[str], port: int = 7070
) -> list[tuple[Child, str]]:
    """Start one peer per host; return (child, instance name) once each is advertising."""
    peers = [
        await spawn(host.netns, PEER, user_id, host.address, str(port + i), name=f"peer{i}")
        for i, (host, user_id) in enumerate(zip(hosts, user_ids, strict=True))
    ]
    started = [await peer.wait_for(lambda e: e["event"] == "started", "start") for peer in peers]
    return [(peer, event["instance"]) for peer, event in zip(peers, started, strict=True)]


@pytest.mark.netns
async def test_two_peers_find_each_other_and_see_one_leave(
    make_lan: Callable[[int], Lan], spawn: Spawn
) -> None:
    segment = make_lan(2)
    ids = [new_user_id(), new_user_id()]
    (a, a_name), (b, b_name) = await start_peers(spawn, segment.hosts, ids)
    assert a_name != b_name
    assert a_name.endswith("." + SERVICE_TYPE)

    seen_by_a = await a.wait_for(found(b_name), "advert of b")
    assert seen_by_a["user_id"] == ids[1]
    assert seen_by_a["addresses"] == [segment.hosts[1].address]
    assert seen_by_a["port"] == 7071
    assert seen_by_a["version"] == 1
    seen_by_b = await b.wait_for(found(a_name), "advert of a")
    assert (seen_by_b["user_id"], seen_by_b["addresses"], seen_by_b["port"]) == (
        ids[0],
        [segment.hosts[0].address],
        7070,
    )

    await b.send({"op": "stop"})
    await b.wait_for(lambda e: e["event"] == "stopped", "stop")
    await a.wait_for(lost(b_name), "loss of b")
    assert not a.matching(found(a_name)), "a reported itself"
    assert not b.matching(found(b_name)), "b reported itself"


@pytest.mark.netns
async def test_three_peers_all_find_each_other(
    make_lan: Callable[[int], Lan], spawn: Spawn
) -> None:
    segment = make_lan(3)
    ids = [new_user_id() for _ in range(3)]
    peers = await start_peers(spawn, segment.hosts, ids)
    for i, (child, _) in enumerate(peers):
        for j, (_, other) in enumerate(peers):
            if i != j:
                event = await child.wait_for(found(other), f"advert of peer{j}")
                assert event["user_id"] == ids[j]
                assert event["addresses"] == [segment.hosts[j].address]
    for child, own in peers:
        assert {e["instance"] for e in child.matching(lambda e: e["event"] == "found")} == {
            name for _, name in peers if name != own
        }


@pytest.mark.netns
async def test_a_peer_ignores_its_own_advert_and_its_own_user_on_another_device(
    make_lan: Callable[[int], Lan], spawn: Spawn
) -> None:
    segment = make_lan(2)
    same = new_user_id()
    (a, a_name), (b, b_name) = await start_peers(spawn, segment.hosts, [same, same])
    assert a_name != b_name  # unique per process even for one user
    for child, name in ((a, a_name), (b, b_name), (a, b_name), (b, a_name)):
        await child.wait_for(ignored(name, "our own user id"), f"ignoring {name}")
    assert not a.matching(lambda e: e["event"] == "found")
    assert not b.matching(lambda e: e["event"] == "found")


@pytest.mark.netns
async def test_malformed_adverts_are_ignored(make_lan: Callable[[int], Lan], spawn: Spawn) -> None:
    segment = make_lan(2)
    publisher = await spawn(segment.hosts[0].netns, PUBLISHER, segment.hosts[0].address)
    ((observer, _),) = await start_peers(spawn, segment.hosts[1:], [new_user_id()])
    good = new_user_id()
    bad = {
        "bad-id": ({"id": "NOT-A-USER-ID", "v": "1"}, "user id"),
        "typo-id": ({"id": good[:-1] + ("0" if good[-1] != "0" else "1"), "v": "1"}, "user id"),
        "no-id": ({"v": "1"}, "'id' is missing"),
        "v2": ({"id": good, "v": "2"}, "unsupported protocol version 2"),
        "v-junk": ({"id": good, "v": "1x"}, "is not a number"),
        "no-v": ({"id": good}, "'v' is missing"),
    }
    for label, (props, _) in bad.items():
        await publisher.send({"op": "register", "label": label, "port": 7000, "txt": props})
    await publisher.send(
        {"op": "register", "label": "good", "port": 7001, "txt": {"id": good, "v": "1"}}
    )
    for label in [*bad, "good"]:
        await publisher.wait_for(done(label), f"registration of {label}")

    await observer.wait_for(found(f"good.{SERVICE_TYPE}", user_id=good, port=7001), "good advert")
    for label, (_, reason) in bad.items():
        name = f"{label}.{SERVICE_TYPE}"
        await observer.wait_for(ignored(name, reason), f"ignoring {label}")
    assert [e["instance"] for e in observer.matching(lambda e: e["event"] == "found")] == [
        f"good.{SERVICE_TYPE}"
    ]


@pytest.mark.netns
async def test_updated_advert_is_reported_again_and_an_invalid_update_is_a_loss(
    make_lan: Callable[[int], Lan], spawn: Spawn
) -> None:
    segment = make_lan(2)
    publisher = await spawn(segment.hosts[0].netns, PUBLISHER, segment.hosts[0].address)
    ((observer, _),) = await start_peers(spawn, segment.hosts[1:], [new_user_id()])
    user = new_user_id()
    name = f"moving.{SERVICE_TYPE}"

    def advert(op: str, port: int, version: str) -> dict[str, Any]:
        return {"op": op, "label": "moving", "port": port, "txt": {"id": user, "v": version}}

    await publisher.send(advert("register", 7100, "1"))
    await observer.wait_for(found(name, port=7100), "first advert")
    await publisher.send(advert("update", 7200, "1"))
    await observer.wait_for(found(name, port=7200), "updated advert")
    await publisher.send(advert("update", 7200, "9"))
    await observer.wait_for(lost(name), "loss after an unsupported version")
    await publisher.send(advert("update", 7300, "1"))
    await observer.wait_for(found(name, port=7300), "advert after it became valid again")
    mark = len(observer.events)
    await publisher.send({"op": "unregister", "label": "moving"})
    await observer.wait_for(lost(name), "loss after the goodbye", since=mark)
