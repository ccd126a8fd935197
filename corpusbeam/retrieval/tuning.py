"""Choosing a folder's fusion on labelled queries (``corpusbeam evaluate --tune``).

    from corpusbeam.retrieval.tuning import labelled_rankings, tune

    lr = labelled_rankings(searcher, queries, qrels)   # each query searched once a mode
    best, table = tune(lr)                             # best: a Fusion with tuned=True

Each judged query is searched once dense and once lexical, ``HYBRID_DEPTH`` candidates a
ranking: the candidates a hybrid search of up to ``HYBRID_DEPTH`` hits fuses. Every fusion
of ``grid()`` is applied to those same candidates and scored as
``corpusbeam.retrieval.relevance`` scores a search (documents at their best chunk,
nDCG@10 and recall@100): convex with the dense weight ``0, 0.05, ..., 1`` (the lexical
weight is ``1 -`` it) and RRF with ``rrf_k`` in ``RRF_KS``. The best nDCG@10 wins; ties
go to the better recall@100, then to the weight nearer an even split, then to convex.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from corpusbeam.retrieval.fusion import Fusion, Ranking
from corpusbeam.retrieval.hits import hit_scores
from corpusbeam.retrieval.hybrid import HYBRID_DEPTH
from corpusbeam.retrieval.relevance import judged_queries, ndcg_at_k, recall_at_k

__all__ = ["RRF_KS", "LabelledRankings", "grid", "labelled_rankings", "measure", "tune"]

CONVEX_STEPS = 20  # the dense weight in steps of 1/20
RRF_KS = (5, 10, 20, 40, 60, 100)
_BATCH = 32


@dataclass(frozen=True)
class LabelledRankings:
    """The dense and lexical candidates of judged queries: ``qids``, their ``rankings``
    (``{"dense": (ids, scores), "lexical": (ids, scores)}``), ``judged`` (their qrels)
    and ``documents`` (chunk id -> document id)."""

    qids: list[str]
    rankings: list[dict[str, Ranking]]
    judged: list[Mapping[str, int]]
    documents: Mapping[int, str | None]

    def subset(self, qids: Sequence[str]) -> LabelledRankings:
        """The same candidates for ``qids`` only (a tuning half, a held-out half)."""
        pos = {q: i for i, q in enumerate(self.qids)}
        keep = [pos[q] for q in qids]
        return LabelledRankings(
            [self.qids[i] for i in keep],
            [self.rankings[i] for i in keep],
            [self.judged[i] for i in keep],
            self.documents,
        )


def labelled_rankings(
    searcher,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    depth: int = HYBRID_DEPTH,
) -> LabelledRankings:
    """Search each judged query once dense and once lexical (``searcher``: a ``Searcher``
    with a lexical index), ``depth`` candidates each."""
    searcher.resolve_mode("hybrid")  # a clear error when the folder has no lexical index
    judged = judged_queries(queries, qrels)
    qids = sorted(judged)
    rankings: list[dict[str, Ranking]] = []
    for start in range(0, len(qids), _BATCH):
        texts = [queries[q] for q in qids[start : start + _BATCH]]
        xq = searcher.embed_texts(texts)
        dense = searcher.folder.search(xq, depth, rescore=searcher.rescore)
        d_scores = hit_scores(dense.D, dense, searcher.dimensions)
        lex = searcher.lexical.search(texts, depth)
        for q in range(len(texts)):
            rankings.append(
                {
                    "dense": (dense.I[q].tolist(), d_scores[q].tolist()),
                    "lexical": (lex.I[q].tolist(), lex.D[q].tolist()),
                }
            )
    ids = sorted({i for r in rankings for ranked, _ in r.values() for i in ranked if i >= 0})
    rows = searcher.folder.lookup(np.asarray(ids, dtype=np.int64)) if ids else []
    documents = {int(row["id"]): row.get("document_id") for row in rows}
    return LabelledRankings(qids, rankings, [judged[q] for q in qids], documents)


def grid() -> list[Fusion]:
    """The fusions ``tune`` tries."""
    out = [
        Fusion(method="convex", weights={"dense": w, "lexical": round(1 - w, 4)})
        for w in (round(i / CONVEX_STEPS, 4) for i in range(CONVEX_STEPS + 1))
    ]
    return out + [Fusion(method="rrf", rrf_k=k) for k in RRF_KS]


def _ranked_documents(ids: Sequence[int], documents: Mapping[int, str | None]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for i in ids:
        d = documents.get(int(i)) if i >= 0 else None
        if d is not None and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def measure(lr: LabelledRankings, how: Fusion | str) -> dict[str, float]:
    """Mean nDCG@10 and recall@100 over ``lr``'s queries of a fusion, or of one ranking
    alone (``"dense"``, ``"lexical"``)."""
    ndcg = recall = 0.0
    for ranking, judged in zip(lr.rankings, lr.judged, strict=True):
        if isinstance(how, str):
            ids = ranking[how][0]
        else:
            ids = [i for i, _, _ in how.fuse(ranking, HYBRID_DEPTH)]
        docs = _ranked_documents(ids, lr.documents)
        ndcg += ndcg_at_k(docs, judged, 10)
        recall += recall_at_k(docs, judged, 100)
    n = max(len(lr.qids), 1)
    return {"ndcg@10": round(ndcg / n, 4), "recall@100": round(recall / n, 4)}


def tune(lr: LabelledRankings) -> tuple[Fusion, list[dict]]:
    """The best fusion of ``grid()`` on ``lr`` (``tuned=True``), and a table: one row a
    fusion tried (``{"fusion": describe(), "ndcg@10", "recall@100"}``), best first."""
    rows = [(f, measure(lr, f)) for f in grid()]

    def key(item: tuple[Fusion, dict[str, float]]) -> tuple:
        f, m = item
        evenness = abs(f.weights["dense"] - 0.5) if f.method == "convex" else 1.0
        return (-m["ndcg@10"], -m["recall@100"], evenness, f.method != "convex", f.rrf_k)

    rows.sort(key=key)
    best = replace(rows[0][0], tuned=True)
    return best, [{"fusion": f.describe(), **m} for f, m in rows]
