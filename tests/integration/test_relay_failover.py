"""Killing one of several relay processes behind nginx or HAProxy: nothing forwarded is lost,
and its clients reconnect to another process through the same address.

Real parts throughout: a redis-server, relay processes (``python -m relay serve --redis-url``),
nginx with the upstream and location settings of packaging/proxy/nginx-scaleout.conf or HAProxy
with packaging/proxy/haproxy.cfg (plain HTTP on a free port instead of TLS), and the apps' sync
engines on real profiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.rediskit import RedisServer, needs_redis, running_redis
from tests.integration.relaykit import DEADLINE, REPO, RelayProcess, poll
from tests.integration.synckit import EnginePeer, free_port, running


def _binary(name: str) -> str | None:
    found = shutil.which(name) or f"/usr/sbin/{name}"
    return found if os.access(found, os.X_OK) else None


NGINX, HAPROXY = _binary("nginx"), _binary("haproxy")
pytestmark = [needs_redis, pytest.mark.slow]
PROXY = REPO / "packaging" / "proxy"
SHIPPED = PROXY / "nginx-scaleout.conf"


def nginx_config(directory: Path, port: int, relays: list[int]) -> Path:
    """The shipped upstream and websocket location, in a plain-HTTP server on ``port``."""
    shipped = SHIPPED.read_text()
    upstream = re.search(r"upstream focusmate_relays \{.*?\n\}", shipped, re.S)
    location = re.search(r"    location ~ \^/\(v1\$\|doc/\) \{.*?\n    \}", shipped, re.S)
    mapping = re.search(r"map \$http_upgrade .*?\n\}", shipped, re.S)
    assert upstream and location and mapping, "nginx-scaleout.conf changed; update this test"
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in relays)
    upstream_text = re.sub(r"    server .*\n", "", upstream.group(0)).replace(
        "    least_conn;\n", "    least_conn;\n" + servers
    )
    temp = directory / "temp"
    temp.mkdir(parents=True)
    config = directory / "nginx.conf"
    config.write_text(
        f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
        "worker_processes 1;\nevents { worker_connections 256; }\n"
        f"http {{\n access_log off;\n client_body_temp_path {temp}/body;\n"
        f" proxy_temp_path {temp}/proxy;\n fastcgi_temp_path {temp}/fastcgi;\n"
        f" uwsgi_temp_path {temp}/uwsgi;\n scgi_temp_path {temp}/scgi;\n"
        f"{mapping.group(0)}\n{upstream_text}\n"
        f"server {{\n    listen 127.0.0.1:{port};\n{location.group(0)}\n}}\n}}\n"
    )
    return config


def haproxy_config(directory: Path, port: int, relays: list[int]) -> Path:
    """packaging/proxy/haproxy.cfg, plain HTTP on ``port``, in front of ``relays``."""
    shipped = (PROXY / "haproxy.cfg").read_text()
    bind = "    bind :443 ssl crt /etc/haproxy/certs/relay.example.org.pem\n"
    assert bind in shipped and "    server relay1 " in shipped, "haproxy.cfg changed"
    config = re.sub(r"    server relay\d .*\n", "", shipped).replace(
        bind, f"    bind 127.0.0.1:{port}\n"
    )
    config += "".join(
        f"    server relay{i} 127.0.0.1:{p} check inter 5s fall 2 rise 2\n"
        for i, p in enumerate(relays)
    )
    directory.mkdir(parents=True)
    path = directory / "haproxy.cfg"
    path.write_text(config)
    return path


@contextlib.contextmanager
def proxy(kind: str, directory: Path, port: int, relays: list[int]) -> Iterator[None]:
    """nginx or HAProxy on ``port`` in front of ``relays``, checked first, stopped after."""
    if kind == "nginx":
        assert NGINX is not None
        config = nginx_config(directory, port, relays)
        command = [NGINX, "-p", str(config.parent), "-c", str(config)]
        check, run, stop = [*command, "-t"], [*command, "-g", "daemon off;"], signal.SIGQUIT
    else:
        assert HAPROXY is not None
        config = haproxy_config(directory, port, relays)
        command = [HAPROXY, "-f", str(config)]
        check, run, stop = [*command, "-c"], [*command, "-db"], signal.SIGUSR1
    checked = subprocess.run(check, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    proc = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connections(relay: RelayProcess) -> int:
    url = f"http://127.0.0.1:{relay.port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(json.loads(response.read())["connections"])


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("nginx", marks=pytest.mark.skipif(NGINX is None, reason="no nginx")),
        pytest.param("haproxy", marks=pytest.mark.skipif(HAPROXY is None, reason="no haproxy")),
    ],
)
async def test_killing_a_relay_process_loses_nothing_and_its_clients_move(
    tmp_path: Path, kind: str
) -> None:
    front = free_port()
    public = f"ws://127.0.0.1:{front}"
    async with contextlib.AsyncExitStack() as stack:
        redis: RedisServer = await stack.enter_async_context(running_redis(tmp_path / "redis"))
        processes = [
            await stack.enter_async_context(
                RelayProcess(
                    tmp_path / f"relay{i}",
                    args=["--redis-url", redis.url, "--public-url", public],
                )
            )
            for i in range(2)
        ]
        stack.enter_context(proxy(kind, tmp_path / kind, front, [p.port for p in processes]))
        await poll_port(front)
        alice = EnginePeer(tmp_path / "alice", relays=[public])
        bob = EnginePeer(tmp_path / "bob", relays=[public])
        async with running(alice, bob):
            room, invite = alice.workspace.create_room("Failover")
            bob.workspace.join_room(invite.code)
            await poll(lambda: bob.room_name(room.room_id) == "Failover", "the room at bob's")
            # least_conn spread the two apps over the two processes
            counts = await asyncio.to_thread(lambda: [connections(p) for p in processes])
            assert counts == [1, 1], counts
            alice.workspace.board(room).post("before", now=alice.workspace.now())
            await poll(lambda: bob.posts(room.room_id) == ["before"], "alice's post at bob's")

            victim, survivor = processes
            await victim.kill()  # kill -9: no goodbye to Redis, nginx or the clients
            alice.workspace.board(room).post("during", now=alice.workspace.now())
            bob_room = bob.workspace.find_room("Failover")
            bob.workspace.board(bob_room).post("from bob", now=bob.workspace.now())
            everything = ["before", "during", "from bob"]
            for peer in (alice, bob):
                await poll(
                    lambda peer=peer: peer.posts(room.room_id) == everything,
                    f"every post at {peer.profile.name}'s",
                )
            # both apps are on the surviving process now
            await poll(lambda: connections(survivor) == 2, "both apps on the survivor")

        # With both apps gone, a newcomer gets every post from the relay alone (Redis).
        carol = EnginePeer(tmp_path / "carol", relays=[public])
        async with running(carol):
            carol.workspace.join_room(invite.code)
            await poll(lambda: carol.posts(room.room_id) == everything, "every post at carol's")


async def poll_port(port: int) -> None:
    async def connectable() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    async with asyncio.timeout(DEADLINE):
        while not await connectable():
            await asyncio.sleep(0.02)  # (nginx is starting)
