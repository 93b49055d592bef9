"""CPU accounting from ``/proc``: of a process, of the whole machine, of this process.

The gateway is bound by one core, so its CPU time per complaint is the figure
that moves when its code gets cheaper or dearer; the machine's share says
whether the load generator and the broker left it a core to itself.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

#: (busy, steal, total) jiffies over all CPUs.
MachineSample = tuple[int, int, int]


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all threads), or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> MachineSample:
    """(busy, steal, total) jiffies over all CPUs, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, steal, total


def machine_share(before: MachineSample, after: MachineSample) -> dict[str, Any]:
    """Busy and steal shares of all CPUs (not of one) between two samples."""
    total = after[2] - before[2]
    if total <= 0:
        return {"busy": None, "steal": None}
    return {"busy": (after[0] - before[0]) / total, "steal": (after[1] - before[1]) / total}


def self_cpu() -> float:
    """CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU shares of some processes (of one core each) between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = pids
        self._before: dict[str, float | None] = {}
        self._machine: MachineSample = (0, 0, 0)

    def start(self) -> None:
        self._before = {
            name: process_cpu_seconds(pid) if pid else None for name, pid in self._pids.items()
        }
        self._machine = machine_cpu()

    def stop(self, seconds: float) -> dict[str, Any]:
        """``{<name>_cpu: share of one core, ..., machine_busy, machine_steal}``."""
        out: dict[str, Any] = {}
        for name, pid in self._pids.items():
            before = self._before.get(name)
            after = process_cpu_seconds(pid) if pid else None
            ok = before is not None and after is not None and seconds > 0
            out[f"{name}_cpu"] = (after - before) / seconds if ok else None  # type: ignore[operator]
        machine = machine_share(self._machine, machine_cpu())
        out["machine_busy"], out["machine_steal"] = machine["busy"], machine["steal"]
        return out
