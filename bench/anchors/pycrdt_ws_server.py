"""Anchor server for the fan-out benchmark: pycrdt-websocket's ``WebsocketServer``.

Serves y-websocket clients on ``ws://HOST:PORT/<room path>``; the room is the URL path without
its query string (so ``/doc/<id>?token=...`` works as is; no token is checked), rooms are
created on first use and deleted when their last client leaves (``auto_clean_rooms``).

The transport is the ``websockets`` library (already a FocusMate dependency) through a small
``Channel`` adapter, with permessage-deflate off, like the other servers in the benchmark.

When listening it prints one JSON line on stdout: ``{"event": "listening", "port": N, ...}``.
It runs until killed (SIGTERM/SIGINT).

Known upstream issue: when two clients open a *new* room at the same moment, both call
``WebsocketServer.start_room`` before the room is marked started and the second one waits
forever on the room's start lock. The load generator therefore opens the first connection of
each room alone and only then the others (for every server, so the load stays identical).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from importlib.metadata import version

import anyio
from pycrdt.websocket import WebsocketServer, exception_logger
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class WebsocketsChannel:
    """A pycrdt ``Channel`` over a ``websockets`` server connection."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        request = connection.request
        raw_path = request.path if request is not None else "/"
        self._path = raw_path.split("?", 1)[0]

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketsChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        # The room broadcasts from its own task group: an exception here would tear the whole
        # room down, so a peer that has gone away is simply skipped.
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(message)

    async def recv(self) -> bytes:
        message = await self._connection.recv()
        if isinstance(message, str):
            return message.encode()
        return bytes(message)


async def run(host: str, port: int) -> None:
    ws_server = WebsocketServer(auto_clean_rooms=True, exception_handler=exception_logger)

    async def handler(connection: ServerConnection) -> None:
        await ws_server.serve(WebsocketsChannel(connection))

    async with (
        ws_server,
        serve(handler, host, port, compression=None, max_size=None, ping_interval=None) as server,
    ):
        bound = next(iter(server.sockets)).getsockname()
        line = {
            "event": "listening",
            "host": bound[0],
            "port": bound[1],
            "server": "pycrdt-websocket",
            "version": version("pycrdt-websocket"),
        }
        print(json.dumps(line), flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(run, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
