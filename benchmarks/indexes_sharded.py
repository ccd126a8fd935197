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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.merge import merge_indexes, merge_ondisk
from indexes.ann.search import search
from indexes.ann.serialize import deserialize_index, read_index, serialize_index, write_index
from indexes.ann.spec import IndexSpec
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
        case = Case.of(args, encoding, codec.quantize(xb_f, encoding), ids, xq)
        compare_sharded_with_one(case, tmp)


@dataclass(frozen=True)
class Case:
    """One encoding's vectors, ids and queries, its IVF index spec and its lines' label."""

    encoding: str
    x: np.ndarray
    ids: np.ndarray
    xq: np.ndarray
    spec: IndexSpec
    d: int
    shards: int
    common: dict

    @classmethod
    def of(
        cls, args: argparse.Namespace, encoding: str, x: np.ndarray, ids: np.ndarray, xq: np.ndarray
    ) -> Case:
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
        return cls(encoding, x, ids, xq, spec, args.d, args.shards, common)

    def search(self, index, params: dict):
        """The queries' top 10 in ``index``."""
        return search(index, self.xq, 10, encoding=self.encoding, d=self.d, params=params)


def compare_sharded_with_one(case: Case, tmp: Path) -> None:
    """Train once; build one index, and the shards each from the trained bytes, merged in
    memory (and on disk, for IVF of float and int8); print the times, and whether the
    merged indexes answer exactly as the one build does."""
    encoding, spec = case.encoding, case.spec
    t0 = time.perf_counter()
    trained = train_index(spec, case.x, seed=0)
    t_train = time.perf_counter() - t0
    blob = serialize_index(trained)
    t0 = time.perf_counter()
    one = deserialize_index(blob, encoding)
    add_vectors(one, case.x, case.ids, spec)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    paths = build_shards(case, blob, tmp)
    t_shards = time.perf_counter() - t0
    t0 = time.perf_counter()
    merged = merge_indexes([read_index(p, encoding) for p in paths], spec)
    t_merge = time.perf_counter() - t0
    emit("train_time", round(t_train, 2), "s", **case.common)
    emit("one_build_add_time", round(t_one, 2), "s", **case.common)
    emit("shard_builds_add_time", round(t_shards, 2), "s", **case.common)
    emit("merge_in_memory_time", round(t_merge, 2), "s", **case.common)
    params = {"nprobe": 16} if spec.search_param == "nprobe" else {}
    # Same search on both: identical results are the claim, not speed.
    a = case.search(one, params)
    emit_identical("merged_vs_one", a, case.search(merged, params), params, case.common)
    if spec.nlist and spec.family != "binary":
        t0 = time.perf_counter()
        out = tmp / f"{encoding}-ondisk.faiss"
        merge_ondisk(deserialize_index(blob, encoding), paths, out, spec)
        ondisk = read_index(out, encoding)
        emit("merge_ondisk_time", round(time.perf_counter() - t0, 2), "s", **case.common)
        emit_identical("ondisk_vs_one", a, case.search(ondisk, params), params, case.common)


def build_shards(case: Case, blob, tmp: Path) -> list[Path]:
    """Each shard built as a worker would, from the trained index's bytes and its own slice
    of the vectors, and written to its own file."""
    paths = []
    for s, rows in enumerate(np.array_split(np.arange(len(case.ids)), case.shards)):
        shard = deserialize_index(blob, case.encoding)  # what a worker receives
        add_vectors(shard, case.x[rows], case.ids[rows], case.spec)
        paths.append(tmp / f"{case.encoding}-shard-{s}.faiss")
        write_index(shard, paths[-1])
        del shard
    return paths


def emit_identical(what: str, a, b, params: dict, common: dict) -> None:
    """Whether two searches returned the same ids, and the same distances."""
    emit(f"identical_ids_{what}", bool(np.array_equal(a.I, b.I)), "bool", params=params, **common)
    same_distances = bool(np.array_equal(a.D, b.D))
    emit(f"identical_distances_{what}", same_distances, "bool", params=params, **common)


if __name__ == "__main__":
    main()
