"""Evaluate an index folder: recall@k and latency against exact search.

``evaluate_folder(path)`` opens and verifies the folder, takes the given queries or a
seeded sample of its own vectors (each left out of its own results), computes the exact
k nearest from ``vectors.parquet`` (float, else int8, else Hamming: the most precise
vectors the folder holds) and searches
the index as a user would (tuned parameters, rescoring when the folder has it). The
``corpusbeam evaluate`` command prints the returned dict as JSON.
"""

from __future__ import annotations

import os
import time

import numpy as np

from indexes.build import training_sample
from indexes.folder import open_index
from indexes.tune import drop_ids, recall_at_k, reference_neighbours
from inference.errors import ConfigError

__all__ = ["evaluate_folder"]


def evaluate_folder(
    path: str | os.PathLike,
    *,
    xq: np.ndarray | None = None,
    k: int = 10,
    n_queries: int = 200,
    seed: int = 0,
    rescore: bool | None = None,
    params: dict[str, int] | None = None,
    latency_queries: int = 100,
    verify: bool = True,
) -> dict:
    """recall@k and mean single-query latency of the folder at ``path`` (see module doc)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError("k", k, "must be a positive integer")
    if n_queries < 1:
        raise ConfigError("n_queries", n_queries, "must be >= 1")
    folder = open_index(path, verify=verify)
    m = folder.manifest
    ids, xb, rv = folder.vectors()
    exclude = None
    if xq is None:
        rows = training_sample(ids.shape[0], n_queries, seed=seed)
        xq = xb[rows] if rv is None else rv[rows].astype(np.float32)
        exclude = ids[rows]
        source = "sampled from the indexed vectors, each left out of its own results"
    else:
        xq = np.asarray(xq)
        source = "given"
    I_gt, reference = reference_neighbours(
        xb, ids, xq, k, encoding=m.encoding, d=m.dimensions, rescore_vectors=rv, exclude=exclude
    )
    res = folder.search(xq, k + (exclude is not None), rescore=rescore, params=params)
    I = drop_ids(res.I, exclude, k)  # noqa: E741
    n_lat = min(latency_queries, xq.shape[0])
    t0 = time.perf_counter()
    for i in range(n_lat):
        folder.search(xq[i : i + 1], k, rescore=rescore, params=params)
    latency = (time.perf_counter() - t0) * 1000 / max(n_lat, 1)
    return {
        "path": os.fspath(path),
        "encoding": m.encoding,
        "index_factory": m.index_factory,
        "count": m.count,
        "k": k,
        "queries": int(xq.shape[0]),
        "source": source,
        "reference": reference,
        f"recall_at_{k}": round(recall_at_k(I, I_gt, k), 5),
        "latency_ms": round(latency, 4),
        "rescored": res.rescored,
        "search_params": {**m.search_params, **(params or {})},
        "manifest_recall": m.recall,
    }
