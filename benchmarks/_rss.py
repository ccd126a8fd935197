"""Peak resident memory of a process and of its whole process tree, sampled from /proc.

``getrusage``'s ``ru_maxrss`` gives only the largest single process; a job that runs an
endpoint and worker processes beside the launcher needs their sum at each moment.
``RssSampler(pid)`` samples every ``interval`` seconds in a thread: the launcher's RSS (and
its anonymous part, without memory-mapped files), and the sum over the launcher and every
descendant, keeping the peaks (MiB); with ``trace``, every sample is written to that file
(unix time, tree, launcher, launcher's anonymous part: tab-separated MiB).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks._sampling import PeriodicSampler

__all__ = ["RssSampler", "anon_mib", "cpu_seconds", "rss_mib", "tree_pids"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    return int(fields[1]) * _PAGE / (1 << 20)


def anon_mib(pid: int) -> float:
    """Anonymous resident memory of ``pid`` in MiB (RSS without file-backed pages such as
    a memory-mapped index); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) ``pid`` has used so far, in seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # from the state on: utime, stime are 12, 13
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        out[int(p.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def tree_pids(root: int) -> list[int]:
    """``root`` and every process descending from it."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class RssSampler(PeriodicSampler):
    """Sample ``pid``'s RSS and its tree's summed RSS until ``stop()``; peaks in MiB."""

    def __init__(self, pid: int, interval: float = 0.1, trace: Path | None = None) -> None:
        super().__init__(interval, trace)  # trace: unix time, tree, launcher, anon
        self.pid = pid
        self.peak_launcher = 0.0
        self.peak_tree = 0.0
        self.peak_launcher_anon = 0.0

    def sample(self) -> None:
        launcher = rss_mib(self.pid)
        tree = sum(rss_mib(p) for p in tree_pids(self.pid))
        anon = anon_mib(self.pid)
        self.peak_launcher = max(self.peak_launcher, launcher)
        self.peak_launcher_anon = max(self.peak_launcher_anon, anon)
        self.peak_tree = max(self.peak_tree, tree)
        if self.trace:
            self.trace.write(f"{time.time():.1f}\t{tree:.0f}\t{launcher:.0f}\t{anon:.0f}\n")
