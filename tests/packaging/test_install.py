"""``pip install`` of the wheel, without extras, in a fresh virtualenv: both commands work and
there is no Qt; Qt comes only with the ``desktop`` extra."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from focusmate import __version__
from focusmate.invite import new_room_secret
from tests.integration.relaykit import DocClient
from tests.packaging import REPO, outside_env, serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ensurepip") is None,
        reason="this Python cannot make a virtualenv with pip (no ensurepip; Debian: python3-venv)",
    ),
]

# Left out of the copy the wheel is built from: VCS data, environments, caches, Node modules.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".*_cache",
    ".hypothesis",
)


def run(*command: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=outside_env(),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the repository, built from a copy so the build leaves nothing in the tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    pip_wheel = (sys.executable, "-m", "pip", "wheel", "--no-deps", "-q")
    ok(run(*pip_wheel, source, "-w", work / "out", cwd=work, timeout=600))
    (built,) = (work / "out").glob("focusmate-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel installed, no extras (pip fetches the core deps)."""
    venv = tmp_path_factory.mktemp("venv")
    ok(run(sys.executable, "-m", "venv", venv, cwd=venv))
    python = venv / "bin" / "python"
    pip_install = (python, "-m", "pip", "install", "-q", "--disable-pip-version-check")
    ok(run(*pip_install, wheel, cwd=venv, timeout=600))
    return venv / "bin"


def test_the_wheel_offers_qt_only_as_the_desktop_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist") or []

    def project(requirement: str) -> str:
        match = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert match is not None, requirement
        return match.group(0).lower().replace("_", "-")

    core = {project(r) for r in requires if "extra ==" not in r}
    desktop = {project(r) for r in requires if re.search(r"extra\s*==\s*['\"]desktop['\"]", r)}
    assert "desktop" in (metadata.get_all("Provides-Extra") or [])
    assert {"pyside6", "qasync"} <= desktop
    assert {"pycrdt", "cryptography", "websockets", "prometheus-client"} <= core
    assert core.isdisjoint({"pyside6", "pyside6-essentials", "shiboken6", "qasync"})
    # Only our four packages are installed at top level (no tests/, bench/ or packaging/).
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"focusmate", "sync", "relay", "ui"}


def test_there_is_no_qt_in_the_plain_install(venv_bin: Path, tmp_path: Path) -> None:
    for module in ("PySide6", "shiboken6", "qasync"):
        result = run(venv_bin / "python", "-c", f"import {module}", cwd=tmp_path)
        assert result.returncode != 0
        assert "ModuleNotFoundError" in result.stderr


async def test_the_relay_installs_and_runs_without_qt(venv_bin: Path, tmp_path: Path) -> None:
    relay_command = venv_bin / "focusmate-relay"
    assert "serve" in ok(run(relay_command, "--help", cwd=tmp_path))
    secret = new_room_secret()
    async with serving([str(relay_command)], tmp_path / "relay-data", cwd=tmp_path) as relay:
        alice = await DocClient.open(relay.doc_url(secret))
        bob = await DocClient.open(relay.doc_url(secret))
        await alice.set("task", "pip test")
        await bob.wait_value("task", "pip test")
        await alice.close()
        await bob.close()
        assert await relay.terminate() == 0, relay.stderr


def test_the_cli_works_without_qt(venv_bin: Path, tmp_path: Path) -> None:
    focusmate = venv_bin / "focusmate"
    profile = tmp_path / "profile"
    assert ok(run(focusmate, "--version", cwd=tmp_path)).strip() == f"focusmate {__version__}"

    created = ok(run(focusmate, "--profile", profile, "room", "create", "Pip test", cwd=tmp_path))
    assert re.search(r"[0-9A-Z]{7}-[0-9A-Z]{7}-[0-9A-Z]{7}", created), created
    assert "Pip test" in ok(run(focusmate, "--profile", profile, "room", "list", cwd=tmp_path))

    # No subcommand would open the window; without Qt it prints the overview instead.
    overview = run(focusmate, "--profile", profile, cwd=tmp_path)
    assert overview.returncode == 0, overview.stderr
    assert overview.stdout.startswith(f"FocusMate {__version__}")
    assert "Pip test" in overview.stdout
    assert "usage: focusmate" in overview.stdout
    assert overview.stderr == ""
