"""1,000,000 x 384 clustered float vectors: the chosen float index at a 1 GB budget, then
the same vectors as ubinary with int8 rescoring.

Prints one JSON object a line: {"benchmark", "metric", "value", "unit", ...}.

    python benchmarks/indexes_scale.py [--n 1000000] [--d 384] [--nq 1000]

Data: a seeded low-rank clustered model, closer to real embeddings than uniform noise:
2,000 cluster centres in a 48-dimensional latent space, points spread around them,
mapped to d dimensions by a fixed random matrix, plus 5% isotropic noise, L2-normalised.
Every block of 100,000 vectors is generated from its own seed, so any block can be made
again. Queries are drawn from the same model and are not in the index.

The float build runs in a child process that streams the blocks (a random training
sample first, then the blocks one at a time into the index), as a worker would; its
peak RSS is the build's own, not the benchmark's copy of the data.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.search import RescoreStore, index_id_view, search
from indexes.ann.serialize import read_index, write_index
from indexes.ann.train import add_vectors, prepare_vectors, train_index, training_sample
from indexes.building.tune import exact_search, recall_at_k, tune_index

BENCH = "indexes_scale"
BLOCK = 100_000


def emit(metric: str, value, unit: str, **extra) -> None:
    print(json.dumps({"benchmark": BENCH, "metric": metric, "value": value, "unit": unit, **extra}))
    sys.stdout.flush()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 48), dtype=np.float32)
    proj = (rng.standard_normal((48, d), dtype=np.float32) / np.float32(np.sqrt(48))).astype(
        np.float32
    )
    return centres, proj


def block(i: int, m: int, d: int, *, stream: int = 1) -> np.ndarray:
    """Block i (m vectors) of data stream ``stream``; the same every time."""
    centres, proj = _model(d)
    rng = np.random.default_rng([stream, i])
    c = rng.integers(0, centres.shape[0], m)
    z = centres[c] + np.float32(0.6) * rng.standard_normal((m, 48), dtype=np.float32)
    x = z @ proj
    noise = rng.standard_normal((m, d), dtype=np.float32)
    x += np.float32(0.05 / np.sqrt(d)) * np.linalg.norm(x, axis=1, keepdims=True) * noise
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def blocks(n: int) -> list[tuple[int, int, int]]:
    return [(i, s, min(BLOCK, n - s)) for i, s in enumerate(range(0, n, BLOCK))]


def dataset(n: int, d: int, *, stream: int = 1) -> np.ndarray:
    out = np.empty((n, d), dtype=np.float32)
    for i, s, m in blocks(n):
        out[s : s + m] = block(i, m, d, stream=stream)
    return out


def ids_for(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * 7 + 11  # explicit, not row numbers


def _streaming_build(n: int, d: int, budget: int, threads: int, path: str, out) -> None:
    faiss.omp_set_num_threads(threads)
    spec = choose_index(n, d, "float", memory_budget=budget)
    ids = ids_for(n)
    t0 = time.perf_counter()
    rows = training_sample(n, spec.train_size, seed=0) if spec.train_size else np.empty(0, int)
    sample = []
    for i, s, m in blocks(n):
        sel = rows[(rows >= s) & (rows < s + m)] - s
        if sel.size:
            sample.append(block(i, m, d)[sel])
    xt = np.concatenate(sample) if sample else np.empty((0, d), np.float32)
    t_sample = time.perf_counter() - t0
    index = train_index(spec, xt if xt.shape[0] else block(0, min(n, BLOCK), d), seed=0)
    del xt, sample
    t_train = time.perf_counter() - t0
    for i, s, m in blocks(n):
        add_vectors(index, block(i, m, d), ids[s : s + m], spec)
    t_build = time.perf_counter() - t0
    write_index(index, path)
    out.put(
        {
            "factory": spec.factory,
            "train_size": spec.train_size,
            "sample_s": t_sample,
            "train_s": t_train,
            "build_s": t_build,
            "peak_rss_mb": peak_rss_mb(),
            "estimated_bytes": spec.estimated_bytes,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=1 << 30)
    ap.add_argument("--threads", type=int, default=2, help="FAISS threads for building")
    ap.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="FAISS threads for one-query-at-a-time latency (OpenMP only adds overhead there)",
    )
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    n, d = args.n, args.d
    common = {
        "n": n,
        "d": d,
        "nq": args.nq,
        "threads": args.threads,
        "search_threads": args.search_threads,
    }
    tmp = Path(tempfile.mkdtemp(prefix="indexes_scale-"))

    # --- float: the index chosen for the budget, built by a streaming child process
    f = build_float_in_child(args, tmp, common)
    xb = dataset(n, d)
    xq = dataset(args.nq, d, stream=2)
    ids = ids_for(n)
    I_gt = exact_float_ground_truth(xb, ids, xq, common)
    tune_float(args, tmp / "float.faiss", xq, I_gt, f)

    # --- ubinary with int8 rescoring (each copy of the vectors dropped once used)
    xbn = prepare_vectors(xb, "float", d)
    del xb
    bits = codec.quantize(xbn, "ubinary")
    i8 = codec.quantize(xbn, "int8")
    del xbn
    built = build_ubinary(args, tmp / "ubinary.faiss", bits, ids, common)
    store = rescore_store(tmp / "rescore.npy", i8, built, d)
    del i8
    ubinary_recall(args, built, store, xq, I_gt)
    emit("benchmark_process_peak_rss", round(peak_rss_mb(), 1), "MB", **common)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


def build_float_in_child(args: argparse.Namespace, tmp: Path, common: dict) -> dict:
    """Build the float index for the budget in a streaming child process, print its times,
    memory and size; return the float lines' label."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(
        target=_streaming_build,
        args=(args.n, args.d, args.budget, args.threads, str(tmp / "float.faiss"), queue),
    )
    child.start()
    info = queue.get()
    child.join()
    f = {"factory": info["factory"], "budget_bytes": args.budget, **common}
    emit(
        "float_train_time",
        round(info["train_s"], 2),
        "s",
        train_vectors=info["train_size"],
        includes_sampling_s=round(info["sample_s"], 2),
        **f,
    )
    emit("float_build_time", round(info["build_s"], 2), "s", note="train + add, streaming", **f)
    emit(
        "float_build_peak_rss",
        round(info["peak_rss_mb"], 1),
        "MB",
        note="child process: training sample + index + one block of input",
        **f,
    )
    size = os.path.getsize(tmp / "float.faiss")
    emit("float_index_bytes", size, "bytes", estimated=info["estimated_bytes"], **f)
    return f


def exact_float_ground_truth(
    xb: np.ndarray, ids: np.ndarray, xq: np.ndarray, common: dict
) -> np.ndarray:
    """The ids of each query's exact top 10, timed."""
    t0 = time.perf_counter()
    _, I_gt = exact_search(xb, ids, xq, 10, family="float")
    emit("exact_float_ground_truth_time", round(time.perf_counter() - t0, 2), "s", **common)
    return I_gt


def tune_float(
    args: argparse.Namespace, path: Path, xq: np.ndarray, I_gt: np.ndarray, f: dict
) -> None:
    """Tune the float index's search parameters (recall 0.99 within 10 ms); print its recall,
    latency and every trial."""
    faiss.omp_set_num_threads(args.search_threads)
    index = read_index(path, "float")
    spec = choose_index(args.n, args.d, "float", memory_budget=args.budget)
    tuned = tune_index(index, spec, xq, I_gt, k=10, latency_budget_ms=10.0, target_recall=0.99)
    emit("float_recall_at_10", round(tuned.recall, 4), "ratio", params=tuned.params, **f)
    emit("float_latency", round(tuned.latency_ms, 3), "ms/query", params=tuned.params, **f)
    trials = [
        {**t, "recall": round(t["recall"], 4), "latency_ms": round(t["latency_ms"], 3)}
        for t in tuned.trials
    ]
    emit("float_tuning_trials", trials, "list", **f)


@dataclass(frozen=True)
class BinaryIndex:
    """The ubinary index, its id map (a zero-copy view) and its lines' label."""

    index: faiss.IndexBinary
    id_view: np.ndarray
    label: dict


def build_ubinary(
    args: argparse.Namespace, path: Path, bits: np.ndarray, ids: np.ndarray, common: dict
) -> BinaryIndex:
    """Build and write the ubinary index for the budget; print its time, size and memory
    against a float Flat index's."""
    n, d = args.n, args.d
    bspec = choose_index(n, d, "ubinary", memory_budget=args.budget)
    faiss.omp_set_num_threads(args.threads)
    t0 = time.perf_counter()
    bindex = train_index(bspec, bits, seed=0)
    add_vectors(bindex, bits, ids, bspec)
    bt = time.perf_counter() - t0
    write_index(bindex, path)
    bsize = os.path.getsize(path)
    float_flat = n * d * 4
    b = {"factory": bspec.factory, **common}
    emit("ubinary_build_time", round(bt, 2), "s", **b)
    emit("ubinary_index_bytes", bsize, "bytes", **b)
    # Ids were added in ascending order, so the rescorer looks ids up in the index's own
    # id map (a zero-copy view): nothing else stays resident.
    id_view = index_id_view(bindex)
    assert id_view is not None and (id_view[1:] > id_view[:-1]).all()
    emit(
        "ubinary_memory_ratio_to_float_flat",
        round(bsize / float_flat, 5),
        "ratio",
        resident_bytes=bsize,
        float_flat_bytes=float_flat,
        target="<= 0.04",
        note="int8 rescoring vectors stay on disk, memory-mapped",
        **b,
    )
    return BinaryIndex(bindex, id_view, b)


def rescore_store(path: Path, i8: np.ndarray, built: BinaryIndex, d: int) -> RescoreStore:
    """The int8 rescoring vectors written to ``path`` and memory-mapped back; print their
    size on disk."""
    np.save(path, i8)  # rows in id order, like the index's id map
    store = RescoreStore(built.id_view, np.load(path, mmap_mode="r"), dimensions=d)
    emit("int8_rescore_store_disk_bytes", os.path.getsize(path), "bytes", **built.label)
    return store


def ubinary_recall(
    args: argparse.Namespace,
    built: BinaryIndex,
    store: RescoreStore,
    xq: np.ndarray,
    I_gt: np.ndarray,
) -> None:
    """Recall@10 of the ubinary index against exact float search: unrescored, then rescored
    at several factors with each factor's latency."""
    bindex, b, d = built.index, built.label, args.d
    faiss.omp_set_num_threads(args.search_threads)
    res = search(bindex, xq, 10, encoding="ubinary", d=d)
    r0 = recall_at_k(res.I, I_gt, 10)
    emit("ubinary_recall_at_10_vs_exact_float", round(r0, 4), "ratio", rescored=False, **b)
    for factor in (4, 10, 20, 40):
        kw = {"encoding": "ubinary", "d": d, "rescore": store, "rescore_factor": factor}
        res = search(bindex, xq, 10, **kw)
        r = recall_at_k(res.I, I_gt, 10)
        t0 = time.perf_counter()
        for i in range(100):
            search(bindex, xq[i : i + 1], 10, **kw)
        lat = (time.perf_counter() - t0) * 10
        emit(
            "ubinary_int8_rescored_recall_at_10_vs_exact_float",
            round(r, 4),
            "ratio",
            rescore_factor=factor,
            latency_ms=round(lat, 3),
            **b,
        )


if __name__ == "__main__":
    main()
