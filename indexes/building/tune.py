"""After the build: exact ground truth, recall@k, latency, and nprobe / efSearch tuning.

``tune_index`` tries the search parameter's values in increasing order on held-out
queries, measuring recall@k against exact search (``IndexFlatIP`` / ``IndexBinaryFlat``
over the same vectors) and the latency of one query at a time. It stops at the latency
budget, at ``target_recall``, or when recall has plateaued (gained less than ``plateau``
over two steps: the codes, not the search, limit it), then keeps the cheapest value whose
recall is within ``plateau`` of the best seen (or reaches the target). Values double, so
the first that reaches the target may cost up to twice the least that would: the gap to
the value before it is halved until it is under an eighth (``_refine``). autofaiss tunes
for latency alone and never measures recall; we record both, with every trial.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import faiss
import numpy as np

from corpusbeam.errors import ConfigError
from indexes.ann.search import RescoreStore, search, set_search_params
from indexes.ann.spec import IndexSpec, family_of
from indexes.ann.train import prepare_queries, prepare_vectors

__all__ = [
    "TuneResult",
    "drop_ids",
    "exact_search",
    "measure",
    "recall_at_k",
    "reference_neighbours",
    "tune_index",
]

_NPROBE = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_EF = (16, 32, 64, 128, 256, 512, 1024)


def exact_search(
    xb: np.ndarray, ids: np.ndarray, xq: np.ndarray, k: int, *, family: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest of prepared queries ``xq`` among prepared vectors ``xb``: inner
    product for float / int8 (as float32), Hamming for packed bits. Returns D, I (ids)."""
    if xb.ndim != 2 or xq.ndim != 2 or xb.shape[1] != xq.shape[1]:
        raise ConfigError("xq", xq.shape, f"does not match xb {xb.shape}")
    if ids.shape != (xb.shape[0],):
        raise ConfigError("ids", ids.shape, f"expected ({xb.shape[0]},)")
    k = min(k, xb.shape[0])
    if family == "binary":
        index = faiss.IndexBinaryFlat(xb.shape[1] * 8)
    else:
        index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    D, rows = index.search(xq, k)
    return D, np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)


def drop_ids(I: np.ndarray, exclude: np.ndarray | None, k: int) -> np.ndarray:  # noqa: E741
    """Row i of ``I`` without id ``exclude[i]``, cut to k (padded with -1).

    Queries sampled from the indexed vectors are held out of their own results this way
    (leave-one-out); otherwise each finds itself and recall looks better than it is.
    """
    if exclude is None:
        return I[:, :k]
    out = np.full((I.shape[0], k), -1, dtype=np.int64)
    for i, row in enumerate(I):
        kept = row[row != exclude[i]][:k]
        out[i, : kept.size] = kept
    return out


def reference_neighbours(
    xb: np.ndarray,
    ids: np.ndarray,
    xq: np.ndarray,
    k: int,
    *,
    encoding: str,
    d: int,
    rescore_vectors: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """True k nearest ids of ``xq`` by exact search over the most precise vectors there
    are: float rescoring vectors, else int8 ones, else the index's own encoding; ids in
    ``exclude`` (one a query) are left out. Returns (I_gt, a description of the reference)."""
    if rescore_vectors is not None and rescore_vectors.dtype == np.float32:
        ref = "exact inner product, float vectors"
        xr = prepare_vectors(rescore_vectors, "float", d)
        qr = prepare_queries(np.asarray(xq, dtype=np.float32), "float", d)
        family = "float"
    elif rescore_vectors is not None:
        ref = "exact inner product, int8 vectors"
        xr = rescore_vectors.astype(np.float32)
        q = np.asarray(xq)
        qr = q.astype(np.float32) if q.dtype == np.int8 else prepare_queries(q, "int8", d)
        family = "int8"
    else:
        family = family_of(encoding)
        ref = {
            "float": "exact inner product, float vectors",
            "int8": "exact inner product, int8 vectors",
            "binary": "exact Hamming distance",
        }[family]
        xr = prepare_vectors(xb, encoding, d)
        qr = prepare_queries(xq, encoding, d)
    extra = 0 if exclude is None else 1
    _, I_gt = exact_search(xr, ids, qr, k + extra, family=family)
    return drop_ids(I_gt, exclude, k), ref


def recall_at_k(I: np.ndarray, I_gt: np.ndarray, k: int) -> float:  # noqa: E741
    """Mean fraction of the true k nearest (``I_gt``) found in the first k of ``I``."""
    if I.shape[0] != I_gt.shape[0]:
        raise ConfigError("I", I.shape, f"expected {I_gt.shape[0]} rows like I_gt")
    hits = 0
    for got, want in zip(I[:, :k], I_gt[:, :k], strict=True):
        want = want[want >= 0]
        hits += np.intersect1d(got[got >= 0], want).size
    total = sum(int((row[:k] >= 0).sum()) for row in I_gt)
    return hits / total if total else 1.0


def measure(
    index,
    spec: IndexSpec,
    xq: np.ndarray,
    k: int,
    *,
    params: dict[str, int] | None = None,
    rescore: RescoreStore | None = None,
    rescore_factor: int = 4,
    latency_queries: int = 100,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Search all ``xq`` at once for I (without the ids in ``exclude``, one a query), then
    time up to ``latency_queries`` single-query searches; returns (I, mean ms a query)."""
    kw = {
        "encoding": spec.encoding,
        "d": spec.dimensions,
        "params": params,
        "rescore": rescore,
        "rescore_factor": rescore_factor,
    }
    res = search(index, xq, k + (0 if exclude is None else 1), **kw)
    m = min(latency_queries, xq.shape[0])
    t0 = time.perf_counter()
    for i in range(m):
        search(index, xq[i : i + 1], k, **kw)
    latency = (time.perf_counter() - t0) * 1000 / max(m, 1)
    return drop_ids(res.I, exclude, k), latency


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    """Chosen parameters with their recall@k and latency; every trial for the record."""

    params: dict[str, int]
    recall: float
    latency_ms: float
    k: int
    trials: list[dict] = field(default_factory=list)


def tune_index(
    index,
    spec: IndexSpec,
    xq: np.ndarray,
    I_gt: np.ndarray,
    *,
    k: int = 10,
    latency_budget_ms: float = 10.0,
    target_recall: float = 0.99,
    rescore: RescoreStore | None = None,
    rescore_factor: int = 4,
    rescore_factors: Sequence[int] | None = None,
    plateau: float = 0.002,
    exclude: np.ndarray | None = None,
) -> TuneResult:
    """Pick ``spec.search_param``'s value (see the module docstring); with
    ``rescore_factors`` (and a ``rescore`` store) the rescoring factor too, as
    ``params["rescore_factor"]``: for each value of the search parameter, the factors in
    increasing order until one reaches the target."""
    if latency_budget_ms <= 0:
        raise ConfigError("latency_budget_ms", latency_budget_ms, "must be positive")
    if not 0 < target_recall <= 1:
        raise ConfigError("target_recall", target_recall, "must be in (0, 1]")
    factors = list(rescore_factors) if rescore_factors and rescore is not None else []
    kw = {"rescore": rescore, "exclude": exclude}
    if spec.search_param is None:
        values: list[int | None] = [None]
    elif spec.search_param == "nprobe":
        values = [v for v in _NPROBE if v <= spec.nlist] or [1]
    else:
        values = [v for v in _EF if v >= k] or [max(k, 16)]
    trials: list[dict] = []
    best_by_value: list[float] = []
    for v in values:
        params = {} if v is None else {spec.search_param: v}
        row = []
        for f in factors or [rescore_factor]:
            I, lat = measure(index, spec, xq, k, params=params, rescore_factor=f, **kw)  # noqa: E741
            trial = {"params": {**params, **({"rescore_factor": f} if factors else {})}}
            trial |= {"recall": recall_at_k(I, I_gt, k), "latency_ms": lat}
            trials.append(trial)
            row.append(trial)
            if lat > latency_budget_ms or trial["recall"] >= target_recall:
                break
        best_by_value.append(max(t["recall"] for t in row))
        if any(t["recall"] >= target_recall and t["latency_ms"] <= latency_budget_ms for t in row):
            break
        if row[0]["latency_ms"] > latency_budget_ms:
            break
        # Recall has plateaued (quantisation, not search, limits it): stop widening.
        if len(best_by_value) >= 3 and best_by_value[-1] - best_by_value[-3] < plateau:
            break
    if spec.search_param is not None and not factors:
        run = functools.partial(_trial, index, spec, xq, I_gt, k, rescore_factor, kw)
        trials += _refine(trials, spec.search_param, run, latency_budget_ms, target_recall)
        trials.sort(key=lambda t: t["params"][spec.search_param])
    best = _pick(trials, latency_budget_ms, target_recall, plateau)
    search_params = {n: v for n, v in best["params"].items() if n != "rescore_factor"}
    set_search_params(index, search_params)
    return TuneResult(
        params=dict(best["params"]),
        recall=float(best["recall"]),
        latency_ms=float(best["latency_ms"]),
        k=k,
        trials=trials if spec.search_param is not None or factors else [],
    )


def _trial(index, spec, xq, I_gt, k, rescore_factor, kw, value: int) -> dict:
    """One trial of ``spec.search_param`` at ``value``."""
    params = {spec.search_param: value}
    I, lat = measure(index, spec, xq, k, params=params, rescore_factor=rescore_factor, **kw)  # noqa: E741
    return {"params": params, "recall": recall_at_k(I, I_gt, k), "latency_ms": lat}


def _refine(trials, name: str, run, budget_ms: float, target: float) -> list[dict]:
    """Trials between the cheapest tried value that reaches ``target`` within the budget
    and the value tried before it (the doubling steps are coarse: 512 may reach the
    target where 300 already does), halving the gap while it is over an eighth of the
    lower value: the least value that reaches the target, to within that."""
    values = sorted(t["params"][name] for t in trials)
    ok = [
        t["params"][name] for t in trials if t["recall"] >= target and t["latency_ms"] <= budget_ms
    ]
    if not ok:
        return []
    hi = min(ok)
    below = [v for v in values if v < hi]
    if not below:
        return []
    lo, added = below[-1], []
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        trial = run(mid)
        added.append(trial)
        if trial["recall"] >= target and trial["latency_ms"] <= budget_ms:
            hi = mid
        else:
            lo = mid
    return added


def _pick(trials: list[dict], budget_ms: float, target: float, plateau: float) -> dict:
    """The first trial (the cheapest settings: trials run in increasing cost) within the
    latency budget that reaches the target, or comes within ``plateau`` of the best
    recall seen within the budget. Timing noise never decides."""
    within = [t for t in trials if t["latency_ms"] <= budget_ms] or trials[:1]
    top = max(t["recall"] for t in within)
    return next(t for t in within if t["recall"] >= min(top - plateau, target))
