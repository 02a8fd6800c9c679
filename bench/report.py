"""Turn ``bench/results/*.json`` into ``docs/benchmarks.md`` and one PNG plot per benchmark.

Reads every file of the :class:`bench.common.Result` format (other JSON there, such as a
benchmark's detailed raw output or ``run_all.status.json``, is skipped or used for the status
column), and writes for each benchmark a section: what ran and when, a table of the subject's and
each anchor's figures with the ratios subject ÷ anchor, the targets with met / not met, the
notes, the plot, and ``bench/<name>_notes.md`` verbatim when it exists (hand-written analysis
survives regeneration there). The page is generated: edit the notes files or this module.

Plots come from ``Result.series``. The shape that gives a readable plot is one entry per panel::

    series = {
        "p99 latency vs offered load": {           # panel title
            "x": "offered load (updates/s)",       # axis labels, with units
            "y": "p99 latency (ms)",
            "kind": "line",                        # "line" (default) or "bar"
            "log": "xy",                           # optional: "x", "y" or "xy"
            "data": {                              # one line (or bar colour) per label
                "FocusMate relay": [[500, 2.6], [2000, 35.7]],
                "y-websocket (Node)": [[500, 2.7], [2000, 5.7]],
            },
        },
    }

Lines take ``[x, y]`` points; bars take ``[category, value]`` (bars of the same category sit
side by side). Labels that are the subject's or an anchor's name keep one colour across panels.
Bare ``{label: points}`` (points ``[x, y]`` or plain numbers, drawn against their index) is
plotted too, as a single panel without axis titles. Needs matplotlib (the ``bench`` extra);
without it the page is written without plots.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import statistics
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_RESULTS = BENCH_DIR / "results"
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
STATUS_FILE = "run_all.status.json"
RESULT_KEYS = {"name", "title", "subject_name", "subject", "anchors"}
PANELS_PER_ROW = 3
_TOKENS = re.compile(r"(\d+(?:\.\d+)?)|(\D+)")
OP_TEXT = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}
PALETTE = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)


# ---------------------------------------------------------------------------------------------
# Reading


def load_results(directory: Path) -> list[dict[str, Any]]:
    """Every Result-format JSON in ``directory``, by name; other JSON files are skipped."""
    results = []
    for path in sorted(directory.glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"report: skipping {path.name}: {exc}", file=sys.stderr)
            continue
        if isinstance(body, dict) and body.keys() >= RESULT_KEYS:
            results.append(body)
    return sorted(results, key=lambda r: str(r["name"]))


def load_status(directory: Path) -> dict[str, dict[str, Any]]:
    """run_all's last outcome per benchmark (empty when run_all never wrote into ``directory``)."""
    with contextlib.suppress(OSError, ValueError):
        body = json.loads((directory / STATUS_FILE).read_text())
        benchmarks = body.get("benchmarks", {})
        if isinstance(benchmarks, dict):
            return benchmarks
    return {}


def ratios_of(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The JSON's ratios (subject ÷ anchor), recomputed when absent."""
    stored = result.get("ratios")
    if isinstance(stored, dict):
        return stored
    subject = result["subject"]
    return {
        anchor: {m: subject[m] / v for m, v in figures.items() if m in subject and v}
        for anchor, figures in result["anchors"].items()
    }


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt(value: Any) -> str:
    """A figure for a table: thousands separated, about three significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if isinstance(value, int) or magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def when(result: Mapping[str, Any]) -> str:
    started = result.get("started_at")
    if not isinstance(started, int | float):
        return "unknown time"
    return datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine_description() -> str:
    """This machine: CPU model and count, memory, OS, Python (where the report was made)."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = f", {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 1024**3:.0f} GiB"
    return (
        f"{os.cpu_count()} × {model}{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load_note(params: Mapping[str, Any]) -> str:
    for key in ("loadavg", "load_average", "loadavg_start", "load"):
        value = params.get(key)
        if isinstance(value, str | int | float) or (
            isinstance(value, list) and all(isinstance(v, int | float) for v in value)
        ):
            numbers = value if isinstance(value, list) else [value]
            shown = " ".join(f"{v:.2f}" if _is_number(v) else str(v) for v in numbers)
            return f"; load average {shown}"
    return ""


def params_line(params: Mapping[str, Any]) -> str:
    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.4g}")
        if isinstance(value, list):
            return [rounded(v) for v in value]
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return value

    def short(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(rounded(value), ensure_ascii=False)
        return text if len(text) <= 80 else text[:77] + "…"

    return ", ".join(f"`{key}={short(value)}`" for key, value in params.items())


# ---------------------------------------------------------------------------------------------
# Plots


@dataclass
class Panel:
    """One plot panel: ``kind`` is line ([x, y] points), bar ([category, value]) or cdf
    (samples, drawn as the fraction of samples ≤ x)."""

    title: str
    x: str
    y: str
    kind: str
    log: str
    data: dict[str, list[Any]]


UNIT_WORDS = {
    "ns": "ns",
    "us": "µs",
    "ms": "ms",
    "s": "s",
    "bytes": "bytes",
    "kib": "KiB",
    "mib": "MiB",
    "pct": "%",
    "ups": "updates/s",
}
INDEX_NAMES = {"repeat", "run", "round", "trial", "i", "index"}  # not figures
X_NAMES = ("x", "t", "t_s", "time_s", "elapsed_s", "updates", "n", "size", "level", "clients")


def split_unit(name: str) -> tuple[str, str]:
    """``"sqlite_per_commit_us_per_update"`` -> ``("sqlite per commit", "µs per update")``:
    the unit starts at the first unit word (with a ``per`` before it: ``delivered_per_s``)."""
    words = name.split("_")
    if len(words) == 1 and name.lower() in UNIT_WORDS:  # {"updates": 10, "ms": 2.5}
        return "", UNIT_WORDS[name.lower()]
    for i, word in enumerate(words):
        if i and word.lower() in UNIT_WORDS:
            start = i - 1 if words[i - 1] == "per" and i > 1 else i
            unit = " ".join([*words[start:i], UNIT_WORDS[word.lower()], *words[i + 1 :]])
            unit = unit.replace("per s", "/s") if unit.startswith("per s") else unit
            return " ".join(words[:start]), unit
    return " ".join(words), ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(points: Any) -> bool:
    return isinstance(points, list) and bool(points) and all(_is_number(p) for p in points)


def _pairs(points: Any) -> bool:
    return (
        isinstance(points, list)
        and bool(points)
        and all(isinstance(p, list | tuple) and len(p) == 2 and _is_number(p[1]) for p in points)
    )


def _records(points: Any) -> bool:
    return isinstance(points, list) and bool(points) and all(isinstance(p, dict) for p in points)


def _sorted(values: Sequence[float]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


def _samples_panel(key: str, data: dict[str, list[Any]], unit: str) -> Panel:
    """Numbers per label: sorted ones are a distribution (CDF), others a run of samples."""
    base, guessed = split_unit(key)
    unit = unit or guessed
    if all(_numbers(v) and _sorted(v) for v in data.values()):
        positive = [x for v in data.values() for x in v if x > 0]
        # Subject and naive anchor often differ by orders of magnitude: log x shows both.
        log = "x" if positive and max(positive) > 100 * min(positive) else ""
        x = f"{base} ({unit}{', log scale' if log else ''})" if unit else base
        return Panel(base, x, "fraction of samples ≤ x", "cdf", log, data)
    return Panel(base, "sample", f"{base} ({unit})" if unit else base, "line", "", data)


def _record_panels(key: str, records: list[dict[str, Any]]) -> list[Panel]:
    """A list of dicts (one per run, say), one panel per unit. With a text field (``"mode":
    "relay"``) the text values are categories and each numeric field a bar of its median;
    else x is a known x name (or the record's number) and each non-constant field a line."""
    names = list(dict.fromkeys(k for r in records for k in r))
    title = split_unit(key)[0]
    category = next((n for n in names if all(isinstance(r.get(n), str) for r in records)), None)
    numeric = [
        n for n in names if n not in INDEX_NAMES and any(_is_number(r.get(n)) for r in records)
    ]
    groups: dict[str, dict[str, list[Any]]] = {}
    if category is not None:
        cats = list(dict.fromkeys(str(r[category]) for r in records))
        repeated = len(cats) < len(records)
        for name in numeric:
            label, unit = split_unit(name)
            points = []
            for cat in cats:
                values = [
                    r[name] for r in records if r[category] == cat and _is_number(r.get(name))
                ]
                if values:
                    points.append([cat, statistics.median(values)])
            groups.setdefault(unit, {})[label or title] = points
        return [
            Panel(
                (title if len(groups) == 1 else f"{title}: {unit or 'value'}")
                + (" (median of runs)" if repeated else ""),
                split_unit(category)[0],
                unit or "value",
                "bar",
                "",
                data,
            )
            for unit, data in groups.items()
        ]
    fields = [n for n in numeric if all(_is_number(r.get(n)) for r in records)]
    x_name = next((n for n in X_NAMES if n in fields), None)
    xs = [r[x_name] for r in records] if x_name else list(range(1, len(records) + 1))
    for name in fields:
        values = [r[name] for r in records]
        if name == x_name or (len(records) > 1 and len(set(values)) == 1):
            continue
        label, unit = split_unit(name)
        groups.setdefault(unit, {})[label or title] = [
            list(p) for p in zip(xs, values, strict=True)
        ]
    x_label = " ".join(filter(None, split_unit(x_name))) if x_name else "run"
    return [
        Panel(
            title if len(groups) == 1 else f"{title}: {unit or 'value'}",
            x_label,
            unit or "value",
            "line",
            "",
            data,
        )
        for unit, data in groups.items()
    ]


def panels_of(result: Mapping[str, Any]) -> list[Panel]:
    """The plot panels of ``result["series"]``: the documented shape (see the module
    docstring), else the best reading of common shapes; ValueError for anything else."""
    series = result.get("series") or {}
    units: Mapping[str, str] = result.get("units", {})
    if not isinstance(series, dict):
        raise ValueError("series is not a mapping")
    panels: list[Panel] = []
    for raw_key, value in series.items():
        key = str(raw_key)
        if isinstance(value, dict) and isinstance(value.get("data"), dict):
            panels.append(
                Panel(
                    title=key,
                    x=str(value.get("x", "")),
                    y=str(value.get("y", "")),
                    kind=str(value.get("kind", "line")),
                    log=str(value.get("log", "")),
                    data={str(k): list(v) for k, v in value["data"].items()},
                )
            )
        elif _records(value):
            panels += _record_panels(key, value)
        elif _numbers(value):
            panels.append(_samples_panel(key, {split_unit(key)[0]: value}, units.get(key, "")))
        elif _pairs(value):
            base, unit = split_unit(key)
            y = units.get(key) or unit
            x = "time (s)" if "time" in key or key.endswith("_t") else "x"
            panels.append(Panel(base, x, f"{base} ({y})" if y else base, "line", "", {base: value}))
        elif isinstance(value, dict) and value and all(_numbers(v) for v in value.values()):
            data = {str(k): list(v) for k, v in value.items()}
            panels.append(_samples_panel(key, data, units.get(key, "")))
        elif isinstance(value, dict) and value and all(_pairs(v) for v in value.values()):
            base, unit = split_unit(key)
            data = {str(k): list(v) for k, v in value.items()}
            panels.append(Panel(base, "x", unit or base, "line", "", data))
        else:
            raise ValueError(f"series {key!r}: no known shape (see bench/report.py)")
    return panels


def _xy(points: Sequence[Any]) -> tuple[list[Any], list[float]]:
    if _numbers(list(points)):
        return list(range(len(points))), [float(p) for p in points]
    if _pairs(list(points)):
        return [p[0] for p in points], [float(p[1]) for p in points]
    raise ValueError("points must be numbers or [x, y] pairs")


def colours(result: Mapping[str, Any], labels: Sequence[str]) -> dict[str, str]:
    """Subject first, then anchors in order, then other labels: one colour each, every panel.
    ``subject`` and ``ours`` are the subject's colour too."""
    subject = str(result.get("subject_name", ""))
    order = [subject, *map(str, result.get("anchors", {}))]
    order += [label for label in labels if label not in order]
    colour = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(order)}
    for alias in ("subject", "ours"):
        colour.setdefault(alias, PALETTE[0])
        if alias in labels and alias != subject:
            colour[alias] = PALETTE[0]
    return colour


def plot(result: Mapping[str, Any], path: Path) -> None:
    """Draw ``result``'s panels (three to a row) into one PNG at ``path``."""
    import matplotlib  # noqa: PLC0415 - optional (the bench extra); only needed for plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = panels_of(result)
    if not panels:
        return
    labels = [label for panel in panels for label in panel.data]
    colour = colours(result, labels)
    subject = {str(result.get("subject_name", "")), "subject", "ours"}
    cols = min(PANELS_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    try:
        for ax, panel in zip(axes.flat, panels, strict=False):
            categorical = panel.kind == "bar" or any(
                points and isinstance(points[0], list | tuple) and isinstance(points[0][0], str)
                for points in panel.data.values()
            )
            if categorical:
                _bars(ax, panel, colour)
            else:
                for label, points in panel.data.items():
                    if panel.kind == "cdf":
                        xs = sorted(float(p) for p in points)
                        ys = [(i + 1) / len(xs) for i in range(len(xs))]
                    else:
                        xs, ys = _xy(points)
                    many = len(xs) > 40  # markers would blur the line
                    ax.plot(
                        xs,
                        ys,
                        marker="" if many else "o",
                        markersize=4,
                        drawstyle="steps-post" if panel.kind == "cdf" else "default",
                        linewidth=2.4 if label in subject else 1.6,
                        color=colour[label],
                        label=label,
                    )
            if "x" in panel.log and not categorical:
                ax.set_xscale("log")
            if "y" in panel.log:
                ax.set_yscale("log")
            if panel.kind == "cdf":
                ax.set_ylim(0, 1.03)
            _ticks(ax, panel, categorical=categorical)
            ax.set_xlabel(panel.x)
            ax.set_ylabel(panel.y)
            ax.set_title(panel.title, fontsize=11)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        title = str(result.get("title", result.get("name", "")))
        if result.get("quick"):
            title += " (quick smoke run)"
        fig.suptitle(f"{title} — {when(result)}", fontsize=12)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".png.tmp")
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        plt.close(fig)


def _ticks(ax: Any, panel: Panel, *, categorical: bool) -> None:
    """Plain numbers on the axes ("2,000", not "2×10³"); a handful of x values get a tick each."""
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter  # noqa: PLC0415

    if not categorical and panel.kind != "cdf":
        xs = {x for points in panel.data.values() for x in _xy(points)[0] if _is_number(x)}
        if 1 <= len(xs) <= 8:  # e.g. offered load levels
            ax.set_xticks(sorted(xs))
    for axis in [ax.yaxis] if categorical else [ax.xaxis, ax.yaxis]:
        if axis.get_scale() == "log":
            axis.set_major_formatter(
                FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else fmt(v))
            )
            axis.set_minor_formatter(NullFormatter())
        elif all(float(v).is_integer() for v in axis.get_ticklocs()):
            axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        else:  # fractional ticks: matplotlib's own precision, but no offset or 1e3 notation
            plain = ScalarFormatter(useOffset=False)
            plain.set_scientific(False)
            axis.set_major_formatter(plain)


def _bars(ax: Any, panel: Panel, colour: Mapping[str, str]) -> None:
    categories: list[str] = []
    for points in panel.data.values():
        for category, _ in points:
            if str(category) not in categories:
                categories.append(str(category))
    width = 0.8 / max(1, len(panel.data))
    for i, (label, points) in enumerate(panel.data.items()):
        values = {str(c): float(v) for c, v in points}
        xs = [j + (i - (len(panel.data) - 1) / 2) * width for j, c in enumerate(categories)]
        ys = [values.get(c, math.nan) for c in categories]
        bars = ax.bar(xs, ys, width=width * 0.95, color=colour[label], label=label)
        ax.bar_label(bars, labels=[fmt(y) if math.isfinite(y) else "" for y in ys], fontsize=7)
    wrap = max(8, 48 // max(1, len(categories)))  # long category names on several lines
    ax.set_xticks(range(len(categories)), [textwrap.fill(c, wrap) for c in categories])
    ax.margins(y=0.12)


# ---------------------------------------------------------------------------------------------
# Markdown


def intro(command: str) -> list[str]:
    return [
        "# Benchmarks",
        "",
        f"<!-- Generated by `{command}` (bench/report.py) from the Result files in "
        "bench/results/. Do not edit: hand-written analysis goes in bench/<name>_notes.md, "
        "which is included verbatim. -->",
        "",
        f"*Generated page, do not edit: this copy by `{command}`. `make bench` runs every "
        "benchmark and rebuilds it from [`bench/results/`](../bench/results/); "
        "`python -m bench.report` rebuilds it alone from the stored results. Hand-written "
        "analysis comes from `bench/<name>_notes.md`.*",
        "",
        "How fast FocusMate is, measured side by side with *anchors*: each benchmark runs our "
        "code (the subject) and one or more anchors (a reference implementation, or the naive "
        "way) in the same run on the same machine, interleaved and repeated, and reports "
        "**ratios: subject ÷ anchor, from that same run**. Absolute figures move with the machine "
        "and its load, ratios much less. Whether above or below 1 is better depends on the "
        "metric: for times and memory lower is better, for throughput higher.",
        "",
        f"Machine: {machine_description()}. It is shared with other jobs, so each benchmark "
        "measures subject and anchors interleaved, keeps medians and records the load; rerun "
        "before trusting a small difference.",
        "",
        "```sh",
        "make bench                                  # every benchmark, full: bench/results/, "
        "this page, docs/bench/*.png",
        "python bench/run_all.py --only store_bench  # some of them (same outputs)",
        "python bench/run_all.py --quick             # seconds-long smoke run of each, into a "
        "temp dir",
        "python -m bench.report                      # only rebuild this page from bench/results/",
        "```",
        "",
        "Method, options and how to add a benchmark: [`bench/README.md`](../bench/README.md).",
        "",
    ]


def status_text(status: Mapping[str, Any] | None) -> str:
    if not status:
        return "–"
    text = str(status.get("status", "?"))
    if status.get("detail"):
        text += f" ({status['detail']})"
    return text


def summary_table(
    results: Sequence[Mapping[str, Any]], status: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    lines = [
        "| benchmark | subject | anchors | targets met | run | last `run_all` |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    names = {str(r["name"]) for r in results}
    for result in results:
        name = str(result["name"])
        targets = result.get("targets", [])
        met = sum(1 for t in targets if t.get("met") is True)
        lines.append(
            f"| [{name}](#{anchor_id(result)}) | {cell(str(result['subject_name']))} "
            f"| {cell(', '.join(result['anchors']) or '–')} "
            f"| {f'{met}/{len(targets)}' if targets else '–'} "
            f"| {when(result)}{', quick' if result.get('quick') else ''} "
            f"| {cell(status_text(status.get(name)))} |"
        )
    for name, entry in status.items():
        if name not in names:
            lines.append(f"| {name} | – | – | – | no result | {cell(status_text(entry))} |")
    return lines


def natural_key(text: str) -> list[Any]:
    """Sort key with numbers compared as numbers ("@ 500" before "@ 2000"): Result JSON is
    written with sorted keys, so the metrics' own order is lost anyway."""
    return [
        (0, float(part), "") if part else (1, 0.0, word) for part, word in _TOKENS.findall(text)
    ]


def anchor_id(result: Mapping[str, Any]) -> str:
    """GitHub's heading anchor for the section heading ``section_heading(result)``."""
    text = section_heading(result).lower()
    kept = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def section_heading(result: Mapping[str, Any]) -> str:
    return f"{result['name']}: {result.get('title') or result['name']}"


def metric_rows(result: Mapping[str, Any]) -> list[str]:
    subject = result["subject"]
    anchors: Mapping[str, Mapping[str, float]] = result["anchors"]
    units: Mapping[str, str] = result.get("units", {})
    ratios = ratios_of(result)
    metrics = list(subject) + [
        m for figures in anchors.values() for m in figures if m not in subject
    ]
    metrics = sorted(dict.fromkeys(metrics), key=natural_key)
    names = list(anchors)
    ratio_heads = ["ratio"] if len(names) == 1 else [f"ratio to {name}" for name in names]
    head = ["metric", str(result["subject_name"]), *names, *ratio_heads]
    lines = [
        "| " + " | ".join(cell(h) for h in head) + " |",
        "| --- |" + " ---: |" * (len(head) - 1),
    ]
    for metric in metrics:
        unit = units.get(metric, "")
        label = f"{metric} ({unit})" if unit else metric
        row = [cell(label), fmt(subject.get(metric))]
        row += [fmt(anchors[a].get(metric)) for a in names]
        row += [fmt_ratio(ratios.get(a, {}).get(metric)) for a in names] if names else []
        lines.append("| " + " | ".join(row) + " |")
    return lines


def target_lines(result: Mapping[str, Any]) -> list[str]:
    units: Mapping[str, str] = result.get("units", {})
    lines = []
    for target in result.get("targets", []):
        metric = str(target.get("metric"))
        unit = target.get("unit") or units.get(metric, "")
        got = result["subject"].get(metric)
        verdict = {True: "**met**", False: "**not met**"}.get(target.get("met"), "not measured")
        goal = f"{OP_TEXT.get(target.get('op'), target.get('op'))} {fmt(target.get('value'))}"
        measured = f"{fmt(got)} {unit}".strip() if got is not None else "no figure"
        lines.append(f"* {verdict}: {metric} {goal} {unit}".rstrip() + f" (measured {measured})")
    return lines


def section(
    result: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    notes_dir: Path,
    plot_link: str | None,
    plot_error: str | None,
) -> list[str]:
    name = str(result["name"])
    machine = result.get("machine", {}) or {}
    run = "quick smoke run" if result.get("quick") else "full run"
    lines = [f"## {section_heading(result)}", ""]
    lines.append(
        f"Subject: **{result['subject_name']}**; anchors: "
        f"{', '.join(result['anchors']) or 'none'}. {run.capitalize()} of {when(result)}, "
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}"
        f"{load_note(result.get('params', {}))}. "
        f"Rerun alone: `python bench/run_all.py --only {name}`."
    )
    lines.append("")
    if result.get("quick"):
        lines += ["**Quick smoke run: these figures are not representative.**", ""]
    if status and status.get("status") != "ok":
        stale = status.get("result") is None
        lines += [
            f"**Last `run_all` of this benchmark: {status_text(status)}**"
            + ("; the figures below are from an earlier run." if stale else "."),
            "",
        ]
    lines += metric_rows(result)
    targets = target_lines(result)
    if targets:
        lines += ["", "Targets:", "", *targets]
    notes = result.get("notes", [])
    if notes:
        lines += ["", "Notes:", "", *(f"* {note}" for note in notes)]
    params = result.get("params", {})
    if params:
        lines += ["", f"Parameters: {params_line(params)}."]
    if plot_link:
        lines += ["", f"![{cell(str(result.get('title', name)))}]({plot_link})"]
    elif plot_error:
        lines += ["", f"(No plot: {plot_error}.)"]
    notes_file = notes_dir / f"{name}_notes.md"
    if notes_file.exists():
        lines += ["", notes_file.read_text().rstrip("\n")]
    lines.append("")
    return lines


def render(
    results: Sequence[Mapping[str, Any]],
    status: Mapping[str, Mapping[str, Any]],
    doc: Path,
    notes_dir: Path,
    *,
    command: str = "python -m bench.report",
    plots: bool = True,
) -> str:
    """The whole page; plots go to ``<doc dir>/bench/<name>.png`` (linked relatively)."""
    lines = intro(command)
    if not results and not status:
        lines += ["No results yet: run `make bench`.", ""]
        return "\n".join(lines)
    lines += ["## Summary", "", *summary_table(results, status), ""]
    have_matplotlib = True
    if plots:
        try:
            import matplotlib  # noqa: F401, PLC0415
        except ImportError:
            have_matplotlib = False
    for result in results:
        name = str(result["name"])
        link = error = None
        if result.get("series"):
            if not plots:
                error = "plots disabled"
            elif not have_matplotlib:
                error = "matplotlib is not installed (`pip install -e '.[bench]'`)"
            else:
                try:
                    plot(result, doc.parent / "bench" / f"{name}.png")
                    link = f"bench/{name}.png"
                except Exception as exc:  # one odd series must not cost the whole page
                    error = f"series not plottable: {exc}"
                    print(f"report: {name}: {error}", file=sys.stderr)
        lines += section(result, status.get(name), notes_dir, link, error)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="report", description="Write docs/benchmarks.md from bench/results/*.json."
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument(
        "--notes-dir", type=Path, default=BENCH_DIR, help="where <name>_notes.md files live"
    )
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--command", default="python -m bench.report", help="what the page says made it"
    )
    args = parser.parse_args(argv)
    results = load_results(args.results)
    status = load_status(args.results)
    text = render(
        results, status, args.doc, args.notes_dir, command=args.command, plots=not args.no_plots
    )
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.doc.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, args.doc)
    print(f"report: {len(results)} result(s) -> {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
