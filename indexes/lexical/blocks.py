"""Block maxima of a segment's postings: the upper bounds that let a query skip postings.

A term's postings (rows ascending) are cut into blocks of ``BLOCK`` postings. For each
block the segment stores the largest BM25 term weight ``tf / (tf + k1 (1 - b + b dl /
avgdl))`` of its postings (``blockmax.npy``, float32), with ``blockptr.npy`` (int64, one
a term and one more) giving each term's first block. The weight needs the average
document length, and the segment knows only its own (``avgdl0``: its ``length`` over its
``count``); the reader's is over every segment (``A``). Every posting's weight grows with
the average length, and never by more than the factor ``A / avgdl0`` (for ``x, d >= 0``,
``(x + d / avgdl0) / (x + d / A) <= A / avgdl0`` when ``A >= avgdl0``), so the stored
maxima times ``max(1, A / avgdl0)`` bound the weights of any reader: exact for one
segment, a few percent loose when segments' average lengths differ.

``block_maxima`` computes them (numpy, a few million postings at a time); the writer
stores them, and a reader derives them on opening a segment written without them
(``SEGMENT_FILES`` of an older version) or with other ``k1``/``b``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK", "BLOCK_FILES", "avgdl_of", "block_maxima"]

BLOCK = 128  # postings a block
BLOCK_FILES = ("blockptr.npy", "blockmax.npy")


def avgdl_of(count: int, length: int) -> float:
    """A segment's own average document length (1.0 when empty), as its maxima use it."""
    return length / count if count and length else 1.0


_CHUNK = 1 << 22  # postings whose weights are computed at a time (16 MiB of float32)


def block_maxima(
    indptr: np.ndarray,
    rows: np.ndarray,
    tf: np.ndarray,
    lengths: np.ndarray,
    *,
    k1: float,
    b: float,
    avgdl: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(blockptr, blockmax)`` of one segment's term-major postings (``indptr``, ``rows``,
    ``tf``) and its rows' ``lengths``, with the average length ``avgdl``."""
    indptr = np.asarray(indptr, dtype=np.int64)
    df = np.diff(indptr)
    blocks = -(-df // BLOCK)
    blockptr = np.zeros(df.size + 1, dtype=np.int64)
    np.cumsum(blocks, out=blockptr[1:])
    norm = (k1 * ((1 - b) + b * np.asarray(lengths, dtype=np.float64) / avgdl)).astype(np.float32)
    out = np.zeros(int(blockptr[-1]), dtype=np.float32)
    if out.size == 0:
        return blockptr, out
    # Each block's first posting: its term's first posting plus 128 times its number.
    first = np.repeat(indptr[:-1], blocks) + BLOCK * (
        np.arange(out.size) - np.repeat(blockptr[:-1], blocks)
    )
    step = max(1, _CHUNK // BLOCK)
    for lo in range(0, out.size, step):  # whole blocks at a time: memory stays bounded
        hi = min(lo + step, out.size)
        a, e = int(first[lo]), int(first[hi]) if hi < out.size else int(indptr[-1])
        f = np.asarray(tf[a:e])
        w = f / (norm[np.asarray(rows[a:e])] + f)
        out[lo:hi] = np.maximum.reduceat(w, first[lo:hi] - a)
    return blockptr, out
