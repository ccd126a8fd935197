"""Labelled queries in the BEIR layout, and the ranking metrics computed with them.

    queries.jsonl   one {"_id": "q1", "text": "..."} a line
    qrels.tsv       query-id <TAB> corpus-id <TAB> score   (a header line is allowed)

``corpusbeam.retrieval.relevance`` measures a ``Searcher`` with these (``corpusbeam
evaluate --qrels``); the index job's quality gate (``pipeline.gate``) measures a version
folder with them before it goes live. Plain Python: no index, no endpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from corpusbeam.errors import ConfigError

__all__ = ["load_qrels", "load_queries", "mrr_at_k", "ndcg_at_k", "recall_at_k"]


def load_queries(path: str | os.PathLike) -> dict[str, str]:
    """``{query id: text}`` of a BEIR ``queries.jsonl``; a bad line is an error naming it."""
    out: dict[str, str] = {}
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError("queries", f"{path}:{lineno}", f"not JSON ({exc.msg})") from None
            if (
                not isinstance(row, dict)
                or "_id" not in row
                or not isinstance(row.get("text"), str)
            ):
                raise ConfigError("queries", f"{path}:{lineno}", 'needs "_id" and a "text" string')
            if not row["text"].strip():
                raise ConfigError("queries", f"{path}:{lineno}", "empty query text")
            out[str(row["_id"])] = row["text"]
    if not out:
        raise ConfigError("queries", os.fspath(path), "holds no query")
    return out


def load_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """``{query id: {corpus id: score}}`` of a BEIR qrels TSV (header optional)."""
    out: dict[str, dict[str, int]] = {}
    with Path(path).open(encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise ConfigError(
                    "qrels", f"{path}:{lineno}", "expected query-id, corpus-id, score"
                )
            try:
                score = int(row[-1])
            except ValueError:
                if lineno == 1:
                    continue  # the header
                raise ConfigError(
                    "qrels", f"{path}:{lineno}", f"score {row[-1]!r} is not an integer"
                ) from None
            out.setdefault(row[0], {})[row[1]] = score
    if not out:
        raise ConfigError("qrels", os.fspath(path), "holds no judgement")
    return out


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of ``ranked`` document ids against graded judgements (linear gain)."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((s for s in judged.values() if s > 0), reverse=True)[:k]
    idcg = sum(s / math.log2(i + 2) for i, s in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """The share of the relevant (score > 0) documents in the top ``k``."""
    relevant = {d for d, s in judged.items() if s > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top ``k`` (0 when none)."""
    for i, d in enumerate(ranked[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0
