"""A lean Redis connection (RESP2 over asyncio streams, replies parsed by hiredis) for the two
paths every update takes: the ordered writer and the channel listener (relay/redis_link.py).

redis-py's asyncio client costs ~60 µs per pipelined command and ~35 µs per pub/sub message in
Python on the benchmark machine, against ~19 µs (the Lua script's own time included) and ~1 µs
here: every relay process pays it for every update of every room it serves. Everything else
(reads, the timer lock, mail, liveness) keeps using redis-py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url

CONNECT_SECONDS = 5.0
READ_BYTES = 1 << 16
Arg = bytes | str | int | float


class ReplyError(Exception):
    """An error reply from Redis (the command failed; the connection is fine)."""


def pack(command: Sequence[Arg]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader(replyError=ReplyError)

    @classmethod
    async def open(cls, url: str) -> RespConnection:
        """Connect as ``url`` says (``redis://``, ``rediss://``, ``unix://``; user, password
        and database), or raise OSError."""
        params = parse_url(url)
        async with asyncio.timeout(CONNECT_SECONDS):
            if "path" in params:
                reader, writer = await asyncio.open_unix_connection(params["path"])
            else:
                tls = None
                if params.get("connection_class") is SSLConnection:  # rediss://, as redis-py
                    authority = params.get("ssl_ca_certs")
                    tls = ssl.create_default_context(cafile=str(authority) if authority else None)
                    if params.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                        tls.check_hostname = False
                        tls.verify_mode = ssl.CERT_NONE
                reader, writer = await asyncio.open_connection(
                    params.get("host", "localhost"), params.get("port", 6379), ssl=tls
                )
                sock = writer.get_extra_info("socket")
                if sock is not None:  # a peer that vanished is noticed by the OS too
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            connection = cls(reader, writer)
            try:
                if params.get("password"):
                    user = [params["username"]] if params.get("username") else []
                    await connection.call("AUTH", *user, params["password"])
                if params.get("db"):
                    await connection.call("SELECT", params["db"])
            except ReplyError as err:
                connection.close()
                raise OSError(f"redis refused the connection: {err}") from None
        return connection

    def send(self, commands: Iterable[Sequence[Arg]]) -> None:
        """Queue commands for sending (one write); their replies come in order."""
        self._writer.write(b"".join(pack(command) for command in commands))

    async def reply(self) -> Any:
        """The next reply (an error reply as a ReplyError instance, not raised)."""
        while (reply := self._parser.gets()) is False:
            data = await self._reader.read(READ_BYTES)
            if not data:
                raise ConnectionResetError("redis closed the connection")
            self._parser.feed(data)
        return reply

    def ready(self) -> Iterator[Any]:
        """The replies already received, without waiting (pub/sub messages a read brought)."""
        while (reply := self._parser.gets()) is not False:
            yield reply

    async def call(self, *command: Arg) -> Any:
        self.send([command])
        reply = await self.reply()
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def close(self) -> None:
        self._writer.transport.abort()
