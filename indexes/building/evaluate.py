"""Evaluate an index folder: recall@k and latency against exact search.

``tune_build`` does the same while a folder is built: it tunes the search parameters
(``indexes.building.tune``) and measures the recall the manifest records.

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

from corpusbeam.errors import ConfigError
from indexes.ann.search import RescoreStore
from indexes.ann.spec import IndexSpec
from indexes.ann.train import training_sample
from indexes.building.tune import (
    TuneResult,
    drop_ids,
    recall_at_k,
    reference_neighbours,
    tune_index,
)
from indexes.config import BuildConfig
from indexes.reader import open_index
from indexes.storage.tables import FolderData

__all__ = [
    "RESCORE_FACTORS",
    "evaluate_folder",
    "traded",
    "trial_records",
    "tune_build",
    "tune_measured",
]

# Candidates a result that tuning tries for a compressed float index, cheapest first.
RESCORE_FACTORS = (2, 4, 8, 16, 32)

_SAMPLED = "sampled from the indexed vectors, each left out of its own results"


def _queries(
    ids: np.ndarray, xb: np.ndarray, rv: np.ndarray | None, xq, n_queries: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(queries, ids to leave out of their results, source): ``xq`` as given, else a seeded
    sample of the indexed vectors (their rescoring twins as float when there are any)."""
    if xq is not None:
        return np.asarray(xq), None, "given"
    rows = training_sample(ids.shape[0], n_queries, seed=seed)
    xq = xb[rows] if rv is None else rv[rows].astype(np.float32)
    return xq, ids[rows], _SAMPLED


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
    xq, exclude, source = _queries(ids, xb, rv, xq, n_queries, seed)
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


def tune_build(
    index,
    spec: IndexSpec,
    data: FolderData,
    *,
    config: BuildConfig,
    xq_eval: np.ndarray | None = None,
    store: RescoreStore | None = None,
    rescore_factor: int = 1,
) -> tuple[dict | None, float | None, dict[str, int]]:
    """Tune a new folder's index and measure recall@k on held-out queries (``xq_eval``, else
    ``config.eval_queries`` sampled ones); returns (recall dict, latency ms, params), or
    (None, None, {}) when no queries are wanted."""
    if config.eval_queries == 0 and xq_eval is None:
        return None, None, {}
    xb, ids, rv = data.xb, data.ids, data.rescore_vectors
    xq, exclude, source = _queries(ids, xb, rv, xq_eval, config.eval_queries, config.seed + 1)
    I_gt, ref = reference_neighbours(
        xb,
        ids,
        xq,
        config.k,
        encoding=spec.encoding,
        d=spec.dimensions,
        rescore_vectors=rv,
        exclude=exclude,
    )
    return tune_measured(
        index,
        spec,
        xq,
        I_gt,
        ref,
        config=config,
        store=store,
        rescore_factor=rescore_factor,
        exclude=exclude,
        source=source,
    )


def tune_measured(
    index,
    spec: IndexSpec,
    xq: np.ndarray,
    I_gt: np.ndarray,
    reference: str,
    *,
    config: BuildConfig,
    store: RescoreStore | None,
    rescore_factor: int,
    exclude: np.ndarray | None,
    source: str,
) -> tuple[dict, float, dict[str, int]]:
    """Tune ``index`` against the ground truth ``I_gt`` of the queries ``xq`` and return
    (the manifest's recall dict, latency ms, params): what a full build and an assembled
    folder record alike."""
    tuned = tune_index(
        index,
        spec,
        xq,
        I_gt,
        k=config.k,
        latency_budget_ms=config.latency_budget_ms,
        target_recall=config.target_recall,
        rescore=store,
        rescore_factor=rescore_factor,
        # A compressed float index's factor is tuned with nprobe (unless the config fixes it).
        rescore_factors=RESCORE_FACTORS if spec.rescore and not config.rescore_factor else None,
        exclude=exclude,
    )
    recall = {
        "k": config.k,
        "value": round(tuned.recall, 5),
        "queries": int(xq.shape[0]),
        "reference": reference,
        "source": source,
        "rescored": store is not None,
        # Every setting tried, for the recall-vs-latency curve (`corpusbeam report`).
        "trials": trial_records(tuned.trials),
        "tuning": traded(tuned, config),
    }
    return recall, round(tuned.latency_ms, 4), tuned.params


def traded(tuned: TuneResult, config: BuildConfig) -> dict:
    """What tuning traded: the setting chosen for the target and budget, with the tried
    setting just cheaper (what saving more would cost in recall) and the one just dearer
    (what more recall would cost in time), when there are such."""
    records = trial_records(tuned.trials)
    at = next((i for i, t in enumerate(records) if t["params"] == tuned.params), None)
    out = {
        "target_recall": config.target_recall,
        "latency_budget_ms": config.latency_budget_ms,
        "chosen": tuned.params,
        "recall": round(tuned.recall, 5),
        "latency_ms": round(tuned.latency_ms, 4),
        "tried": len(records),
    }
    if at is not None and at > 0:
        out["cheaper"] = records[at - 1]
    if at is not None and at + 1 < len(records):
        out["dearer"] = records[at + 1]
    return out


def trial_records(trials: list[dict]) -> list[dict]:
    """Tuning's trials as the manifest keeps them (rounded)."""
    return [
        {
            "params": t["params"],
            "recall": round(t["recall"], 5),
            "latency_ms": round(t["latency_ms"], 4),
        }
        for t in trials
    ]
