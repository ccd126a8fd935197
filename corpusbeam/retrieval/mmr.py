"""Maximal Marginal Relevance (Carbonell and Goldstein, SIGIR 1998): a ranking reordered
so each next hit is relevant *and* unlike the hits already chosen.

    order = mmr(scores, xb, k, diversity=0.3)    # positions into the candidates

Each step picks the candidate maximising
``(1 - diversity) * relevance - diversity * max cosine to the chosen ones``, where
``relevance`` is the candidate's score scaled to [0, 1] over the candidates (so BM25,
fused and cosine scores weigh alike) and the cosines are of the candidates' own vectors
(``candidate_vectors``). ``diversity`` 0 is the plain ranking, unchanged; 1 keeps only
the first hit's lead and then spreads out. Ties go to the better-ranked candidate.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from corpusbeam.errors import ConfigError

if TYPE_CHECKING:
    from indexes.reader import IndexFolder

__all__ = ["candidate_vectors", "check_diversity", "mmr"]

_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # folder -> its ids, ascending


def check_diversity(diversity: object) -> float:
    ok = isinstance(diversity, int | float) and not isinstance(diversity, bool)
    if not ok or not 0 <= diversity <= 1:  # type: ignore[operator]
        raise ConfigError("diversity", diversity, "must be a number in [0, 1] (0: off)")
    return float(diversity)  # type: ignore[arg-type]


def mmr(scores: np.ndarray, xb: np.ndarray, k: int, *, diversity: float) -> list[int]:
    """The first ``k`` positions of the MMR order of candidates with ``scores`` (n,)
    and unit vectors ``xb`` (n, d), best first."""
    diversity = check_diversity(diversity)
    n = len(scores)
    k = min(k, n)
    if diversity == 0 or n == 0:
        return list(range(k))
    s = np.asarray(scores, dtype=np.float64)
    span = s.max() - s.min()
    rel = (s - s.min()) / span if span > 0 else np.ones(n)
    sims = np.asarray(xb, dtype=np.float64) @ np.asarray(xb, dtype=np.float64).T
    chosen = [0]
    closest = sims[0].copy()  # each candidate's largest cosine to a chosen one
    left = np.ones(n, dtype=bool)
    left[0] = False
    while len(chosen) < k:
        value = (1 - diversity) * rel - diversity * closest
        value[~left] = -np.inf
        best = int(np.argmax(value))  # the first of equals: the better rank
        chosen.append(best)
        left[best] = False
        closest = np.maximum(closest, sims[best])
    return chosen


def candidate_vectors(folder: IndexFolder, ids: np.ndarray) -> np.ndarray:
    """Unit float vectors of ``ids`` (int64, present in the folder) read from its parts:
    the rescoring vectors when it has them, else the stored ones (binary as +-1)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return np.zeros((0, folder.manifest.dimensions), np.float32)
    all_ids = _IDS.get(folder)
    if all_ids is None:
        all_ids = _IDS[folder] = folder.parts.ids()
    pos = np.searchsorted(all_ids, ids)
    order = np.argsort(pos, kind="stable")
    _, xb, rescore = folder.parts.rows(pos[order])
    x = rescore if rescore is not None else xb
    if rescore is None and folder.manifest.metric == "hamming":
        raw = np.asarray(xb)
        if raw.dtype == np.int8:  # "binary": the ubinary byte minus 128
            raw = (raw.astype(np.int16) + 128).astype(np.uint8)
        bits = np.unpackbits(raw.astype(np.uint8), axis=1)[:, : folder.manifest.dimensions]
        x = bits.astype(np.float32) * 2 - 1
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    out[order] = x
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)
