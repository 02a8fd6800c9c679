"""Running the relay: health, metrics, 404s, no Qt, the real binary (signals, logs, restarts) and
the admin commands on its data directory."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from focusmate.invite import new_room_secret, room_id_for
from relay.__main__ import main as relay_main
from relay.server import Relay
from sync.control import CloseCode
from tests.integration.relaykit import (
    DEADLINE,
    REPO,
    DocClient,
    RelayProcess,
    doc_url,
    limits,
    relay_env,
    running_relay,
)

# -- HTTP endpoints ---------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Content-Type", ""), err.read()


async def http_get(relay_port: int, path: str) -> tuple[int, str, bytes]:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{relay_port}{path}")


async def test_healthz_reports_ok_with_a_storage_check(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        status, content_type, body = await http_get(relay.port, "/healthz")
    assert status == 200
    assert content_type == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["storage"] == "ok"
    assert health["connections"] == 0


@pytest.mark.parametrize("path", ["/", "/nope", "/metrics/x", "/healthz/", "/v2"])
async def test_an_unknown_path_is_404(tmp_path: Path, path: str) -> None:
    async with running_relay(tmp_path) as relay:
        status, _, body = await http_get(relay.port, path)
    assert status == 404
    assert body == b"no such endpoint\n"


async def metrics_after_traffic(relay: Relay) -> tuple[str, str]:
    """Two clients sync both ways and one is refused for its token; then ``GET /metrics``."""
    secret = new_room_secret()
    alice = await DocClient.open(doc_url(relay, secret))
    bob = await DocClient.open(doc_url(relay, secret))
    intruder = await DocClient.open(doc_url(relay, secret, token="wrong"))
    try:
        assert (await intruder.wait_closed())[0] == CloseCode.UNAUTHORIZED
        await alice.set("task", "write the report")
        await bob.wait_value("task", "write the report")
        await bob.set("reply", "on it")
        await alice.wait_value("reply", "on it")
        status, content_type, body = await http_get(relay.port, "/metrics")
    finally:
        await alice.close()
        await bob.close()
    assert status == 200
    return content_type, body.decode()


async def test_metrics_has_the_documented_families_after_traffic(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        content_type, text = await metrics_after_traffic(relay)
    assert content_type.startswith("text/plain; version=0.0.4")
    types = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in samples, f"no sample {name}{labels} in:\n{text}"
        return samples[key]

    assert types["focusmate_relay_connections"] == "gauge"
    assert value("focusmate_relay_connections", endpoint="doc") == 2
    assert value("focusmate_relay_documents_in_memory") == 1
    assert value("focusmate_relay_updates_received_total") >= 2
    assert value("focusmate_relay_updates_forwarded_total") >= 2
    assert value("focusmate_relay_received_bytes_total") > 0
    assert value("focusmate_relay_sent_bytes_total") > 0
    assert types["focusmate_relay_fanout_latency_seconds"] == "histogram"
    count = value("focusmate_relay_fanout_latency_seconds_count")
    assert count >= 2
    assert value("focusmate_relay_fanout_latency_seconds_bucket", le="+Inf") == count
    assert value("focusmate_relay_rejected_frames_total", reason="bad_token") == 1
    assert types["focusmate_relay_mailbox_items"] == "gauge"
    assert value("focusmate_relay_mailbox_items") == 0
    for counter in ("updates_received", "updates_forwarded", "received_bytes", "sent_bytes"):
        assert f"# TYPE focusmate_relay_{counter}_total counter" in text


async def test_metrics_pass_promtool_check(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("PROMTOOL NOT FOUND: install the Debian package `prometheus` (see .ci/run)")
    async with running_relay(tmp_path) as relay:
        _, text = await metrics_after_traffic(relay)
    check = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(check.communicate(text.encode()), DEADLINE)
    assert check.returncode == 0, f"promtool check metrics:\n{out.decode()}\n---\n{text}"


def test_the_relay_imports_no_qt() -> None:
    code = (
        "import json, sys\n"
        "import relay, relay.server, relay.__main__, relay.admin\n"
        "roots = {'PySide6', 'shiboken6', 'qasync', 'PyQt5', 'PyQt6', 'ui'}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in roots)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# -- the real binary ----------------------------------------------------------------------------


async def admin(data_dir: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "--data-dir",
        str(data_dir),
        "admin",
        *args,
        cwd=REPO,
        env=relay_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def admin_json(data_dir: Path, *args: str) -> Any:
    code, out, err = await admin(data_dir, *args)
    assert code == 0, f"admin {' '.join(args)} failed ({code}): {err}"
    return json.loads(out)


@contextlib.asynccontextmanager
async def doc_client(url: str) -> AsyncIterator[DocClient]:
    client = await DocClient.open(url)
    try:
        yield client
    finally:
        await client.close()


async def write_room(url: str, values: dict[str, Any]) -> None:
    """Write ``values`` through one client and wait until a second one has them all."""
    async with doc_client(url) as a, doc_client(url) as b:
        # synced first: an edit made before the relay's sync step 1 arrives would also go out
        # in the reply to it, and the relay would log that update twice
        async with asyncio.timeout(DEADLINE):
            await a.synced.wait()
            await b.synced.wait()
        for key, value in values.items():
            await a.set(key, value)
        for key, value in values.items():
            await b.wait_value(key, value)


async def read_room(url: str, keys: list[str]) -> dict[str, Any]:
    async with doc_client(url) as client:
        async with asyncio.timeout(DEADLINE):
            await client.synced.wait()
        return {key: client.value(key) for key in keys}


async def test_the_binary_drains_on_sigterm_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "relay-data"
    secret = new_room_secret()
    async with RelayProcess(data) as relay:
        alice = await DocClient.open(relay.doc_url(secret))
        bob = await DocClient.open(relay.doc_url(secret))
        await alice.set("task", "write the report")
        await bob.wait_value("task", "write the report")
        await bob.set("reply", "on it")
        await alice.wait_value("reply", "on it")

        assert await relay.terminate() == 0
        for client in (alice, bob):  # drained: each connection closed with 1001
            assert (await client.wait_closed())[0] == 1001
        events = relay.events()  # every line is JSON
        names = [e["event"] for e in events]
        assert names.index("relay.listening") < names.index("relay.stopped")
        assert all({"ts", "level", "event", "logger"} <= e.keys() for e in events)
        listening = events[names.index("relay.listening")]
        assert listening["data_dir"] == str(data)
        assert listening["port"] == relay.port

    async with RelayProcess(data) as again:
        content = await read_room(again.doc_url(secret), ["task", "reply"])
        assert content == {"task": "write the report", "reply": "on it"}
        assert await again.terminate() == 0


FIRST = {"task": "write the report", "reply": "on it", "n": 3}
LATER = {"after-backup": True}


async def test_admin_stats_docs_backup_and_restore(tmp_path: Path) -> None:
    data = tmp_path / "relay-data"
    backup = tmp_path / "backup.db"
    secret = new_room_secret()
    async with RelayProcess(data) as relay:
        await write_room(relay.doc_url(secret), FIRST)
        # backup is documented as safe while the relay runs
        done = await admin_json(data, "backup", str(backup))
        assert done["backup"] == str(backup)
        assert backup.stat().st_size == done["bytes"] > 0
        # restore refuses while a relay holds the data directory
        _, (code, out, err) = await asyncio.gather(
            write_room(relay.doc_url(secret), LATER), admin(data, "restore", str(backup))
        )
        assert code == 1, (out, err)
        assert "another relay is using" in err
        assert "Traceback" not in err
        assert await relay.terminate() == 0

    stats, docs = await asyncio.gather(admin_json(data, "stats"), admin_json(data, "docs"))
    assert stats["documents"] == 1
    assert (stats["updates"], stats["snapshots"]) == (len(FIRST) + len(LATER), 0)
    assert stats["mailbox_items"] == 0
    assert [d["doc_id"] for d in docs["docs"]] == [room_id_for(secret)]
    assert docs["docs"][0]["updates"] == len(FIRST) + len(LATER)

    restored = await admin_json(data, "restore", str(backup))
    assert restored["restored"] == str(backup)
    async with running_relay(data) as relay:  # the document as it was at the backup
        content = await read_room(doc_url(relay, secret), [*FIRST, *LATER])
    assert content == {**FIRST, "after-backup": None}


async def test_admin_compact_folds_the_log_and_purge_keeps_the_document(tmp_path: Path) -> None:
    data = tmp_path / "relay-data"
    secret, other = new_room_secret(), new_room_secret()
    async with running_relay(data) as relay:
        await write_room(doc_url(relay, secret), FIRST)
        await write_room(doc_url(relay, secret), LATER)
        await write_room(doc_url(relay, other), {"other": 1})

    compacted = await admin_json(data, "compact")
    assert compacted == {"documents": 2, "updates_folded": len(FIRST) + len(LATER) + 1}
    purged = await admin_json(data, "purge", "--mail-older-than-days", "0")
    assert purged == {"mail_deleted": 0, "documents_deleted": 0}
    stats = await admin_json(data, "stats")
    assert (stats["documents"], stats["updates"], stats["snapshots"]) == (2, 0, 2)

    async with RelayProcess(data) as relay:
        content, others = await asyncio.gather(
            read_room(relay.doc_url(secret), [*FIRST, *LATER, "other"]),
            read_room(relay.doc_url(other), [*FIRST, "other"]),
        )
        assert content == {**FIRST, **LATER, "other": None}
        assert others == {**dict.fromkeys(FIRST), "other": 1}
        assert await relay.terminate() == 0


async def test_admin_restore_leaves_the_backup_untouched(tmp_path: Path) -> None:
    data = tmp_path / "relay-data"
    backup = tmp_path / "backups" / "relay.db"
    backup.parent.mkdir()
    secret = new_room_secret()
    async with running_relay(data) as relay:
        await write_room(doc_url(relay, secret), FIRST)
        await relay.committer.read(lambda storage: storage.backup_to(backup))  # = admin backup
    before = backup.read_bytes()

    restored = await admin_json(data, "restore", str(backup))
    assert restored["restored"] == str(backup)
    assert sorted(p.name for p in backup.parent.iterdir()) == ["relay.db"]
    assert backup.read_bytes() == before


@pytest.mark.parametrize(
    "content", [b"", b"SQLite format 3\x00" + b"\x00" * 200, b"hello"], ids=["empty", "bad", "text"]
)
def test_admin_restore_refuses_what_is_not_a_relay_backup(tmp_path: Path, content: bytes) -> None:
    data = tmp_path / "relay-data"
    data.mkdir()
    (data / "relay.db").write_bytes(b"keep me")
    impostor = tmp_path / "impostor.db"
    impostor.write_bytes(content)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = relay_main(["--data-dir", str(data), "admin", "restore", str(impostor)])
    assert code == 1
    assert "not a FocusMate relay backup" in err.getvalue()
    assert (data / "relay.db").read_bytes() == b"keep me"
    assert sorted(p.name for p in data.iterdir()) == ["relay.db", "relay.lock"]


async def test_behind_a_proxy_limits_apply_to_the_forwarded_address(tmp_path: Path) -> None:
    secret = new_room_secret()
    lim = limits(max_connections_per_ip=1)
    async with running_relay(tmp_path, limits=lim, trust_forwarded_for=True) as relay:
        url = doc_url(relay, secret)
        first = await connect(url, additional_headers={"X-Forwarded-For": "10.0.0.1"})
        second = await connect(url, additional_headers={"X-Forwarded-For": "spoof, 10.0.0.2"})
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers={"X-Forwarded-For": "10.0.0.2"})
        assert refused.value.response.status_code == 429
        # HAProxy adds a header line of its own after the client's: the last line counts
        two_lines = [("X-Forwarded-For", "10.0.0.2"), ("X-Forwarded-For", "10.0.0.3")]
        third = await connect(url, additional_headers=two_lines)
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers=[("X-Forwarded-For", "10.0.0.3")])
        assert refused.value.response.status_code == 429
        await first.close()
        await second.close()
        await third.close()
