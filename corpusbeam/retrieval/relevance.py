"""Relevance of search answers, measured with labelled queries (the BEIR layout).

    queries.jsonl   one {"_id": "q1", "text": "..."} a line
    qrels.tsv       query-id <TAB> corpus-id <TAB> score   (a header line is allowed)

Corpus ids are matched against the hits' ``document_id``. Hits are chunks: a document
counts once, at the rank of its best chunk (``depth`` chunks are fetched for that). For
each mode the folder supports, the mean over the judged queries of:

- ``ndcg@10``: sum of ``score / log2(rank + 1)`` over the top 10, divided by the same sum
  for the ideal order of the judged documents (linear gain, as trec_eval computes it);
- ``recall@10``, ``recall@100``: the share of the relevant documents (score > 0) found;
- ``mrr@10``: 1 / rank of the first relevant document in the top 10 (0 when none).

Queries with no relevant document in the qrels are not scored (they are counted as
``skipped``); a query id or corpus id that the other file does not know is an error only
when no query at all can be scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.hybrid import MODES

# The files and the metrics are below the query side, where the index job's quality gate
# (pipeline.gate) reads them too.
from indexes.building.labels import load_qrels, load_queries, mrr_at_k, ndcg_at_k, recall_at_k

__all__ = [
    "METRICS",
    "evaluate_relevance",
    "format_table",
    "load_qrels",
    "load_queries",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_BATCH = 64


def _documents(hits: Sequence, n: int) -> list[str]:
    """Document ids of ``hits`` in order, each once (at its best chunk), at most ``n``."""
    out: list[str] = []
    seen: set[str] = set()
    for h in hits:
        if h.document_id is not None and h.document_id not in seen:
            seen.add(h.document_id)
            out.append(h.document_id)
            if len(out) == n:
                break
    return out


def evaluate_relevance(
    searcher,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    modes: Sequence[str] | None = None,
    depth: int = 300,
) -> dict:
    """nDCG@10, recall@10, recall@100 and MRR@10 of ``searcher`` (a ``Searcher``) on the
    labelled ``queries`` for each of ``modes`` (default: every mode the folder supports).
    Returns ``{"queries", "skipped", "depth", "modes": {mode: {metric: value}}}``."""
    if modes is None:
        modes = MODES if searcher.lexical is not None else ("dense",)
    modes = [searcher.resolve_mode(m) for m in modes]
    if depth < 100:
        raise ConfigError("depth", depth, "must be >= 100 (recall@100)")
    judged = {q: j for q, j in qrels.items() if q in queries and any(s > 0 for s in j.values())}
    if not judged:
        raise ConfigError(
            "qrels", len(qrels), "no query of the qrels is in the queries with a relevant document"
        )
    ids = sorted(judged)
    texts = [queries[q] for q in ids]
    vectors = None
    if any(m != "lexical" for m in modes):
        vectors = np.concatenate(
            [searcher.embed_texts(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)]
        )
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        sums = dict.fromkeys(METRICS, 0.0)
        for start in range(0, len(ids), _BATCH):
            batch = texts[start : start + _BATCH]
            xq = None if vectors is None else vectors[start : start + _BATCH]
            lists = searcher.search_texts(batch, depth, mode=mode, vectors=xq)
            for qid, hits in zip(ids[start : start + _BATCH], lists, strict=True):
                ranked = _documents(hits, 100)
                j = judged[qid]
                sums["ndcg@10"] += ndcg_at_k(ranked, j, 10)
                sums["recall@10"] += recall_at_k(ranked, j, 10)
                sums["recall@100"] += recall_at_k(ranked, j, 100)
                sums["mrr@10"] += mrr_at_k(ranked, j, 10)
        results[mode] = {m: round(v / len(ids), 4) for m, v in sums.items()}
    return {
        "queries": len(ids),
        "skipped": len(queries) - len(ids),
        "depth": depth,
        "modes": results,
    }


def format_table(result: dict) -> str:
    """``evaluate_relevance``'s result as an aligned text table, one line a mode."""
    lines = [f"{'mode':<8}" + "".join(f"{m:>12}" for m in METRICS)]
    for mode, values in result["modes"].items():
        lines.append(f"{mode:<8}" + "".join(f"{values[m]:>12.4f}" for m in METRICS))
    lines.append(f"{result['queries']} queries judged, {result['skipped']} without judgements")
    return "\n".join(lines)
