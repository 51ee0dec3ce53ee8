"""What the bench scripts measure of a process under load, read from /proc one way for all of them:
CPU-seconds (the figure that stays meaningful on a shared, busy machine) and peak memory.

Imported as `from _measure import ...`: a script run as `python bench/x.py` has bench/ on its path.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """User + system CPU-seconds of `pid`, all its threads, so far; with `tree`, plus those of its
    descendants still alive (HTTP workers, PostgreSQL backends). A process gone meanwhile counts 0."""
    pids = [pid]
    if tree:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _stat(int(entry))
                if stat is not None:
                    parents[int(entry)] = int(stat[1])
        frontier = [pid]
        while frontier:
            frontier = [p for p, pp in parents.items() if pp in frontier]
            pids.extend(frontier)
    total = 0
    for p in pids:
        stat = _stat(p)
        if stat is not None:
            total += int(stat[11]) + int(stat[12])  # utime, stime
    return total / TICK


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU-seconds of one thread of `pid` (the main thread: tid == pid)."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / TICK


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
