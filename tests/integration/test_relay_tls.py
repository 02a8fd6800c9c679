"""The relay's built-in TLS (--tls-cert/--tls-key): wss:// with a certificate we made."""

from __future__ import annotations

import ssl
from pathlib import Path

from websockets.asyncio.client import connect

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from sync import control, handshake
from sync.ysync import SyncStep1, decode_message, encode_message
from tests.integration.relaykit import running_relay, self_signed


async def test_the_relay_serves_wss_with_its_own_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "127.0.0.1")
    trust = ssl.create_default_context(cafile=str(cert))
    secret = new_room_secret()
    async with running_relay(tmp_path / "data", tls_cert=cert, tls_key=key) as relay:
        base = f"wss://127.0.0.1:{relay.port}"
        url = f"{base}/doc/{room_id_for(secret)}?token={relay_token(secret)}"
        async with connect(url, ssl=trust) as ws:
            assert isinstance(decode_message(await ws.recv()), SyncStep1)  # y-websocket greets
            await ws.send(encode_message(SyncStep1(b"\x00")))
        async with connect(base + "/v1", ssl=trust) as ws:
            challenge = control.decode(await ws.recv())
            assert isinstance(challenge, control.Challenge)
            # over TLS the address to sign is the wss:// one
            me = Identity.generate()
            await ws.send(control.encode(handshake.answer(me, challenge, address=base)))
            assert control.decode(await ws.recv()) == control.Welcome(
                user_id=me.user_id,
                max_frame=relay.limits.max_frame_bytes,
                max_docs=relay.limits.max_docs_per_connection,
            )
