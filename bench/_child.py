"""Child processes: the load generator and the raw producer run apart from the orchestrator.

A child is ``python -m bench.<module> ARGS``, run from the repository root.
It prints one ``RESULT {json}`` line on stdout (:func:`emit`), which
:func:`run_child` returns; anything else it prints is ignored, and its
stderr is shown if it fails. A process of its own keeps the child's CPU out
of the gateway's and the orchestrator's, and its event loop to itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_PREFIX = "RESULT "


def run_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` under uvloop when it is installed (as the gateway does)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def emit(result: dict[str, Any]) -> None:
    """Report the child's result to the orchestrator: one JSON line on stdout."""
    sys.stdout.write(_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_child(module: str, argv: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m bench.<module> argv`` to completion; return its RESULT line."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(_PREFIX):
            return dict(json.loads(line[len(_PREFIX) :]))
    raise RuntimeError(f"{module} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
