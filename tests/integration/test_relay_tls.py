"""The relay's built-in TLS (--tls-cert/--tls-key): wss:// with a certificate we made."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from sync import control, handshake
from sync.ysync import SyncStep1, decode_message, encode_message
from tests.integration.relaykit import running_relay


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_the_relay_serves_wss_with_its_own_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
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
