"""Run every benchmark in ``bench/`` (``make bench``), each in its own bounded process.

A benchmark is a module ``bench/<name>.py`` with a module docstring and a top-level ``main``
(the contract is in ``bench/common.py``); it is found by reading the source, not by importing
it, so a broken benchmark cannot break the others. Each runs as
``python -m bench.<name> [--quick] --out DIR`` in its own process group: on timeout the group
gets SIGTERM (the benchmark stops its servers), then SIGKILL, and the failure is recorded.
Every benchmark's status lands in ``DIR/run_all.status.json`` (merged with earlier runs, so
``--only`` keeps the others'), its output in ``<logs>/<name>.log`` (a temporary directory for
the committed ``bench/results``, else ``DIR/logs``); then ``bench/report.py`` turns
``DIR/*.json`` into the Markdown.

Defaults: results in ``bench/results`` and the report in ``docs/benchmarks.md``; ``--quick``
(a seconds-long smoke run of every benchmark) writes both to a temporary directory instead, so
a smoke run never overwrites the committed figures. Exit status 1 when any benchmark failed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_RESULTS = BENCH_DIR / "results"
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
QUICK_OUT = Path(tempfile.gettempdir()) / "focusmate-bench-quick"
DEFAULT_LOGS = Path(tempfile.gettempdir()) / "focusmate-bench-logs"
NOT_BENCHMARKS = {"__init__", "common", "run_all", "report", "anchors", "loadgen"}
STATUS_FILE = "run_all.status.json"
FULL_TIMEOUT_S = 420.0  # a full run takes ~3 min at most; a module may set BENCH_TIMEOUT_S
QUICK_TIMEOUT_S = 120.0  # a quick run takes ~15 s; the margin is for a loaded machine
TERM_GRACE_S = 10.0  # between SIGTERM and SIGKILL: time to stop servers and write logs
TAIL_LINES = 20


@dataclass
class Outcome:
    """How one benchmark's run ended; ``status`` is ok, failed, timeout or no-result."""

    name: str
    status: str
    returncode: int | None
    seconds: float
    quick: bool
    finished_at: float
    result: str | None
    log: str
    detail: str = ""


def discover(bench_dir: Path) -> dict[str, float | None]:
    """The benchmark modules in ``bench_dir`` (a module docstring and a ``main``), each with
    the time limit it declares as ``BENCH_TIMEOUT_S = <seconds>`` (None when it does not)."""
    found: dict[str, float | None] = {}
    for path in sorted(bench_dir.glob("*.py")):
        if path.stem in NOT_BENCHMARKS or path.stem.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError:
            # Still listed: running it reports the error instead of silently dropping it.
            found[path.stem] = None
            continue
        has_main = any(
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main"
            for node in tree.body
        )
        if has_main and ast.get_docstring(tree):
            found[path.stem] = _declared_timeout(tree)
    return found


def _declared_timeout(tree: ast.Module) -> float | None:
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "BENCH_TIMEOUT_S" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int | float)
        ):
            return float(node.value.value)
    return None


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
            if sig == signal.SIGTERM:
                # The leader is gone; children it left in the group go too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def run_one(
    name: str, bench_dir: Path, out: Path, logs: Path, *, quick: bool, timeout_s: float
) -> Outcome:
    """Run ``bench_dir/<name>.py`` in its own process group, bounded by ``timeout_s``."""
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    result_path = out / f"{name}.json"
    argv = [sys.executable, "-m", f"{bench_dir.name}.{name}", *(["--quick"] if quick else [])]
    argv += ["--out", str(out)]
    env = dict(os.environ)
    # bench_dir's parent makes `<package>.<name>` importable; the repo root, `bench.common`.
    paths = [str(bench_dir.parent), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    started = time.time()
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
        try:
            returncode: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
            _kill_group(proc, TERM_GRACE_S)
        except BaseException:  # Ctrl-C: do not leave the benchmark running
            _kill_group(proc, TERM_GRACE_S)
            raise
    seconds = time.monotonic() - t0
    fresh = result_path.exists() and result_path.stat().st_mtime >= started - 1
    if returncode is None:
        status, detail = "timeout", f"killed after {timeout_s:g} s"
    elif returncode != 0:
        status, detail = "failed", f"exit status {returncode}"
    elif not fresh:
        status, detail = "no-result", f"exited 0 but wrote no {result_path.name}"
    else:
        status, detail = "ok", ""
    return Outcome(
        name=name,
        status=status,
        returncode=returncode,
        seconds=round(seconds, 1),
        quick=quick,
        finished_at=time.time(),
        result=str(result_path) if fresh else None,
        log=str(log_path),
        detail=detail,
    )


def _targets_summary(result_path: str | None) -> str:
    if result_path is None:
        return ""
    try:
        targets = json.loads(Path(result_path).read_text()).get("targets", [])
    except (OSError, ValueError):
        return "unreadable result"
    if not targets:
        return ""
    met = sum(1 for t in targets if t.get("met") is True)
    return f"targets {met}/{len(targets)} met"


def summary_line(outcome: Outcome, width: int) -> str:
    parts = [f"{outcome.name:<{width}}", f"{outcome.status:<9}", f"{outcome.seconds:7.1f} s"]
    if outcome.status == "ok":
        parts.append(_targets_summary(outcome.result))
    else:
        parts.append(f"{outcome.detail}; log: {outcome.log}")
    return "  ".join(p for p in parts if p)


def write_status(out: Path, outcomes: list[Outcome]) -> Path:
    """Merge this run's outcomes into ``out/run_all.status.json`` (one entry per benchmark)."""
    path = out / STATUS_FILE
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(path.read_text()).get("benchmarks", {})
    previous.update({o.name: asdict(o) for o in outcomes})
    body = {"kind": "run_all.status", "benchmarks": dict(sorted(previous.items()))}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_all", description="Run every benchmark in bench/, then write the report."
    )
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run of each")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results directory (default {DEFAULT_RESULTS}; --quick: a temp dir)",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        help=f"limit per benchmark (default: its BENCH_TIMEOUT_S, else {FULL_TIMEOUT_S:g} s; "
        f"--quick {QUICK_TIMEOUT_S:g} s)",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help=f"report path (default {DEFAULT_DOC} for the default --out, else OUT/benchmarks.md)",
    )
    parser.add_argument(
        "--logs", type=Path, help=f"benchmark output (default {DEFAULT_LOGS}, or OUT/logs)"
    )
    parser.add_argument("--no-report", action="store_true", help="only run the benchmarks")
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench_dir = args.bench_dir.resolve()
    out = (args.out or (QUICK_OUT if args.quick else DEFAULT_RESULTS)).resolve()
    doc = args.doc or (DEFAULT_DOC if out == DEFAULT_RESULTS else out / "benchmarks.md")
    # Logs stay out of the committed results directory.
    logs = args.logs or (DEFAULT_LOGS if out == DEFAULT_RESULTS else out / "logs")
    found = discover(bench_dir)
    names = list(found)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            print(f"run_all: unknown benchmark(s) {unknown}; found {names}", file=sys.stderr)
            return 2
        names = [n for n in names if n in wanted]
    if not names:
        print(f"run_all: no benchmarks in {bench_dir}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    limits = {
        name: args.timeout_s or (QUICK_TIMEOUT_S if args.quick else found[name] or FULL_TIMEOUT_S)
        for name in names
    }
    mode = "quick" if args.quick else "full"
    print(f"run_all: {len(names)} benchmark(s), {mode}, results in {out}")
    width = max(len(n) for n in names)
    outcomes = []
    for name in names:
        outcome = run_one(name, bench_dir, out, logs, quick=args.quick, timeout_s=limits[name])
        outcomes.append(outcome)
        write_status(out, outcomes)
        print(summary_line(outcome, width), flush=True)
        if outcome.status != "ok":
            tail = _tail(Path(outcome.log), 5)
            print("    " + tail.replace("\n", "\n    "), flush=True)
    status = 0 if all(o.status == "ok" for o in outcomes) else 1
    if not args.no_report:
        given = sys.argv[1:] if argv is None else argv
        command = (
            "make bench"
            if out == DEFAULT_RESULTS and not given
            else shlex.join(["python", "bench/run_all.py", *given])
        )
        report = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.report",
                "--results",
                str(out),
                "--doc",
                str(doc),
                "--notes-dir",
                str(bench_dir),
                "--command",
                command,
            ],
            cwd=REPO_ROOT,
            check=False,
        )
        status = status or (1 if report.returncode else 0)
    return status


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
