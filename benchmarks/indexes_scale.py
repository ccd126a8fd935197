"""1,000,000 x 384 clustered float vectors: the chosen float index at a 1 GB budget, then
the same vectors as ubinary with int8 rescoring.

Prints one JSON object a line: {"benchmark", "metric", "value", "unit", ...}.

    python benchmarks/indexes_scale.py [--n 1000000] [--d 384] [--nq 1000]

Data: a seeded low-rank clustered model, closer to real embeddings than uniform noise:
2,000 cluster centres in a 48-dimensional latent space, points spread around them,
mapped to d dimensions by a fixed random matrix, plus 5% isotropic noise, L2-normalised.
Queries are drawn from the same model and are not in the index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from indexes.build import add_vectors, prepare_vectors, serialize_index, train_index
from indexes.choose import choose_index
from indexes.search import RescoreStore, index_id_view, search
from indexes.tune import exact_search, recall_at_k, tune_index
from inference import codec

BENCH = "indexes_scale"


def emit(metric: str, value, unit: str, **extra) -> None:
    print(json.dumps({"benchmark": BENCH, "metric": metric, "value": value, "unit": unit, **extra}))
    sys.stdout.flush()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clustered(n: int, d: int, *, seed: int, centres: np.ndarray, proj: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        c = rng.integers(0, centres.shape[0], m)
        z = centres[c] + 0.6 * rng.standard_normal((m, centres.shape[1]), dtype=np.float32)
        x = z @ proj
        x += (
            0.05
            * np.linalg.norm(x, axis=1, keepdims=True)
            / np.sqrt(d)
            * rng.standard_normal((m, d), dtype=np.float32)
        )
        out[start : start + m] = x
    faiss.normalize_L2(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=1 << 30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    n, d = args.n, args.d
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 48), dtype=np.float32)
    proj = rng.standard_normal((48, d), dtype=np.float32) / np.sqrt(48)
    xb = clustered(n, d, seed=1, centres=centres, proj=proj)
    xq = clustered(args.nq, d, seed=2, centres=centres, proj=proj)
    ids = np.arange(n, dtype=np.int64) * 7 + 11  # explicit, not row numbers
    common = {"n": n, "d": d, "nq": args.nq, "threads": args.threads}
    emit("rss_after_data", round(peak_rss_mb(), 1), "MB", **common)

    t0 = time.perf_counter()
    _, I_gt = exact_search(xb, ids, xq, 10, family="float")
    emit("exact_float_ground_truth_time", round(time.perf_counter() - t0, 2), "s", **common)

    # --- float: the index chosen for a 1 GB budget
    spec = choose_index(n, d, "float", memory_budget=args.budget)
    t0 = time.perf_counter()
    index = train_index(spec, xb, seed=0)
    t_train = time.perf_counter() - t0
    add_vectors(index, xb, ids, spec)
    t_build = time.perf_counter() - t0
    size = len(serialize_index(index))
    f = {"factory": spec.factory, "budget_bytes": args.budget, **common}
    emit("float_train_time", round(t_train, 2), "s", train_vectors=spec.train_size, **f)
    emit("float_build_time", round(t_build, 2), "s", **f)
    emit("float_index_bytes", size, "bytes", **f)
    emit("peak_rss_after_float_build", round(peak_rss_mb(), 1), "MB", note="includes input", **f)
    tuned = tune_index(index, spec, xq, I_gt, k=10, latency_budget_ms=10.0, target_recall=0.99)
    emit("float_recall_at_10", round(tuned.recall, 4), "ratio", params=tuned.params, **f)
    emit("float_latency", round(tuned.latency_ms, 3), "ms/query", params=tuned.params, **f)
    emit("float_tuning_trials", tuned.trials, "list", **f)
    del index

    # --- ubinary with int8 rescoring
    xbn = prepare_vectors(xb, "float", d)
    bits = codec.quantize(xbn, "ubinary")
    i8 = codec.quantize(xbn, "int8")
    del xbn
    bspec = choose_index(n, d, "ubinary", memory_budget=args.budget)
    t0 = time.perf_counter()
    bindex = train_index(bspec, bits, seed=0)
    add_vectors(bindex, bits, ids, bspec)
    bt = time.perf_counter() - t0
    bsize = len(serialize_index(bindex))
    float_flat = n * d * 4
    b = {"factory": bspec.factory, **common}
    emit("ubinary_build_time", round(bt, 2), "s", **b)
    emit("ubinary_index_bytes", bsize, "bytes", **b)
    # Ids were added in ascending order, so the rescorer looks ids up in the index's own
    # id map (a zero-copy view): nothing else stays resident.
    id_view = index_id_view(bindex)
    assert id_view is not None and (id_view[1:] > id_view[:-1]).all()
    resident = bsize
    emit(
        "ubinary_memory_ratio_to_float_flat",
        round(resident / float_flat, 5),
        "ratio",
        resident_bytes=resident,
        float_flat_bytes=float_flat,
        target="<= 0.04",
        note="int8 rescoring vectors stay on disk, memory-mapped",
        **b,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rescore.npy")
        np.save(path, i8)  # rows in id order, like the index's id map
        del i8
        store = RescoreStore(id_view, np.load(path, mmap_mode="r"), dimensions=d)
        emit("int8_rescore_store_disk_bytes", os.path.getsize(path), "bytes", **b)
        res = search(bindex, xq, 10, encoding="ubinary", d=d)
        emit(
            "ubinary_recall_at_10_vs_exact_float",
            round(recall_at_k(res.I, I_gt, 10), 4),
            "ratio",
            rescored=False,
            **b,
        )
        for factor in (4, 10, 20, 40):
            res = search(
                bindex, xq, 10, encoding="ubinary", d=d, rescore=store, rescore_factor=factor
            )
            r = recall_at_k(res.I, I_gt, 10)
            t0 = time.perf_counter()
            for i in range(100):
                search(
                    bindex,
                    xq[i : i + 1],
                    10,
                    encoding="ubinary",
                    d=d,
                    rescore=store,
                    rescore_factor=factor,
                )
            lat = (time.perf_counter() - t0) * 10
            emit(
                "ubinary_int8_rescored_recall_at_10_vs_exact_float",
                round(r, 4),
                "ratio",
                rescore_factor=factor,
                latency_ms=round(lat, 3),
                **b,
            )
    emit("peak_rss_total", round(peak_rss_mb(), 1), "MB", **common)


if __name__ == "__main__":
    main()
