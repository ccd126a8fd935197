"""A lexical query's k best rows with dynamic pruning (``indexes.lexical.maxscore``), over
every segment of a ``LexicalIndex``, equal to exhaustive scoring (ids and scores).

The segments share one heap, oldest first, so the k-th best score found in one segment
already prunes the next. Rows that may not match (removed, shadowed, or outside a
filter's allowed ids) are skipped before they reach the heap: filters apply before
top-k (indexes of fewer than ``PRUNE_ROWS`` rows score every posting instead). Each
segment's block maxima come from its files, or are derived the first time a
query needs them when the segment was written without them (``indexes.lexical.blocks``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexes.lexical.blocks import BLOCK, block_maxima
from indexes.lexical.maxscore import segment_top_k

if TYPE_CHECKING:
    from indexes.lexical.index import LexicalIndex
    from indexes.lexical.read import Segment

__all__ = ["PRUNE_ROWS", "Bounds", "allowed_mask", "bounds_of", "top_k"]

# Below this many rows a query scores every posting (numpy, about a millisecond at
# 100,000 rows) and the process never loads numba, whose import and cached loop cost a
# fresh process about 0.6 s of CPU: a one-shot ``corpusbeam search`` of a small folder
# stays as fast as before. Both ways give the same ids and scores.
PRUNE_ROWS = 100_000

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Bounds:
    """A segment's block maxima (``blockptr``, ``blockmax``) and the factor that makes
    them bounds for the reader's average length (``scale``)."""

    blockptr: np.ndarray
    blockmax: np.ndarray
    scale: float


def bounds_of(index: LexicalIndex, i: int) -> Bounds:
    """Segment ``i``'s bounds: stored, or derived once and kept on the segment."""
    seg: Segment = index.segments[i]
    if seg.bounds is not None:
        return seg.bounds
    with _LOCK:
        if seg.bounds is None:
            seg.bounds = _bounds(index, seg)
    return seg.bounds


def _bounds(index: LexicalIndex, seg: Segment) -> Bounds:
    stored = seg.entry.get("blocks") or {}
    usable = (
        seg.blockmax is not None
        and stored.get("size") == BLOCK
        and float(stored.get("k1", -1)) == index.k1
        and float(stored.get("b", -1)) == index.b
    )
    if usable:
        scale = max(1.0, index.avgdl / float(stored["avgdl"]))
        return Bounds(seg.blockptr, seg.blockmax, scale)
    blockptr, blockmax = block_maxima(
        seg.indptr, seg.rows, seg.tf, seg.lengths, k1=index.k1, b=index.b, avgdl=index.avgdl
    )
    return Bounds(blockptr, blockmax, 1.0)


def allowed_mask(index: LexicalIndex, allowed: np.ndarray | None) -> np.ndarray:
    """The rows (one row space) that may match: live and, with ``allowed`` (sorted ids),
    allowed. Empty when every row may."""
    if allowed is None:
        return np.zeros(0, bool) if index.live is None else index.live
    mask = np.zeros(index.rows, dtype=bool)
    for seg, lo in zip(index.segments, index.offsets.tolist(), strict=False):
        ids = seg.ids
        if ids.shape[0] == 0 or allowed.size == 0:
            continue
        at = np.searchsorted(ids, allowed).clip(max=ids.shape[0] - 1)
        at = at[ids[at] == allowed]
        mask[lo + at] = True
    if index.live is not None:
        mask &= index.live
    return mask


def top_k(
    index: LexicalIndex, hashes: np.ndarray, k: int, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32, ids int64) of the k best rows for the query's term ``hashes``
    (sorted as the exhaustive scorer takes them), best first, ties by ascending id."""
    spans = [s.spans(hashes) for s in index.segments]
    df = sum((span[:, 1] - span[:, 0] for span in spans), np.zeros(hashes.size, np.int64))
    idf = np.log1p((index.rows - df + 0.5) / (df + 0.5)).astype(np.float32)
    heap_d = np.zeros(k, np.float32)
    heap_i = np.zeros(k, np.int64)
    fill = np.zeros(1, np.int64)
    for i, (seg, span) in enumerate(zip(index.segments, spans, strict=True)):
        found = np.flatnonzero(span[:, 1] > span[:, 0])
        if found.size == 0:
            continue
        bounds = bounds_of(index, i)
        at = np.searchsorted(seg.indptr, span[found, 0])  # each found term's number
        first, last = bounds.blockptr[at].tolist(), bounds.blockptr[at + 1].tolist()
        top = np.array([bounds.blockmax[a:e].max() for a, e in zip(first, last, strict=True)])
        lo, hi = int(index.offsets[i]), int(index.offsets[i + 1])
        segment_top_k(
            seg.rows,
            seg.tf,
            index.norm[lo:hi],
            np.ascontiguousarray(span[found, 0]),
            np.ascontiguousarray(span[found, 1]),
            idf[found],
            idf[found].astype(np.float64) * bounds.scale * top,
            mask[lo:hi] if mask.size else mask,
            seg.ids,
            heap_d,
            heap_i,
            fill,
            BLOCK,
        )
    n = int(fill[0])
    order = np.lexsort((heap_i[:n], -heap_d[:n]))
    return heap_d[:n][order], heap_i[:n][order]
