"""The one-file ``focusmate-relay`` binary: built by packaging/build_relay.py, with no Qt inside,
it serves, syncs a document, keeps it across a restart and stops cleanly on SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focusmate.invite import new_room_secret
from tests.integration.relaykit import DocClient
from tests.packaging import REPO, outside_env, serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("PyInstaller") is None,
        reason="PyInstaller is not installed (pip install '.[packaging]')",
    ),
]

QT_ROOTS = {"PySide6", "shiboken6", "qasync", "PyQt5", "PyQt6", "ui"}
QT_LIBRARY_PREFIXES = ("libQt", "libpyside6", "libshiboken6")
# What the relay needs at run time, by archive entry: modules and the native extensions.
NEEDED = {
    "relay.server",
    "relay.admin",
    "sync.control",
    "focusmate.invite",
    "websockets.asyncio.server",
    "prometheus_client",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "_sqlite3",
    "_ssl",
}
# An operator downloads this; Qt alone would add well over 100 MB.
MAX_SIZE_MB = 50


@pytest.fixture(scope="module")
def relay_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("relay-dist")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "build_relay.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    binary = out / "focusmate-relay"
    size_mb = binary.stat().st_size / 1_000_000
    print(f"focusmate-relay: {size_mb:.1f} MB, built in {elapsed:.0f} s")
    return binary


def archive_listing(binary: Path) -> list[str]:
    """Every entry name, through PyInstaller's own archive viewer (recursive, names only)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller.utils.cliutils.archive_viewer",
            "--list",
            "--recursive",
            "--brief",
            str(binary),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Each archive is a heading ("Contents of ...") then its entries, indented by one space.
    entries, listing = [], False
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            listing = line.startswith("Contents of")
        elif listing:
            entries.append(line[1:])
    return entries


def test_the_binary_holds_what_the_relay_needs_and_no_qt(relay_binary: Path) -> None:
    entries = archive_listing(relay_binary)
    names = set(entries)
    native = {Path(e).name.split(".")[0] for e in entries if ".so" in e or e.endswith(".pyd")}
    assert NEEDED - names - native == set()
    assert any(e.startswith("pycrdt/_pycrdt") for e in entries), "pycrdt's native module"
    qt = [
        e
        for e in entries
        if e.replace("/", ".").split(".")[0] in QT_ROOTS
        or Path(e).name.startswith(QT_LIBRARY_PREFIXES)
    ]
    assert qt == []
    assert relay_binary.stat().st_size < MAX_SIZE_MB * 1_000_000


async def test_the_binary_serves_syncs_and_stops_on_sigterm(
    relay_binary: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "relay-data"
    secret = new_room_secret()
    # Run from an empty directory with a clean environment: nothing from the source tree.
    async with serving([str(relay_binary)], data_dir, cwd=tmp_path) as relay:
        alice = await DocClient.open(relay.doc_url(secret))
        bob = await DocClient.open(relay.doc_url(secret))
        await alice.set("task", "write the report")
        await bob.wait_value("task", "write the report")
        await bob.set("reply", "on it")
        await alice.wait_value("reply", "on it")
        await alice.close()
        await bob.close()
        assert await relay.terminate() == 0, relay.stderr
    events = [json.loads(line)["event"] for line in relay.stderr.splitlines()]
    assert "relay.listening" in events

    # The document was committed to the data directory: a restarted binary serves it.
    async with serving([str(relay_binary)], data_dir, cwd=tmp_path) as relay:
        carol = await DocClient.open(relay.doc_url(secret))
        await carol.wait_value("task", "write the report")
        await carol.close()
        assert await relay.terminate() == 0, relay.stderr

    stats = subprocess.run(
        [str(relay_binary), "--data-dir", str(data_dir), "admin", "stats"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=outside_env(),
        timeout=60,
        check=False,
    )
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["documents"] == 1
