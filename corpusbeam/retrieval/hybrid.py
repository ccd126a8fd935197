"""Search modes and Reciprocal Rank Fusion.

A text query is searched in one of three modes:

- ``dense``: the query's embedding against the vector index;
- ``lexical``: BM25 over the chunks' text (``indexes.lexical.index``), no embedding;
- ``hybrid``: both, each taking its ``depth`` best chunks, fused as
  ``corpusbeam.retrieval.fusion`` says: by a convex combination of normalised scores, or
  by Reciprocal Rank Fusion (``rrf`` here; Cormack, Clarke and Büttcher, SIGIR 2009): a
  chunk's score is ``sum over rankings m of weight_m / (rrf_k + rank_m)`` (ranks from 1;
  a ranking the chunk is not in adds nothing), ``rrf_k = 60`` by default.

Hybrid is the default for text queries on folders that have a lexical index, dense
otherwise; image and vector queries are dense only. Every fused hit keeps its rank in each
ranking it came from (``Hit.ranks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from corpusbeam.errors import ConfigError

__all__ = ["HYBRID_DEPTH", "MODES", "RRF_K", "check_mode", "check_weights", "rrf"]

MODES = ("dense", "lexical", "hybrid")
RRF_K = 60
HYBRID_DEPTH = 100  # candidates each ranking gives the fusion (at least k)


def check_mode(mode: object) -> str:
    """``mode`` if it is one of ``MODES``, else ConfigError naming it."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ConfigError("mode", mode, f"unknown search mode; use one of {', '.join(MODES)}")
    return mode


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The per-ranking weights (``dense``, ``lexical``; 1.0 each by default), checked."""
    out = {"dense": 1.0, "lexical": 1.0}
    for name, w in (weights or {}).items():
        if name not in out:
            raise ConfigError("weights", name, "weights are for the rankings dense and lexical")
        if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0:
            raise ConfigError(f"weights.{name}", w, "must be a number >= 0")
        out[name] = float(w)
    return out


def rrf(
    rankings: Mapping[str, Sequence[int]],
    k: int,
    *,
    rrf_k: float = RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[int, float, dict[str, int]]]:
    """Fuse ``rankings`` (name -> ids, best first; negative ids are padding) into the
    ``k`` best ``(id, score, {name: rank})``, best first. Ties go to the better best rank,
    then the smaller id, so the order never depends on the input's order."""
    if rrf_k <= 0:
        raise ConfigError("rrf_k", rrf_k, "must be > 0")
    w = check_weights(weights) if weights is not None else None
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, ids in rankings.items():
        weight = 1.0 if w is None else w.get(name, 1.0)
        rank = 0
        for raw in ids:
            i = int(raw)
            if i < 0 or name in ranks.get(i, {}):
                continue
            rank += 1
            scores[i] = scores.get(i, 0.0) + weight / (rrf_k + rank)
            ranks.setdefault(i, {})[name] = rank
    order = sorted(scores, key=lambda i: (-scores[i], min(ranks[i].values()), i))
    return [(i, scores[i], ranks[i]) for i in order[:k]]
