"""Disk held by a running index job's output folder, by kind of file, sampled over time.

The staging files (run files, IVF shards, the trained index) live only while the job runs
and are deleted at publishing, so their size has to be sampled while it runs.
``DiskSampler(output)`` walks the output folder every ``interval`` seconds in a thread,
sums the files' sizes by kind (``KINDS``) and keeps each kind's peak and the peak of the
total (MiB); with ``trace``, every sample is written to that file (unix time, total, then
each kind: tab-separated MiB, a header line first).

Only a local output folder can be sampled; the run's staging goes under it unless
``--temp_location`` moves it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks._sampling import PeriodicSampler

__all__ = ["KINDS", "DiskSampler", "kind_of"]

KINDS = (
    "runs",  # staging/runs/part-NNNNN/*.parquet: embedded rows, before the parts
    "ivf_shards",  # staging/shard-NNNNN.faiss: one part's vectors in the trained IVF
    "staging_other",  # the trained index, the part list, failures
    "parts",  # the version's parts/*.parquet: metadata and vectors by id range
    "lexical",  # the version's lexical/ segments
    "index",  # index.faiss (+ .ivfdata) and anything else of the version
    "other",  # files outside versions/ (CURRENT, the lock)
)


def kind_of(relative: str) -> str:
    """The kind of a file at ``relative`` (a path under the output folder, with ``/``)."""
    bits = relative.split("/")
    if len(bits) < 3 or bits[0] != "versions":
        return "other"
    folder, rest = bits[1], bits[2:]
    if folder.endswith("-staging.partial"):
        if rest[0] == "runs":
            return "runs"
        if rest[0].startswith("shard-"):
            return "ivf_shards"
        return "staging_other"
    if rest[0] == "parts":
        return "parts"
    if rest[0] == "lexical":
        return "lexical"
    return "index"


def _sizes(root: Path) -> dict[str, int]:
    """Bytes under ``root`` by kind; files vanishing while walked are skipped. A file with
    several hard links (a version's part shared with the live one) counts once."""
    out = dict.fromkeys(KINDS, 0)
    seen: set[tuple[int, int]] = set()
    for folder, _dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in files:
            try:
                st = os.stat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            path = name if rel == "." else f"{rel}/{name}"
            out[kind_of(path)] += st.st_size
    return out


class DiskSampler(PeriodicSampler):
    """Sample the output folder's disk by kind until ``stop()``; peaks in MiB."""

    def __init__(self, root: Path, interval: float = 1.0, trace: Path | None = None) -> None:
        super().__init__(interval, trace)
        self.root = root
        if self.trace:
            self.trace.write("time\ttotal\t" + "\t".join(KINDS) + "\n")
        self.peak_total = 0.0
        self.peaks = dict.fromkeys(KINDS, 0.0)

    def sample(self) -> None:
        if not self.root.is_dir():
            return
        mib = {k: v / (1 << 20) for k, v in _sizes(self.root).items()}
        total = sum(mib.values())
        self.peak_total = max(self.peak_total, total)
        for k, v in mib.items():
            self.peaks[k] = max(self.peaks[k], v)
        if self.trace:
            cells = "\t".join(f"{mib[k]:.1f}" for k in KINDS)
            self.trace.write(f"{time.time():.1f}\t{total:.1f}\t{cells}\n")
