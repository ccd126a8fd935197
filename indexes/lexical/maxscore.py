"""The compiled top-k loop of a lexical query over one segment: MaxScore with block skips.

The query's terms are ordered by their upper bound (idf times the largest of the term's
block maxima, ``indexes.lexical.blocks``). A document can only enter the top k when its
score beats the k-th best so far (``theta``), so the terms whose bounds add up to less
than ``theta`` are *non-essential*: a document that holds none of the others cannot
enter. The loop walks the union of the essential terms' postings (rows ascending) and
looks each candidate up in the non-essential terms, largest bound first, stopping as
soon as the score so far plus the remaining bounds cannot reach ``theta``. A lookup steps
forward when the row is near (dense terms) and otherwise skips whole blocks of postings
by their last row, then searches inside one block. As ``theta`` grows, more terms become
non-essential and fewer postings are read.

Exactness: a candidate that survives is scored exactly as the exhaustive scorer
(``LexicalIndex.scores``) scores it: each term's float32 weight summed in float64 in the
query's term order, then rounded to float32. Bounds carry a margin (``SLACK``) above
float32 rounding and ``theta`` is lowered a little more before any comparison, and a
document is skipped only when its bound is below ``theta``, so a document tied with the
k-th is still scored and wins on the smaller id, as the exhaustive ranking orders ties.
The heap keeps the k best by (score descending, id ascending).
"""

from __future__ import annotations

import numpy as np

from indexes.lexical.jit import njit

__all__ = ["SLACK", "segment_top_k"]

SLACK = 1e-5  # bounds are raised by this share: float32 rounding is ~1e-7 a step
_CUT = 1.0 - 2e-6  # theta lowered by this factor before any bound is compared with it
_END = np.int64(1) << 62  # the cursor of an exhausted term


@njit
def _better(s, i, hs, hi, at):
    """Whether (score s, id i) ranks before the heap entry ``at``."""
    return s > hs[at] or (s == hs[at] and i < hi[at])


@njit
def _sift_down(hs, hi, n, at):
    """Restore the heap (worst entry at the root) below ``at``."""
    while True:
        child = 2 * at + 1
        if child >= n:
            return
        if child + 1 < n and _better(hs[child], hi[child], hs, hi, child + 1):
            child += 1  # the worse of the two children
        if not _better(hs[at], hi[at], hs, hi, child):
            return
        hs[at], hs[child] = hs[child], hs[at]
        hi[at], hi[child] = hi[child], hi[at]
        at = child


@njit
def _push(hs, hi, fill, s, i):
    """Offer (s, i) to the heap of the k best; ``fill[0]`` is its size."""
    n = fill[0]
    k = hs.shape[0]
    if n < k:
        at = n
        hs[at], hi[at] = s, i
        while at > 0:  # sift up: a worse entry goes towards the root
            parent = (at - 1) // 2
            if not _better(hs[parent], hi[parent], hs, hi, at):
                break
            hs[at], hs[parent] = hs[parent], hs[at]
            hi[at], hi[parent] = hi[parent], hi[at]
            at = parent
        fill[0] = n + 1
    elif _better(s, i, hs, hi, 0):
        hs[0], hi[0] = s, i
        _sift_down(hs, hi, n, 0)


@njit
def _seek(rows, pos, cur, start, end, t, d, block):
    """Move term ``t``'s cursor to its first posting at a row >= ``d``: a few steps
    forward when it is near (dense terms), else block by block (each block's last row
    says whether ``d`` can be in it) and a binary search in the block."""
    p = pos[t]
    e = end[t]
    near = min(p + 8, e)
    while p < near and rows[p] < d:
        p += 1
    if p < near or p == e:
        pos[t] = p
        cur[t] = rows[p] if p < e else _END
        return
    j = (p - start[t]) // block
    stop = min(start[t] + (j + 1) * block, e)
    while rows[stop - 1] < d:
        j += 1
        p = start[t] + j * block
        if p >= e:
            pos[t], cur[t] = e, _END
            return
        stop = min(p + block, e)
    hi = stop - 1  # rows[hi] >= d: binary search for the first row >= d
    while p < hi:
        mid = (p + hi) // 2
        if rows[mid] < d:
            p = mid + 1
        else:
            hi = mid
    pos[t], cur[t] = p, rows[p]


@njit
def _lookup(
    rows, tf, norm, start, end, idf, prefix, ess, pos, cur, w, at, d, partial, theta, block
):
    """Score candidate ``d`` on the non-essential terms ``[0, ess)`` into ``w`` (marking
    ``at``), largest bound first; False as soon as it cannot reach ``theta``."""
    nd = norm[d]
    for j in range(ess - 1, -1, -1):
        if partial + prefix[j] < theta:
            return False
        if cur[j] < d:
            _seek(rows, pos, cur, start, end, j, d, block)
        if cur[j] == d:
            f = tf[pos[j]]
            w[j] = f / (nd + f) * idf[j]
            at[j] = d
            partial += w[j]
    return True


@njit
def _score(w, at, rank, d):
    """The exact score of row ``d``: its weights summed in the exhaustive scorer's order."""
    s = 0.0
    for t in range(rank.shape[0]):
        j = rank[t]
        if at[j] == d:
            s += w[j]
    return np.float32(s)


@njit
def _last(tf, rows, norm, start, end, idf, prefix, pos, cur, w, at, rank, mask, ids, hs, hi, fill,
          block):  # fmt: skip
    """The rest of the loop when only the last term (the largest bound) is essential:
    its postings one after the other, each looked up in the others if it can reach
    ``theta``, until ``theta`` leaves no term essential."""
    m = start.shape[0]
    j = m - 1
    below = prefix[j - 1]
    theta = _theta(hs, fill)
    p, e, weight = pos[j], end[j], idf[j]
    while p < e:
        d = rows[p]
        f = tf[p]
        x = f / (norm[d] + f) * weight
        p += 1
        if x + below < theta or (mask.shape[0] and not mask[d]):
            continue
        w[j] = x
        at[j] = d
        if not _lookup(rows, tf, norm, start, end, idf, prefix, j, pos, cur, w, at, d, x, theta,
                       block):  # fmt: skip
            continue
        _push(hs, hi, fill, _score(w, at, rank, d), ids[d])
        theta = _theta(hs, fill)
        if prefix[j] < theta:
            return


@njit
def _theta(hs, fill):
    return hs[0] * _CUT if fill[0] == hs.shape[0] else -1.0


@njit
def segment_top_k(rows, tf, norm, start, end, idf, ub, mask, ids, hs, hi, fill, block):
    """Offer the segment's matching rows to the heap (``hs`` scores, ``hi`` ids, ``fill``).

    Per query term ``t`` (in the exhaustive scorer's order): postings ``[start, end)``,
    ``idf`` and ``ub``, its bound. ``norm``: the segment's rows' length normalisation;
    ``mask``: rows that may match (empty: all); ``ids``: the rows' chunk ids; ``block``:
    the postings a block (``indexes.lexical.blocks.BLOCK``)."""
    m = start.shape[0]
    order = np.argsort(ub)  # the terms by bound, ascending: j-th is term order[j]
    start, end, idf = start[order], end[order], idf[order]
    prefix = np.empty(m, np.float64)  # bounds of the terms [0, j]
    acc = 0.0
    for j in range(m):
        acc += ub[order[j]] * (1.0 + SLACK)
        prefix[j] = acc
    pos = start.copy()
    cur = np.empty(m, np.int64)
    for j in range(m):
        cur[j] = rows[pos[j]] if pos[j] < end[j] else _END
    rank = np.empty(m, np.int64)  # term t is j = rank[t]
    rank[order] = np.arange(m)
    w = np.zeros(m, np.float32)
    at = np.full(m, -1, np.int64)  # the row w[j] is for
    theta = _theta(hs, fill)
    ess = 0
    while ess < m and prefix[ess] < theta:
        ess += 1
    while ess < m:
        if ess == m - 1 and ess > 0:  # one essential term left: a plain scan of its postings
            _last(tf, rows, norm, start, end, idf, prefix, pos, cur, w, at, rank, mask, ids,
                  hs, hi, fill, block)  # fmt: skip
            return
        d = cur[ess]
        for j in range(ess + 1, m):
            d = min(d, cur[j])
        if d == _END:
            break
        nd = norm[d]
        partial = 0.0
        for j in range(ess, m):  # the essential terms at d, their cursors moved on
            if cur[j] == d:
                p = pos[j]
                f = tf[p]
                w[j] = f / (nd + f) * idf[j]
                at[j] = d
                partial += w[j]
                pos[j] = p + 1
                cur[j] = rows[p + 1] if p + 1 < end[j] else _END
        if ess > 0 and partial + prefix[ess - 1] < theta:
            continue
        if mask.shape[0] and not mask[d]:
            continue
        if ess > 0 and not _lookup(
            rows, tf, norm, start, end, idf, prefix, ess, pos, cur, w, at, d, partial, theta, block
        ):
            continue
        _push(hs, hi, fill, _score(w, at, rank, d), ids[d])
        theta = _theta(hs, fill)
        while ess < m and prefix[ess] < theta:
            ess += 1
