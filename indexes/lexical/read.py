"""Reading the lexical index's files back: each segment's arrays memory-mapped and checked,
the removed ids, and which rows are live (``indexes.lexical.index`` documents the rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from corpusbeam.errors import IndexFolderError
from indexes.lexical.blocks import BLOCK_FILES
from indexes.lexical.segment import SEGMENT_FILES

__all__ = ["Segment", "in_sorted", "mark_live", "read_removed"]


def _load(path: Path, dtype: type, ndim: int = 1) -> np.ndarray:
    """``path``'s array, memory-mapped (an empty one read), checked for dtype and rank."""
    if not path.is_file():
        raise IndexFolderError(f"{path}: the manifest lists a lexical index file that is missing")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # an empty array cannot be mapped
        x = np.load(path, allow_pickle=False)
    if x.dtype != dtype or x.ndim != ndim:
        raise IndexFolderError(f"{path}: expected a {ndim}-d {np.dtype(dtype)} array")
    # A plain ndarray over the same mapping: np.memmap's slicing costs microseconds a call.
    return x.view(np.ndarray)


class Segment:
    """One segment's arrays, memory-mapped, and which of its rows are live."""

    def __init__(self, path: Path, entry: dict) -> None:
        self.path = path
        self.name = entry["name"]
        self.entry = entry
        files = [_load(path / f, t) for f, t in zip(SEGMENT_FILES, _DTYPES, strict=True)]
        self.ids, self.lengths, self.terms, self.indptr, self.rows, self.tf = files
        n = int(entry["count"])
        if self.ids.shape[0] != n or self.lengths.shape[0] != n:
            raise IndexFolderError(f"{path}: the segment's ids and lengths disagree on the count")
        if self.indptr.shape[0] != self.terms.shape[0] + 1 or self.tf.shape != self.rows.shape:
            raise IndexFolderError(f"{path}: the segment's postings are inconsistent")
        if int(self.indptr[-1]) != self.rows.shape[0]:
            raise IndexFolderError(f"{path}: the segment's postings are inconsistent")
        self.live: np.ndarray | None = None  # a row mask, None when every row is live
        # Block maxima (indexes.lexical.blocks), absent from segments written before them.
        self.blockptr: np.ndarray | None = None
        self.blockmax: np.ndarray | None = None
        if "blocks" in entry:
            self.blockptr = _load(path / BLOCK_FILES[0], np.int64)
            self.blockmax = _load(path / BLOCK_FILES[1], np.float32)
            if self.blockptr.shape[0] != self.indptr.shape[0]:
                raise IndexFolderError(f"{path}: the segment's block maxima are inconsistent")
            if int(self.blockptr[-1]) != self.blockmax.shape[0]:
                raise IndexFolderError(f"{path}: the segment's block maxima are inconsistent")
        self.bounds: Any = None  # indexes.lexical.topk.Bounds, set on the first query

    def spans(self, hashes: np.ndarray) -> np.ndarray:
        """(len(hashes), 2) int64: the postings span ``[start, end)`` of each of ``hashes``
        (empty where the segment lacks the term)."""
        out = np.zeros((hashes.shape[0], 2), dtype=np.int64)
        if self.terms.shape[0] and hashes.shape[0]:
            at = np.searchsorted(self.terms, hashes).clip(max=self.terms.shape[0] - 1)
            found = self.terms[at] == hashes
            out[found, 0] = self.indptr[at[found]]
            out[found, 1] = self.indptr[at[found] + 1]
        return out


_DTYPES = (np.int64, np.float32, np.int64, np.int64, np.int32, np.float32)


def read_removed(folder: Path, files: list[str]) -> np.ndarray:
    """The removed ids of every listed file, sorted and unique."""
    parts = [np.asarray(_load(folder / f, np.int64)) for f in files]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def in_sorted(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of the ``values`` found in ``sorted_ids`` (ascending)."""
    if sorted_ids.size == 0:
        return np.zeros(values.shape[0], dtype=bool)
    at = np.searchsorted(sorted_ids, values).clip(max=sorted_ids.size - 1)
    return sorted_ids[at] == values


def mark_live(segments: list[Segment], removed: np.ndarray) -> None:
    """Set each segment's ``live`` mask: newest segment wins, removed ids never match
    unless re-added over an older segment's row (see the module's docstring)."""
    bounds = [(int(s.ids[0]), int(s.ids[-1])) for s in segments if s.ids.shape[0]]
    overlap = any(
        a[0] <= b[1] and b[0] <= a[1] for i, a in enumerate(bounds) for b in bounds[i + 1 :]
    )
    if not overlap:  # id-range parts: no id in two segments
        for s in segments:
            dead = in_sorted(np.asarray(s.ids), removed)
            s.live = ~dead if dead.any() else None
        return
    ids = np.concatenate([np.asarray(s.ids) for s in segments])
    seg = np.repeat(np.arange(len(segments)), [s.ids.shape[0] for s in segments])
    order = np.lexsort((seg, ids))  # by id, then oldest segment first
    sid = ids[order]
    first = np.r_[True, sid[1:] != sid[:-1]]
    last = np.r_[sid[1:] != sid[:-1], True]
    live_sorted = last & (~first | ~in_sorted(sid, removed))
    live = np.empty(ids.shape[0], dtype=bool)
    live[order] = live_sorted
    offset = 0
    for s in segments:
        n = s.ids.shape[0]
        mask = live[offset : offset + n]
        s.live = None if mask.all() else mask.copy()
        offset += n
