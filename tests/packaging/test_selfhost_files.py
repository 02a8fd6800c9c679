"""The self-hosting files (packaging/systemd, packaging/proxy, packaging/prometheus) do what
docs/self-hosting.md says: the units are valid and hardened, the relay runs inside their
sandbox, the backup unit makes a restorable backup, the proxies pass websockets and hide
/metrics, and the alerts are valid, fire when they should and use metrics the relay exports."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import platform
import re
import shlex
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from focusmate.identity import Identity
from focusmate.invite import new_room_secret, relay_token, room_id_for
from relay.__main__ import build_parser
from relay.config import Limits
from relay.server import Relay
from sync import control, handshake
from sync.ysync import SyncStep1, encode_message
from tests.integration.rediskit import running_redis
from tests.integration.relaykit import (
    DEADLINE,
    ControlClient,
    DocClient,
    base_url,
    limits,
    poll,
    relay_committed,
    running_relay,
    self_signed,
)
from tests.integration.synckit import free_port

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "packaging" / "systemd"
PROXY = REPO / "packaging" / "proxy"
PROMETHEUS = REPO / "packaging" / "prometheus"
UNIT = SYSTEMD / "focusmate-relay.service"
ENV_FILE = SYSTEMD / "focusmate-relay.env"
BINARY = "/usr/local/bin/focusmate-relay"
PUBLIC_NAME = "relay.example.org"
# What systemd gives a service that sets no PATH
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# -- reading unit and env files ---------------------------------------------------------------


def unit_settings(*paths: Path, section: str = "Service") -> dict[str, list[str]]:
    """Every value of every key in ``section``, in order (systemd keys repeat and accumulate,
    which configparser cannot represent). Later files act as drop-ins."""
    settings: dict[str, list[str]] = {}
    for path in paths:
        current = None
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                continue
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not a KEY=VALUE line: {raw!r}"
            if current == section:
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def env_file(path: Path, *, commented: bool = False) -> dict[str, str]:
    """The VAR=value lines of an EnvironmentFile (with ``commented``: also the ``#VAR=value``
    examples)."""
    found = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if commented and re.fullmatch(r"#[A-Z][A-Z0-9_]*=.*", line):
            line = line[1:]
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            found[match[1]] = match[2]
    return found


def relay_variables() -> set[str]:
    """Every FOCUSMATE_RELAY_* variable the relay reads: one per option of ``serve`` (named
    after it), plus one per limit."""
    options = set(vars(build_parser().parse_args(["serve"]))) - {"command", "limit"}
    names = {o.upper() for o in options} | {
        "LIMIT_" + n.upper() for n in Limits.__dataclass_fields__
    }
    return {"FOCUSMATE_RELAY_" + name for name in names}


def systemd_unescape(value: str) -> str:
    """What systemd runs for an Exec line with no specifiers but ``%%`` and ``$$``."""
    assert not re.search(r"%[^%]", value.replace("%%", "")), f"a specifier in {value!r}"
    return value.replace("%%", "%").replace("$$", "$")


# -- the service unit -------------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
}


def test_the_unit_runs_the_relay_as_its_own_user_with_every_hardening_setting() -> None:
    service = unit_settings(UNIT)
    for key, value in HARDENING.items():
        assert service.get(key, [None])[-1] == value, f"{key}={value} missing"
    assert "@system-service" in service["SystemCallFilter"]
    assert service["User"] == ["focusmate-relay"]
    assert service["ExecStart"] == [f"{BINARY} --data-dir /var/lib/focusmate-relay serve"]
    # ProtectSystem=strict leaves only these writable: the data and the unpacked runtime
    assert service["StateDirectory"] == ["focusmate-relay"]
    assert service["CacheDirectory"] == ["focusmate-relay"]
    assert service["Environment"] == ["TMPDIR=/var/cache/focusmate-relay"]
    # many websockets, and time for the relay's drain (10 s by default) and final commit
    assert int(service["LimitNOFILE"][0]) >= Limits().max_connections + 1024
    assert int(service["TimeoutStopSec"][0].removesuffix("s")) >= 2 * 10
    sysusers = (SYSTEMD / "focusmate-relay.sysusers").read_text()
    assert re.search(r"^u focusmate-relay ", sysusers, re.MULTILINE)


def test_built_in_tls_gets_the_certificate_and_port_443_and_nothing_more() -> None:
    service = unit_settings(UNIT, SYSTEMD / "focusmate-relay-tls.conf")
    credentials = dict(v.split(":", 1) for v in service["LoadCredential"])
    assert set(credentials) == {"tls-cert", "tls-key"}
    assert "FOCUSMATE_RELAY_TLS_CERT=%d/tls-cert" in service["Environment"]
    assert "FOCUSMATE_RELAY_TLS_KEY=%d/tls-key" in service["Environment"]
    assert service["CapabilityBoundingSet"] == ["", "CAP_NET_BIND_SERVICE"]
    assert service["AmbientCapabilities"][-1] == "CAP_NET_BIND_SERVICE"


def test_the_env_file_names_only_settings_the_relay_reads() -> None:
    known = relay_variables()
    for name in env_file(ENV_FILE, commented=True):
        if name.startswith("FOCUSMATE_RELAY_"):
            assert name in known, f"{name} is not a relay setting (a typo is silently ignored)"


def test_the_units_command_line_with_the_env_file_is_the_proxy_setup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("FOCUSMATE_RELAY_"):
            monkeypatch.delenv(name)
    for name, value in env_file(ENV_FILE).items():
        monkeypatch.setenv(name, value)
    argv = shlex.split(unit_settings(UNIT)["ExecStart"][0])
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert str(args.data_dir) == "/var/lib/focusmate-relay"
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    assert args.public_url == [f"wss://{PUBLIC_NAME}"]
    assert args.trust_forwarded_for is True
    assert args.tls_cert is None


def copy_for_verify(tmp_path: Path, *names: str, drop_in: str | None = None) -> list[Path]:
    """The units with the relay binary replaced by a stub, which verify needs to exist."""
    stub = tmp_path / "focusmate-relay"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    copies = []
    for name in names:
        text = (SYSTEMD / name).read_text()
        assert BINARY in text or not name.endswith(".service")
        text = text.replace(BINARY, str(stub))
        if drop_in and name == UNIT.name:
            text += "\n" + (SYSTEMD / drop_in).read_text()
        copy = tmp_path / name
        copy.write_text(text)
        copies.append(copy)
    return copies


@pytest.mark.parametrize("drop_in", [None, "focusmate-relay-tls.conf"])
def test_systemd_analyze_verifies_the_units(tmp_path: Path, drop_in: str | None) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units were only parsed")
    units = copy_for_verify(
        tmp_path,
        UNIT.name,
        "focusmate-relay-backup.service",
        "focusmate-relay-backup.timer",
        drop_in=drop_in,
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("name", [UNIT.name, "focusmate-relay-backup.service"])
def test_systemd_rates_the_units_exposure_low(tmp_path: Path, name: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    (unit,) = copy_for_verify(tmp_path, name)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    # 0 is a fully locked-down service, 10 an unprotected one; "OK" ends at 4.9.
    assert float(match[1]) <= 2.0, result.stdout


# -- the relay inside the unit's sandbox ------------------------------------------------------

# systemd's MemoryDenyWriteExecute= as the seccomp filter it installs (systemd < 254, and on
# kernels without PR_SET_MDWE; the kernel's own rule is laxer): mmap may not ask for write and
# execute together, mprotect/pkey_mprotect may not add execute, shmat may not use SHM_EXEC.
_SECCOMP = {
    "x86_64": (0xC000003E, {"mmap": 9, "mprotect": 10, "pkey_mprotect": 329, "shmat": 30}),
    "aarch64": (0xC00000B7, {"mmap": 222, "mprotect": 226, "pkey_mprotect": 288, "shmat": 196}),
}
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def memory_deny_write_execute_filter() -> bytes:
    """The filter as classic BPF over seccomp_data (nr at 0, arch at 4, args[2] at 32)."""
    ld, jeq, and_, ret = 0x20, 0x15, 0x54, 0x06
    allow = _bpf(ret, 0, 0, 0x7FFF0000)
    deny = _bpf(ret, 0, 0, 0x00050000 | 1)  # SECCOMP_RET_ERRNO | EPERM
    arch, numbers = _SECCOMP[platform.machine()]
    rules = [
        (numbers["mmap"], PROT_WRITE | PROT_EXEC),
        (numbers["mprotect"], PROT_EXEC),
        (numbers["pkey_mprotect"], PROT_EXEC),
        (numbers["shmat"], SHM_EXEC),
    ]
    program = [_bpf(ld, 0, 0, 4), _bpf(jeq, 1, 0, arch), allow, _bpf(ld, 0, 0, 0)]
    for i, (nr, _) in enumerate(rules):  # jump over the rest of the table to rule i's check
        program.append(_bpf(jeq, len(rules) - i + 5 * i, 0, nr))
    program.append(allow)
    for _, mask in rules:
        program += [_bpf(ld, 0, 0, 32), _bpf(and_, 0, 0, mask), _bpf(jeq, 0, 1, mask), deny, allow]
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def unit_sandbox() -> Callable[[], None]:
    """A preexec function applying what of the unit a process can do to itself: UMask=0077,
    NoNewPrivileges=yes and MemoryDenyWriteExecute=yes."""
    if sys.platform != "linux" or platform.machine() not in _SECCOMP:
        pytest.skip(f"the seccomp filter is written for Linux on {sorted(_SECCOMP)}")
    program = memory_deny_write_execute_filter()
    buffer = ctypes.create_string_buffer(program)
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        assert buffer  # the program must outlive unit_sandbox(): fprog points into it
        os.umask(0o077)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
            raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")

    return apply


_WX_PROBE = """
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
rw = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
wx = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC, flags, -1, 0)
print(rw != ctypes.c_void_p(-1).value, wx != ctypes.c_void_p(-1).value)
"""


def test_the_sandbox_emulation_refuses_writable_executable_memory() -> None:
    """Without this the next test would prove nothing."""
    probe = [sys.executable, "-c", _WX_PROBE]
    free = subprocess.run(probe, capture_output=True, text=True, check=True)
    assert free.stdout.split() == ["True", "True"]
    sandboxed = subprocess.run(
        probe, capture_output=True, text=True, check=True, preexec_fn=unit_sandbox()
    )
    assert sandboxed.stdout.split() == ["True", "False"]


@contextlib.asynccontextmanager
async def sandboxed_relay(data_dir: Path, env: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    """``python -m relay`` as the unit starts it (its command line, the env file, TMPDIR, the
    sandbox), on port 0; yields the process and its port once it listens."""
    argv = shlex.split(unit_settings(UNIT)["ExecStart"][0])
    argv = [a.replace("/var/lib/focusmate-relay", str(data_dir)) for a in argv[1:]]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        *argv,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=unit_sandbox(),
    )
    assert proc.stderr is not None
    lines: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(DEADLINE):
            while not any(e["event"] == "relay.listening" for e in lines):
                raw = await proc.stderr.readline()
                assert raw, f"the relay exited: {lines}"
                lines.append(json.loads(raw))
        port = next(e["port"] for e in lines if e["event"] == "relay.listening")
        yield {"proc": proc, "port": port, "lines": lines}
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def metric(body: bytes, name: str) -> float:
    families = text_string_to_metric_families(body.decode())
    return sum(s.value for f in families for s in f.samples if s.name == name)


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


@pytest.mark.slow
async def test_the_relay_serves_syncs_and_drains_inside_the_units_sandbox(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSMATE_RELAY_")}
    env.update(env_file(ENV_FILE))
    env["FOCUSMATE_RELAY_PORT"] = "0"
    env["TMPDIR"] = str(tmp_path / "cache")  # the unit's CacheDirectory, here
    (tmp_path / "cache").mkdir()
    data_dir = tmp_path / "data"
    async with sandboxed_relay(data_dir, env) as relay:
        proc, port = relay["proc"], relay["port"]
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.MULTILINE), "the filter is not on"

        secret = new_room_secret()
        url = f"ws://127.0.0.1:{port}/doc/{room_id_for(secret)}?token={relay_token(secret)}"
        alice, bob = await DocClient.open(url), await DocClient.open(url)
        await alice.set("task", "write the report")
        await bob.wait_value("task", "write the report")
        await alice.close()
        await bob.close()

        code, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/healthz")
        assert (code, json.loads(body)["storage"]) == (200, "ok")
        code, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        assert metric(body, "focusmate_relay_updates_received_total") >= 1
        assert b"_created" not in body  # PROMETHEUS_DISABLE_CREATED_SERIES from the env file

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
        assert proc.stderr is not None
        rest = (await proc.stderr.read()).decode().splitlines()
        assert [json.loads(line)["event"] for line in rest][-1] == "relay.stopped"
    # UMask=0077: the database is the relay user's alone
    assert (data_dir / "relay.db").stat().st_mode & 0o077 == 0


# -- the backup unit --------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_backup_unit_copies_a_serving_relay_and_keeps_two_weeks(tmp_path: Path) -> None:
    backup_unit = unit_settings(SYSTEMD / "focusmate-relay-backup.service")
    assert backup_unit["StateDirectory"] == ["focusmate-relay focusmate-relay-backups"]
    shim = tmp_path / "focusmate-relay"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m relay "$@"\n')
    shim.chmod(0o755)
    data_dir, backups = tmp_path / "data", tmp_path / "backups"
    backups.mkdir()

    def localise(line: str) -> list[str]:
        line = systemd_unescape(line).replace(BINARY, str(shim))
        line = line.replace("/var/lib/focusmate-relay-backups", str(backups))
        return shlex.split(line.replace("/var/lib/focusmate-relay", str(data_dir)))

    stale = backups / "relay-20200101T000000Z.db"
    stale.write_bytes(b"")
    month_ago = time.time() - 30 * 86400
    os.utime(stale, (month_ago, month_ago))

    secret = new_room_secret()
    async with running_relay(data_dir) as relay:
        url = f"{base_url(relay)}/doc/{room_id_for(secret)}?token={relay_token(secret)}"
        writer = await DocClient.open(url)
        await writer.set("k", "kept")
        await relay_committed(relay, room_id_for(secret), "k", "kept")
        for line in backup_unit["ExecStart"] + backup_unit["ExecStartPost"]:
            result = await asyncio.to_thread(
                subprocess.run,
                localise(line),
                cwd=REPO,
                env={**os.environ, "PATH": SYSTEMD_PATH},
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
        await writer.close()

    (made,) = backups.iterdir()  # the stale copy is gone
    assert re.fullmatch(r"relay-\d{8}T\d{6}Z\.db", made.name)
    restored = tmp_path / "restored"
    restore = [str(shim), "--data-dir", str(restored), "admin", "restore", str(made)]
    subprocess.run(restore, cwd=REPO, capture_output=True, check=True)
    async with running_relay(restored) as relay:
        url = f"{base_url(relay)}/doc/{room_id_for(secret)}?token={relay_token(secret)}"
        reader = await DocClient.open(url)
        await reader.wait_value("k", "kept")
        await reader.close()


# -- Prometheus -------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt install prometheus)")
    return path


def test_promtool_accepts_the_config_and_the_rules() -> None:
    tool = promtool()
    for command in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        result = subprocess.run(
            [tool, *command], cwd=PROMETHEUS, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def without_annotations(rules: str) -> str:
    """alerts.yml less its annotations blocks, which promtool's tests would otherwise have to
    repeat word for word."""
    kept, skipping = [], None
    for line in rules.splitlines():
        indent = len(line) - len(line.lstrip())
        if skipping is not None and (not line.strip() or indent > skipping):
            continue
        skipping = indent if line.strip() == "annotations:" else None
        if skipping is None:
            kept.append(line)
    return "\n".join(kept) + "\n"


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    labels = {"job": "focusmate-relay", "instance": "r", **labels}
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def fires(alert: str, at: str, *, severity: str, instance: str = "r") -> dict[str, Any]:
    labels = {"severity": severity, "job": "focusmate-relay", "instance": instance}
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels}]}


def quiet(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


def buckets(name: str, per_minute: dict[str, int], instance: str) -> list[dict[str, str]]:
    """A histogram's cumulative buckets, each growing by its count per minute."""
    return [
        series(f"{name}_bucket", f"0+{n}x40", instance=instance, le=le)
        for le, n in per_minute.items()
    ]


COMMIT = "focusmate_relay_commit_seconds"
REJECTED = "focusmate_relay_rejected_frames_total"
OPENED = "focusmate_relay_connections_opened_total"
ALERT_CASES: list[dict[str, Any]] = [
    {
        "name": "a relay that cannot be scraped is down after 2 minutes",
        "input_series": [series("up", "1 1 0 0 0 0 0")],
        "alert_rule_test": [
            quiet("FocusmateRelayDown", "3m"),
            fires("FocusmateRelayDown", "5m", severity="critical"),
        ],
    },
    {
        "name": "a failing /healthz probe",
        "input_series": [series("probe_success", "1 0 0 0 0", job="focusmate-relay-health")],
        "alert_rule_test": [
            {
                "eval_time": "4m",
                "alertname": "FocusmateRelayUnhealthy",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "job": "focusmate-relay-health",
                            "instance": "r",
                        }
                    }
                ],
            }
        ],
    },
    {
        "name": "a relay process cut off from Redis for a minute; a blip is quiet",
        "input_series": [
            series("focusmate_relay_redis_up", "1 0 1 1 1 1", instance="blip"),
            series("focusmate_relay_redis_up", "1 0 0 0 0 0", instance="cut"),
        ],
        "alert_rule_test": [
            quiet("FocusmateRelayRedisUnreachable", "1m"),
            fires("FocusmateRelayRedisUnreachable", "3m", severity="critical", instance="cut"),
        ],
    },
    {
        "name": "commits over 250 ms at p99 alert, commits under 100 ms do not",
        "input_series": [
            *buckets(COMMIT, {"0.1": 0, "0.25": 0, "0.5": 60, "+Inf": 60}, "slow"),
            *buckets(COMMIT, {"0.1": 60, "0.25": 60, "0.5": 60, "+Inf": 60}, "fast"),
        ],
        "alert_rule_test": [
            fires("FocusmateRelayCommitSlow", "20m", severity="warning", instance="slow")
        ],
    },
    {
        "name": "a fan-out over 500 ms at p99",
        "input_series": buckets(
            "focusmate_relay_fanout_latency_seconds", {"0.5": 0, "1.0": 100, "+Inf": 100}, "r"
        ),
        "alert_rule_test": [fires("FocusmateRelayFanoutSlow", "20m", severity="warning")],
    },
    {
        "name": "clients dropped for not reading, steadily; a single drop is quiet",
        "input_series": [
            series("focusmate_relay_slow_consumers_dropped_total", "0+1x60", instance="busy"),
            series("focusmate_relay_slow_consumers_dropped_total", "0 1x59", instance="calm"),
        ],
        "alert_rule_test": [
            fires("FocusmateRelaySlowConsumersDropped", "40m", severity="warning", instance="busy")
        ],
    },
    {
        "name": "connections near the cap, then refused",
        "input_series": [
            series("focusmate_relay_connections", "9000 12000x9", endpoint="control"),
            series("focusmate_relay_connections", "1000 5000x9", endpoint="doc"),
            series(REJECTED, "0 0 0 0 0 0 0 3 9 20", reason="max_connections"),
        ],
        "alert_rule_test": [
            quiet("FocusmateRelayNearConnectionCap", "3m"),
            fires("FocusmateRelayNearConnectionCap", "7m", severity="warning"),
            quiet("FocusmateRelayFull", "5m"),
            fires("FocusmateRelayFull", "9m", severity="critical"),
        ],
    },
    {
        "name": "handshakes failing (a wrong public URL); a few failures are quiet",
        "input_series": [
            series(OPENED, "0+10x60", instance="wrong-url", endpoint="control"),
            series(REJECTED, "0+10x60", instance="wrong-url", reason="bad_handshake"),
            series(OPENED, "0+10x60", instance="fine", endpoint="control"),
            series(REJECTED, "0+1x60", instance="fine", reason="bad_handshake"),
        ],
        "alert_rule_test": [
            fires(
                "FocusmateRelayHandshakesFailing", "40m", severity="warning", instance="wrong-url"
            )
        ],
    },
    {
        "name": "a stream of wrong room tokens, after 15 minutes of it",
        "input_series": [
            series(REJECTED, "0+60x40", reason="bad_token"),
            series(REJECTED, "0+60x40", reason="auth_failures"),
        ],
        "alert_rule_test": [
            quiet("FocusmateRelayLoginFailures", "20m"),
            fires("FocusmateRelayLoginFailures", "35m", severity="info"),
        ],
    },
]


def test_each_alert_fires_when_it_should_and_not_before(tmp_path: Path) -> None:
    tool = promtool()
    (tmp_path / "alerts.yml").write_text(
        without_annotations((PROMETHEUS / "alerts.yml").read_text())
    )
    cases = [{**case, "interval": "1m"} for case in ALERT_CASES]
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "alerts_test.yml").write_text(json.dumps(tests, indent=1))  # JSON is YAML
    result = subprocess.run(
        [tool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for case in ALERT_CASES for t in case["alert_rule_test"]}
    defined = set(re.findall(r"- alert: (\w+)", (PROMETHEUS / "alerts.yml").read_text()))
    assert tested == defined, f"alerts without a test: {defined - tested}"


def alert_expressions() -> list[str]:
    """Each rule's expr, its folded continuation lines joined."""
    exprs: list[str] = []
    lines = (PROMETHEUS / "alerts.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"(\s*)expr:\s*(.*)", line)
        if not match:
            continue
        parts = [] if match[2] in (">-", ">", "|") else [match[2]]
        for more in lines[i + 1 :]:
            if len(more) - len(more.lstrip()) <= len(match[1]):
                break
            parts.append(more.strip())
        exprs.append(" ".join(parts))
    return exprs


NOT_FROM_THE_RELAY = {
    "up": "Prometheus's own, per scrape target",
    "probe_success": "the blackbox exporter's, for the /healthz probe",
}


@pytest.mark.slow
async def test_alerts_use_series_the_relay_really_exports(tmp_path: Path) -> None:
    """Drive a real relay into every labelled case an alert matches on, then check each metric
    name and label value an alert uses against its /metrics."""
    secret = new_room_secret()
    async with running_relay(
        tmp_path, limits=limits(max_connections=2, auth_failures_per_ip_per_minute=2)
    ) as relay:
        doc = f"{base_url(relay)}/doc/{room_id_for(secret)}"
        guessed = f"{base_url(relay)}/doc/{room_id_for(new_room_secret())}"
        for _ in range(2):  # bad_token, twice: this address's budget for that room is spent
            wrong = await DocClient.open(guessed + "?token=" + relay_token(secret))
            await wrong.wait_closed()
        with pytest.raises(InvalidStatus):  # auth_failures: HTTP 429
            await DocClient.open(guessed + "?token=" + relay_token(secret))
        forged = await ControlClient.open(relay, Identity.generate(), address="wss://elsewhere")
        await forged.wait_closed()  # bad_handshake (one of the address's two failures on /v1)
        await poll(lambda: relay.admission.open == 0, "the refused connections to close")
        one = await DocClient.open(doc + "?token=" + relay_token(secret))
        two = await ControlClient.open(relay, Identity.generate())
        await two.expect(control.Welcome)
        with pytest.raises(InvalidStatus):  # max_connections: HTTP 503
            await DocClient.open(doc + "?token=" + relay_token(secret))
        await one.set("k", 1)
        _, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{relay.port}/metrics")
        await one.close()
        await two.close()
    async with (  # and a relay process sharing Redis, for the metrics only it has
        running_redis(tmp_path / "redis") as redis,
        running_relay(tmp_path / "shared", redis_url=redis.url) as shared,
    ):
        _, more = await asyncio.to_thread(http_get, f"http://127.0.0.1:{shared.port}/metrics")
    body += more

    families = text_string_to_metric_families(body.decode())
    samples = [sample for family in families for sample in family.samples]
    exported = {s.name for s in samples}
    label_values: dict[str, set[str]] = {}
    for sample in samples:
        for key, value in sample.labels.items():
            label_values.setdefault(key, set()).add(value)

    for expr in alert_expressions():
        for name in re.findall(r"\bfocusmate_[a-z0-9_]+", expr):
            assert name in exported, f"{name} (in {expr!r}) is not in the relay's /metrics"
        for key, op, value in re.findall(r'(\w+)\s*(=~|=|!=|!~)\s*"([^"]*)"', expr):
            if key in ("job", "instance"):
                continue
            wanted = value.split("|") if op == "=~" else [value]
            for one_value in wanted:
                assert one_value in label_values.get(key, set()), (
                    f'{key}="{one_value}" (in {expr!r}) is on no series the relay exports'
                )
    for name in NOT_FROM_THE_RELAY:
        assert any(re.match(rf"{name}\{{", expr) for expr in alert_expressions())


def test_the_alerts_name_the_jobs_prometheus_yml_scrapes() -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text()
    jobs = set(re.findall(r"^\s*- job_name:\s*(\S+)", config, re.MULTILINE))
    used = {job for expr in alert_expressions() for job in re.findall(r'job="([^"]+)"', expr)}
    assert used and used <= jobs, f"alerts name jobs {used - jobs} that are not scraped"
    assert re.search(r'targets: \["127\.0\.0\.1:8765"\]', config), "the relay's loopback port"


# -- reverse proxies --------------------------------------------------------------------------


def trusted_certificate(tmp_path: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A certificate for relay.example.org, its key, and a client context that trusts it."""
    cert, key = self_signed(
        tmp_path, PUBLIC_NAME, cert_name="fullchain.pem", key_name="privkey.pem"
    )
    return cert, key, ssl.create_default_context(cafile=str(cert))


def replaced(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is no longer in the proxy config; update this test"
    return text.replace(old, new)


@contextlib.contextmanager
def proxy_process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for_tls(port: int, context: ssl.SSLContext, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=PUBLIC_NAME
            )
            writer.close()
            return
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy did not come up:\n{log.read_text()}") from None
            await asyncio.sleep(0.05)


async def https_status(port: int, path: str, context: ssl.SSLContext) -> int:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=PUBLIC_NAME
    )
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {PUBLIC_NAME}\r\nConnection: close\r\n\r\n".encode()
    )
    status_line = await asyncio.wait_for(reader.readline(), DEADLINE)
    writer.close()
    return int(status_line.split()[1])


async def through_proxy(url: str, port: int, context: ssl.SSLContext) -> ClientConnection:
    """A websocket from 127.0.0.2 (so the relay can tell it from the proxy) that claims to be
    203.0.113.9 in its own X-Forwarded-For, which the relay must not believe."""
    return await connect(
        url,
        host="127.0.0.1",
        port=port,
        ssl=context,
        local_addr=("127.0.0.2", 0),
        additional_headers={"X-Forwarded-For": "203.0.113.9"},
        compression=None,
        max_size=None,
        proxy=None,
    )


async def check_proxy(relay: Relay, port: int, context: ssl.SSLContext) -> None:
    public = f"wss://{PUBLIC_NAME}:{port}"
    secret = new_room_secret()
    url = f"{public}/doc/{room_id_for(secret)}?token={relay_token(secret)}"
    alice = DocClient(await through_proxy(url, port, context))
    bob = DocClient(await through_proxy(url, port, context))
    for client in (alice, bob):
        await client.ws.send(encode_message(SyncStep1(client.doc.get_state())))
    await alice.set("task", "through the proxy")
    await bob.wait_value("task", "through the proxy")
    # per-address limits apply to the client, not the proxy and not the forged address
    assert {peer.ip for peer in relay.peers} == {"127.0.0.2"}

    me = Identity.generate()
    ws = await through_proxy(f"{public}/v1", port, context)
    challenge = control.decode(await ws.recv())
    assert isinstance(challenge, control.Challenge)
    await ws.send(control.encode(handshake.answer(me, challenge, address=public)))
    welcome = control.decode(await asyncio.wait_for(ws.recv(), DEADLINE))
    assert isinstance(welcome, control.Welcome) and welcome.user_id == me.user_id
    await ws.close()
    await alice.close()
    await bob.close()

    for path in ("/metrics", "/healthz", "/"):
        assert await https_status(port, path, context) == 404, path
    code, _ = await asyncio.to_thread(http_get, f"http://127.0.0.1:{relay.port}/metrics")
    assert code == 200  # where Prometheus scrapes it


@pytest.mark.slow
async def test_nginx_passes_websockets_with_the_client_address_and_hides_metrics(
    tmp_path: Path,
) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt install nginx-light)")
    cert, key, context = trusted_certificate(tmp_path)
    https, http = free_port(), free_port()
    async with running_relay(
        tmp_path / "data",
        trust_forwarded_for=True,
        public_urls=(f"wss://{PUBLIC_NAME}:{https}",),
    ) as relay:
        site = (PROXY / "nginx.conf").read_text()
        site = replaced(site, "listen 80;", f"listen 127.0.0.1:{http};")
        site = replaced(site, "listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
        site = replaced(site, "    listen [::]:80;\n", "")  # CI may have no IPv6
        site = replaced(site, "    listen [::]:443 ssl;\n", "")
        site = replaced(site, f"/etc/letsencrypt/live/{PUBLIC_NAME}/fullchain.pem", str(cert))
        site = replaced(site, f"/etc/letsencrypt/live/{PUBLIC_NAME}/privkey.pem", str(key))
        site = replaced(site, "127.0.0.1:8765", f"127.0.0.1:{relay.port}")
        (tmp_path / "site.conf").write_text(site)
        temp = tmp_path / "nginx-temp"
        temp.mkdir()
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\n"
            "worker_processes 1;\nevents { worker_connections 256; }\n"
            f"http {{\n access_log off;\n client_body_temp_path {temp}/body;\n"
            f" proxy_temp_path {temp}/proxy;\n fastcgi_temp_path {temp}/fastcgi;\n"
            f" uwsgi_temp_path {temp}/uwsgi;\n scgi_temp_path {temp}/scgi;\n"
            f" include {tmp_path}/site.conf;\n}}\n"
        )
        command = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        log = tmp_path / "nginx.log"
        with proxy_process([*command, "-g", "daemon off;"], dict(os.environ), log):
            await wait_for_tls(https, context, log)
            await check_proxy(relay, https, context)


@pytest.mark.slow
async def test_caddy_passes_websockets_with_the_client_address_and_hides_metrics(
    tmp_path: Path,
) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian: apt install caddy)")
    cert, key, context = trusted_certificate(tmp_path)
    https, http = free_port(), free_port()
    async with running_relay(
        tmp_path / "data",
        trust_forwarded_for=True,
        public_urls=(f"wss://{PUBLIC_NAME}:{https}",),
    ) as relay:
        site = (PROXY / "Caddyfile").read_text()
        # our own certificate instead of one from an ACME CA, and free ports
        site = replaced(site, f"{PUBLIC_NAME} {{", f"{PUBLIC_NAME} {{\n\ttls {cert} {key}")
        site = replaced(site, "127.0.0.1:8765", f"127.0.0.1:{relay.port}")
        options = (
            f"{{\n\tadmin off\n\thttp_port {http}\n\thttps_port {https}\n"
            f"\tstorage file_system {tmp_path}/caddy\n\tskip_install_trust\n}}\n\n"
        )
        config = tmp_path / "Caddyfile"
        config.write_text(options + site)
        env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")}
        log = tmp_path / "caddy.log"
        with proxy_process(
            [caddy, "run", "--config", str(config), "--adapter", "caddyfile"], env, log
        ):
            await wait_for_tls(https, context, log)
            await check_proxy(relay, https, context)
