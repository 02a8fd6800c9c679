"""The doctor's findings and its report, shared by the local checks and the network ones
(``sync/doctor.py``) so that every check reads alike, as text or as ``--json``.

Each check is one :class:`Check`: OK, WARN or FAIL, what was found, and for anything not OK the
next step in plain words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

CREATE_PROFILE = (
    "Run `focusmate` once to create it. If your profile is somewhere else, point at it with "
    "--profile DIR or the FOCUSMATE_PROFILE environment variable."
)


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One finding. ``data`` holds figures for ``--json`` (sizes, counts, offsets)."""

    name: str
    status: Status
    detail: str
    next_step: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "next_step": self.next_step,
            "data": dict(self.data),
        }


def exit_code(checks: Sequence[Check]) -> int:
    """0 when everything is OK or only warned about, 1 when anything failed."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {s.value.lower(): sum(c.status is s for c in checks) for s in Status}


def report_dict(profile_dir: Path, checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "profile": str(profile_dir),
        "ok": exit_code(checks) == 0,
        "summary": summary(checks),
        "checks": [c.to_dict() for c in checks],
    }


def render_text(profile_dir: Path, checks: Sequence[Check]) -> str:
    """One line per check, then its next step indented below when it is not OK."""
    lines = [f"FocusMate doctor: {profile_dir}"]
    for check in checks:
        lines.append(f"{check.status.value:<4}  {check.name}: {check.detail}")
        if check.next_step:
            lines.append(f"      next: {check.next_step}")
    counts = summary(checks)
    if counts["fail"]:
        verdict = f"{counts['fail']} failed, {counts['warn']} warning(s), {counts['ok']} OK."
    elif counts["warn"]:
        verdict = f"No failures; {counts['warn']} warning(s), {counts['ok']} OK."
    else:
        verdict = f"All {counts['ok']} checks passed."
    lines.append(verdict)
    return "\n".join(lines)


def format_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def quote_path(path: Path) -> str:
    """``path`` as it can be pasted into the shell commands the advice gives."""
    text = str(path)
    return f'"{text}"' if any(c in text for c in " '\"$`\\") else text
