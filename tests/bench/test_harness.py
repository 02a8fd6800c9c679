"""CI's smoke test of the benchmark harness (bench/run_all.py and bench/report.py).

The benchmarks themselves are not tests and CI never runs them in full. Here run_all drives
fake benchmark modules written to a temporary package, so this cannot break when the real
benchmarks change: one that writes a Result, one that hangs (with a child) and must be killed
as a process group, one that crashes; then the JSON, the ratios, the targets, the status file
and the generated Markdown and PNG are checked. One real benchmark (store_bench) goes through
the harness in --quick mode, a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import report, run_all

REPO = Path(__file__).resolve().parents[2]
RUN_ALL = REPO / "bench" / "run_all.py"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

FAST = '''
"""A fake benchmark: a Result with one anchor, two targets (one met) and two plot panels."""

import argparse
from pathlib import Path

from bench.common import Result, Target


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    Result(
        name="fast",
        title="A fake benchmark",
        subject_name="FocusMate thing",
        subject={"latency_ms": 2.0, "throughput": 100.0},
        anchors={"naive": {"latency_ms": 4.0, "throughput": 50.0}},
        units={"latency_ms": "ms", "throughput": "ops/s"},
        targets=[Target("latency_ms", "<=", 3.0, "ms"), Target("throughput", ">=", 200.0)],
        series={
            "latency vs size": {
                "x": "size (items)",
                "y": "latency (ms)",
                "data": {"FocusMate thing": [[1, 1.0], [10, 2.0]], "naive": [[1, 2], [10, 4]]},
            },
            "runs": [
                {"updates": 10, "ours_ms": 1.5, "naive_ms": 3.0},
                {"updates": 20, "ours_ms": 2.5, "naive_ms": 5.0},
            ],
            "spread_ms": {"subject": [0.1, 0.2, 0.3], "naive": [10.0, 20.0, 40.0]},
        },
        notes=["a note from the benchmark"],
        params={"loadavg": [0.5, 0.4, 0.3], "items": 10},
        quick=args.quick,
    ).write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''

HANG = '''
"""A fake benchmark that never ends, with a child process: the harness must kill both."""

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (args.out / "hang.child.pid").write_text(str(child.pid))
    time.sleep(600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''

CRASH = '''
"""A fake benchmark that fails."""


def main(argv=None):
    raise RuntimeError("boom")


if __name__ == "__main__":
    raise SystemExit(main())
'''

NOT_BENCHMARKS = {
    "helper.py": '"""Shared code, no main: not a benchmark."""\n\nVALUE = 1\n',
    "nodoc.py": "def main(argv=None):\n    return 0\n",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; its parent (init) reaps it shortly.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _run_all(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_ALL), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _write_fake_bench(package: Path) -> Path:
    package.mkdir()
    (package / "__init__.py").write_text('"""Fake benchmarks for the harness test."""\n')
    for name, source in {"fast.py": FAST, "hang.py": HANG, "crash.py": CRASH}.items():
        (package / name).write_text(textwrap.dedent(source).lstrip())
    for name, source in NOT_BENCHMARKS.items():
        (package / name).write_text(source)
    (package / "fast_notes.md").write_text("### Hand-written\n\nKEEP THIS ANALYSIS\n")
    return package


@pytest.fixture
def fake_bench(tmp_path: Path) -> Path:
    return _write_fake_bench(tmp_path / "fakebench")


@dataclass
class HarnessRun:
    proc: subprocess.CompletedProcess[str]
    out: Path
    elapsed_s: float

    def line(self, name: str) -> str:
        return next(line for line in self.proc.stdout.splitlines() if line.split()[:1] == [name])


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> HarnessRun:
    """One `run_all --quick` over the fake benchmarks (~10 s: one of them times out at 5 s)."""
    root = tmp_path_factory.mktemp("harness")
    package = _write_fake_bench(root / "fakebench")
    out = root / "out"
    started = time.monotonic()
    proc = _run_all("--quick", "--bench-dir", str(package), "--out", str(out), "--timeout-s", "5")
    return HarnessRun(proc, out, time.monotonic() - started)


@pytest.mark.slow
def test_every_benchmark_gets_a_summary_line_and_a_status(harness: HarnessRun) -> None:
    assert harness.proc.returncode == 1, harness.proc.stdout + harness.proc.stderr
    assert harness.elapsed_s < 60
    assert "ok" in harness.line("fast")
    assert "targets 1/2 met" in harness.line("fast")
    assert "failed" in harness.line("crash")
    assert "exit status 1" in harness.line("crash")
    status = json.loads((harness.out / "run_all.status.json").read_text())["benchmarks"]
    assert set(status) == {"fast", "hang", "crash"}  # helper.py and nodoc.py are not benchmarks
    assert status["fast"]["status"] == "ok"
    assert status["crash"]["result"] is None
    assert "RuntimeError: boom" in Path(status["crash"]["log"]).read_text()


@pytest.mark.slow
def test_a_hung_benchmark_is_killed_with_its_children(harness: HarnessRun) -> None:
    assert "timeout" in harness.line("hang")
    assert "killed after 5 s" in harness.line("hang")
    status = json.loads((harness.out / "run_all.status.json").read_text())["benchmarks"]
    assert status["hang"]["status"] == "timeout"
    assert status["hang"]["returncode"] is None
    child = int((harness.out / "hang.child.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


@pytest.mark.slow
def test_the_result_json_has_ratios_and_targets(harness: HarnessRun) -> None:
    result = json.loads((harness.out / "fast.json").read_text())
    assert result["quick"] is True
    assert result["ratios"] == {"naive": {"latency_ms": 0.5, "throughput": 2.0}}
    assert [t["met"] for t in result["targets"]] == [True, False]


@pytest.mark.slow
def test_the_report_has_tables_targets_notes_and_a_plot(harness: HarnessRun) -> None:
    doc = (harness.out / "benchmarks.md").read_text()
    assert "Generated page, do not edit: this copy by `python bench/run_all.py --quick " in doc
    assert "| [fast](#fast-a-fake-benchmark) | FocusMate thing | naive | 1/2 |" in doc
    assert "| hang | – | – | – | no result | timeout (killed after 5 s) |" in doc
    assert "| metric | FocusMate thing | naive | ratio |" in doc
    assert "| latency_ms (ms) | 2.00 | 4.00 | 0.50 |" in doc
    assert "| throughput (ops/s) | 100 | 50.0 | 2.00 |" in doc
    assert "* **met**: latency_ms ≤ 3.00 ms (measured 2.00 ms)" in doc
    assert "* **not met**: throughput ≥ 200 ops/s (measured 100 ops/s)" in doc
    assert "* a note from the benchmark" in doc
    assert "Quick smoke run" in doc
    assert "load average 0.50 0.40 0.30" in doc
    assert doc.rstrip().endswith("KEEP THIS ANALYSIS")  # fast_notes.md, verbatim
    png = harness.out / "bench" / "fast.png"
    if HAVE_MATPLOTLIB:
        assert "![A fake benchmark](bench/fast.png)" in doc
        header = png.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(header[16:20]), int.from_bytes(header[20:24])
        assert width > 800
        assert height > 300
    else:
        assert "matplotlib is not installed" in doc
        assert not png.exists()


def test_run_all_rejects_an_unknown_benchmark(fake_bench: Path, tmp_path: Path) -> None:
    proc = _run_all("--bench-dir", str(fake_bench), "--out", str(tmp_path), "--only", "nope")
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr


def test_discovery_needs_a_docstring_and_main(fake_bench: Path) -> None:
    assert run_all.discover(fake_bench) == {"crash": None, "fast": None, "hang": None}
    real = run_all.discover(REPO / "bench")
    assert real["relay_fanout"] == 900  # its BENCH_TIMEOUT_S
    assert not {"common", "run_all", "report", "__init__"} & set(real)


def _result(series: dict[str, Any]) -> dict[str, Any]:
    return {"name": "x", "title": "X", "subject_name": "ours", "anchors": {}, "series": series}


def test_report_reads_the_common_series_shapes() -> None:
    panels = report.panels_of(
        _result(
            {
                "spec": {"x": "n", "y": "ms", "kind": "bar", "data": {"a": [["p", 1.0]]}},
                "samples_ms": [3.0, 1.0, 2.0],
                "sorted_ms": {"subject": [0.1, 0.2], "naive": [100.0, 200.0]},
                "pairs_over_time_ms": [[0.0, 1.0], [1.0, 2.0]],
                "records": [{"updates": 1, "ours_ms": 2.0, "log_bytes": 9, "same": 1}] * 2,
            }
        )
    )
    shapes = [(p.title, p.kind, p.x, p.y, p.log, sorted(p.data)) for p in panels]
    assert shapes == [
        ("spec", "bar", "n", "ms", "", ["a"]),
        ("samples", "line", "sample", "samples (ms)", "", ["samples"]),
        (
            "sorted",
            "cdf",
            "sorted (ms, log scale)",
            "fraction of samples ≤ x",
            "x",
            ["naive", "subject"],
        ),
        ("pairs over time", "line", "time (s)", "pairs over time (ms)", "", ["pairs over time"]),
    ]  # the records' fields are all constant: nothing to plot
    by_mode = report.panels_of(
        _result(
            {
                "converge_ms": [
                    {"mode": "relay", "repeat": 0, "ms": 40.0},
                    {"mode": "relay", "repeat": 1, "ms": 20.0},
                    {"mode": "yjs", "repeat": 0, "ms": 10.0},
                ]
            }
        )
    )
    assert [(p.title, p.kind, p.x, p.y, p.data) for p in by_mode] == [
        (
            "converge (median of runs)",
            "bar",
            "mode",
            "ms",
            {"converge": [["relay", 30.0], ["yjs", 10.0]]},
        )
    ]
    with pytest.raises(ValueError, match="no known shape"):
        report.panels_of(_result({"odd": "text"}))


def test_report_units_and_numbers() -> None:
    assert report.split_unit("sqlite_per_commit_us_per_update") == (
        "sqlite per commit",
        "µs per update",
    )
    assert report.split_unit("delivered_per_s") == ("delivered", "/s")
    assert report.split_unit("ms") == ("", "ms")
    assert report.split_unit("updates") == ("updates", "")
    assert [report.fmt(v) for v in (36592.1, 35.69, 2.581, 0.000123, 0, 7)] == [
        "36,592",
        "35.7",
        "2.58",
        "0.000123",
        "0",
        "7",
    ]
    assert report.natural_key("p99 @ 500 upd/s") < report.natural_key("p99 @ 2000 upd/s")


@pytest.mark.slow
def test_a_real_benchmark_through_the_harness(tmp_path: Path) -> None:
    """store_bench --quick (a few seconds): the real contract, end to end."""
    if not (REPO / "bench" / "store_bench.py").exists():
        pytest.skip("bench/store_bench.py is not there")
    proc = _run_all(
        "--quick", "--only", "store_bench", "--out", str(tmp_path), "--timeout-s", "90", timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "store_bench.json").read_text())
    assert result["name"] == "store_bench"
    assert result["quick"] is True
    assert result["subject"]
    assert result["anchors"]
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "## store_bench: " in doc
    if HAVE_MATPLOTLIB and result.get("series"):
        assert (tmp_path / "bench" / "store_bench.png").exists()


def test_relay_fanout_writes_a_common_result(tmp_path: Path) -> None:
    """The adapter from relay_fanout's own report to the Result format, on the stored run."""
    details = REPO / "bench" / "results" / "relay_fanout.details.json"
    if not details.exists():
        pytest.skip("no stored relay_fanout run")
    from bench import relay_fanout

    result = relay_fanout.common_result(json.loads(details.read_text()))
    assert result.name == "relay_fanout"
    assert result.subject_name == "FocusMate relay"
    assert set(result.anchors) <= {"y-websocket (Node)", "pycrdt-websocket"}
    assert result.subject["saturated throughput"] > 0
    assert result.units["idle memory per connection, one shared room"] == "KiB"
    path = result.write(tmp_path)
    body = json.loads(path.read_text())
    assert body["ratios"]
    assert all(t["met"] is not None for t in body["targets"])
    assert {p.kind for p in report.panels_of(body)} == {"line", "bar"}
