"""Building in pieces: 4 shards built separately from one trained index and merged (in
memory, and on disk) versus one build of the same vectors; identical search results.

Prints one JSON object a line: {"benchmark", "metric", "value", "unit", ...}.

    python benchmarks/indexes_sharded.py [--n 200000] [--d 384]

Each shard is built the way a worker would: from the serialised empty trained index
(bytes), its own slice of the vectors, written to its own file; the merge reads the files.
Data: the same seeded clustered model as indexes_scale.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.merge import merge_indexes, merge_ondisk
from indexes.ann.search import search
from indexes.ann.serialize import deserialize_index, read_index, serialize_index, write_index
from indexes.ann.train import add_vectors, train_index

BENCH = "indexes_sharded"


def emit(metric: str, value, unit: str, **extra) -> None:
    print(json.dumps({"benchmark": BENCH, "metric": metric, "value": value, "unit": unit, **extra}))
    sys.stdout.flush()


def clustered(n: int, d: int, *, seed: int) -> np.ndarray:
    rng0 = np.random.default_rng(0)
    centres = rng0.standard_normal((2000, 48), dtype=np.float32)
    proj = rng0.standard_normal((48, d), dtype=np.float32) / np.sqrt(48)
    rng = np.random.default_rng(seed)
    z = centres[rng.integers(0, 2000, n)] + 0.6 * rng.standard_normal((n, 48), dtype=np.float32)
    x = z @ proj
    x += (
        0.05
        * np.linalg.norm(x, axis=1, keepdims=True)
        / np.sqrt(d)
        * rng.standard_normal((n, d), dtype=np.float32)
    )
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    xb_f = clustered(args.n, args.d, seed=1)
    xq = clustered(args.nq, args.d, seed=2)
    ids = np.random.default_rng(3).permutation(args.n * 10)[: args.n].astype(np.int64)
    tmp = Path(tempfile.mkdtemp(prefix="indexes_sharded-"))
    for encoding in ("float", "int8", "ubinary"):
        x = codec.quantize(xb_f, encoding)
        # IVF everywhere, so the merge is of inverted lists (flat indexes merge trivially).
        k = 2 ** int(np.log2(min(4 * np.sqrt(args.n), args.n / 64)))
        factory = {"float": f"IVF{k},Flat", "int8": f"IVF{k},SQ8_direct_signed"}.get(
            encoding, f"BIVF{k}"
        )
        spec = choose_index(args.n, args.d, encoding, factory=factory)
        common = {
            "encoding": encoding,
            "factory": spec.factory,
            "n": args.n,
            "d": args.d,
            "shards": args.shards,
            "nq": args.nq,
        }
        t0 = time.perf_counter()
        trained = train_index(spec, x, seed=0)
        t_train = time.perf_counter() - t0
        blob = serialize_index(trained)
        t0 = time.perf_counter()
        one = deserialize_index(blob, encoding)
        add_vectors(one, x, ids, spec)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        paths = []
        for s, rows in enumerate(np.array_split(np.arange(args.n), args.shards)):
            shard = deserialize_index(blob, encoding)  # what a worker receives
            add_vectors(shard, x[rows], ids[rows], spec)
            paths.append(tmp / f"{encoding}-shard-{s}.faiss")
            write_index(shard, paths[-1])
            del shard
        t_shards = time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = merge_indexes([read_index(p, encoding) for p in paths], spec)
        t_merge = time.perf_counter() - t0
        emit("train_time", round(t_train, 2), "s", **common)
        emit("one_build_add_time", round(t_one, 2), "s", **common)
        emit("shard_builds_add_time", round(t_shards, 2), "s", **common)
        emit("merge_in_memory_time", round(t_merge, 2), "s", **common)
        params = {"nprobe": 16} if spec.search_param == "nprobe" else {}
        # Same search on both: identical results are the claim, not speed.
        a = search(one, xq, 10, encoding=encoding, d=args.d, params=params)
        b = search(merged, xq, 10, encoding=encoding, d=args.d, params=params)
        emit(
            "identical_ids_merged_vs_one",
            bool(np.array_equal(a.I, b.I)),
            "bool",
            params=params,
            **common,
        )
        emit(
            "identical_distances_merged_vs_one",
            bool(np.array_equal(a.D, b.D)),
            "bool",
            params=params,
            **common,
        )
        if spec.nlist and spec.family != "binary":
            t0 = time.perf_counter()
            out = tmp / f"{encoding}-ondisk.faiss"
            merge_ondisk(deserialize_index(blob, encoding), paths, out, spec)
            ondisk = read_index(out, encoding)
            emit("merge_ondisk_time", round(time.perf_counter() - t0, 2), "s", **common)
            c = search(ondisk, xq, 10, encoding=encoding, d=args.d, params=params)
            emit(
                "identical_ids_ondisk_vs_one",
                bool(np.array_equal(a.I, c.I)),
                "bool",
                params=params,
                **common,
            )
            emit(
                "identical_distances_ondisk_vs_one",
                bool(np.array_equal(a.D, c.D)),
                "bool",
                params=params,
                **common,
            )
        del one, merged


if __name__ == "__main__":
    main()
