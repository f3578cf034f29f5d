"""Reading a process from /proc, as `top` would: its CPU time and its memory.

Standard library only: bench.gate_baselines measures processes that import nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1e6
MEMORY = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc stat file after the command name, which may hold spaces and
    parentheses: [1] is the parent's pid, [11] and [12] utime and stime in clock ticks."""
    return stat.read_text().rpartition(")")[2].split()


def cpu_seconds(stat: Path) -> float:
    """utime + stime of a process or thread (its /proc/.../stat), in seconds."""
    fields = stat_fields(stat)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid: int | str, keys: tuple[str, ...] = MEMORY) -> dict[str, int]:
    """Fields of /proc/PID/status that the kernel counts in kB (of 1024 bytes)."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            figures[key] = int(value.split()[0])
    missing = set(keys) - figures.keys()
    if missing:
        raise RuntimeError(f"no {', '.join(sorted(missing))} in /proc/{pid}/status")
    return figures


def memory_mb(pid: int | str = "self", keys: tuple[str, ...] = MEMORY) -> dict[str, float]:
    """VmRSS, VmHWM (the peak of VmRSS), and what VmRSS holds now: RssAnon (the process's
    own data) and RssFile (pages of the files it maps: libraries, mostly); in MB (10^6
    bytes)."""
    return {key: kib * 1024 / MB for key, kib in status_kib(pid, keys).items()}
