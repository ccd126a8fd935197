"""Relevance of search answers, measured with labelled queries (the BEIR layout).

    queries.jsonl   one {"_id": "q1", "text": "..."} a line
    qrels.tsv       query-id <TAB> corpus-id <TAB> score   (a header line is allowed)

Corpus ids are matched against the hits' ``document_id``. Hits are chunks: a document
counts once, at the rank of its best chunk (``depth`` chunks are fetched for that; a
hybrid search fuses ``HYBRID_DEPTH`` candidates of each ranking, as a search of up to that
many hits does, so its figures are those of the service's answers). For
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

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.hybrid import HYBRID_DEPTH, MODES

# The files and the metrics are below the query side, where the index job's quality gate
# (pipeline.gate) reads them too.
from indexes.building.labels import load_qrels, load_queries, mrr_at_k, ndcg_at_k, recall_at_k

__all__ = [
    "METRICS",
    "evaluate_relevance",
    "format_table",
    "judged_queries",
    "load_qrels",
    "load_queries",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "write_run",
]

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_BATCH = 64


def _documents(hits: Sequence, n: int) -> list[tuple[str, float]]:
    """(document id, score) of ``hits`` in order, each document once (at its best chunk),
    at most ``n``."""
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for h in hits:
        if h.document_id is not None and h.document_id not in seen:
            seen.add(h.document_id)
            out.append((h.document_id, h.score))
            if len(out) == n:
                break
    return out


def judged_queries(
    queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, Mapping[str, int]]:
    """The qrels of the queries that have a text and a relevant document; ConfigError
    when there is none."""
    judged = {q: j for q, j in qrels.items() if q in queries and any(s > 0 for s in j.values())}
    if not judged:
        raise ConfigError(
            "qrels", len(qrels), "no query of the qrels is in the queries with a relevant document"
        )
    return judged


def evaluate_relevance(
    searcher,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    modes: Sequence[str] | None = None,
    depth: int = 300,
    fusion=None,
    rankings: dict | None = None,
) -> dict:
    """nDCG@10, recall@10, recall@100 and MRR@10 of ``searcher`` (a ``Searcher``) on the
    labelled ``queries`` for each of ``modes`` (default: every mode the folder supports).
    Returns ``{"queries", "skipped", "depth", "modes": {mode: {metric: value}}}``, and
    ``"fusion"`` (``Fusion.describe()``) when hybrid was measured. ``fusion``: the hybrid
    fusion (``Searcher.fusion_for``; default the folder's). ``rankings``: when given, filled
    with ``{mode: {query id: [(document id, score), ...]}}`` (100 documents at most)."""
    if modes is None:
        modes = MODES if searcher.lexical is not None else ("dense",)
    modes = [searcher.resolve_mode(m) for m in modes]
    if depth < 100:
        raise ConfigError("depth", depth, "must be >= 100 (recall@100)")
    judged = judged_queries(queries, qrels)
    fuse = searcher.fusion_for(fusion)
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
            # hybrid fuses HYBRID_DEPTH candidates a ranking, as a search of k <= 100 does
            n = HYBRID_DEPTH if mode == "hybrid" else depth
            lists = searcher.search_texts(batch, n, mode=mode, vectors=xq, fusion=fuse)
            for qid, hits in zip(ids[start : start + _BATCH], lists, strict=True):
                scored = _documents(hits, 100)
                if rankings is not None:
                    rankings.setdefault(mode, {})[qid] = scored
                ranked = [d for d, _ in scored]
                j = judged[qid]
                sums["ndcg@10"] += ndcg_at_k(ranked, j, 10)
                sums["recall@10"] += recall_at_k(ranked, j, 10)
                sums["recall@100"] += recall_at_k(ranked, j, 100)
                sums["mrr@10"] += mrr_at_k(ranked, j, 10)
        results[mode] = {m: round(v / len(ids), 4) for m, v in sums.items()}
    out = {"queries": len(ids), "skipped": len(queries) - len(ids), "depth": depth}
    out["modes"] = results
    if "hybrid" in results:
        out["fusion"] = fuse.describe()
    return out


def write_run(
    path: str | os.PathLike, rankings: Mapping[str, Sequence[tuple[str, float]]], tag: str
) -> int:
    """Write ``rankings`` (query id -> [(document id, score)], best first) as a TREC run
    file, ``qid Q0 docid rank score tag`` a line (for trec_eval, ranx, pytrec_eval);
    returns the lines written. Those tools order a query's documents by score, equal
    scores by document id: a score that ties or exceeds the one above it (RRF ties often)
    is written just below it (1e-6 apart, relative: trec_eval keeps scores in single
    precision), so they keep this ranking."""
    if not tag or any(c.isspace() for c in tag):
        raise ConfigError("tag", tag, "must be one word")
    lines = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for qid in sorted(rankings):
            last = math.inf
            for rank, (doc, score) in enumerate(rankings[qid], start=1):
                for name, value in (("query id", qid), ("document_id", doc)):
                    if not value or any(c.isspace() for c in value):
                        raise ConfigError(name, value, "a run file's ids cannot hold spaces")
                score = min(float(score), last - 1e-6 * max(1.0, abs(last)))
                last = score
                f.write(f"{qid} Q0 {doc} {rank} {score:.10g} {tag}\n")
                lines += 1
    return lines


def format_table(result: dict) -> str:
    """``evaluate_relevance``'s result as an aligned text table, one line a mode."""
    lines = [f"{'mode':<8}" + "".join(f"{m:>12}" for m in METRICS)]
    for mode, values in result["modes"].items():
        lines.append(f"{mode:<8}" + "".join(f"{values[m]:>12.4f}" for m in METRICS))
    lines.append(f"{result['queries']} queries judged, {result['skipped']} without judgements")
    f = result.get("fusion")
    if f is not None:
        w = ", ".join(f"{n} {v:g}" for n, v in f["weights"].items())
        k = f", k {f['rrf_k']:g}" if "rrf_k" in f else ""
        tuned = "tuned" if f["tuned"] else "untuned"
        lines.append(f"hybrid fused by {f['method']} ({w}{k}), {tuned}")
    return "\n".join(lines)
