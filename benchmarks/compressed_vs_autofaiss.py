"""Compressed indexes side by side with autofaiss: the same vectors, the same memory budget.

For each size (300k and 1M by default) and budget (128 MB and 48 MB), both tools build an
index of the same seeded, clustered, normalised 384-d vectors (``indexes_scale``'s model),
each in its own process; then, in a fresh process each, the index is opened and 1,000
held-out queries are searched one at a time on one thread. Printed for each tool:

- ``build_s``: wall time of the build alone (the vectors already in memory);
- ``recall_at_10``: against exact inner-product search over the same vectors;
- ``p50_ms``: median single-query latency (ours: index search + rescoring);
- ``resident_mb``: growth of the searching process's resident memory from opening the
  index to after the queries (the libraries' one-time costs paid before), and
  ``disk_mb``: the bytes the index keeps on disk.

autofaiss runs in its own virtual environment (``--autofaiss-venv``; made on first use
with autofaiss 2.18, numpy<2, pyarrow<18, faiss-cpu 1.8). Baseline: autofaiss's build time
(``ratio`` = ours / autofaiss: target <= 1.0), with recall >= 0.95 and p50 <= 5 ms as the
other targets.

    python -m benchmarks.compressed_vs_autofaiss [--sizes 300000,1000000]
        [--budgets 128,48] [--cache /tmp/cvsa] [--autofaiss-venv /tmp/autofaiss-venv]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._common import emit

__all__ = ["main"]

BENCH = "compressed_vs_autofaiss"
ROOT = Path(__file__).resolve().parents[1]
D = 384
AUTOFAISS_CHILD = Path(__file__).with_name("_autofaiss_child.py")
AUTOFAISS_PINS = ["autofaiss==2.18.*", "numpy<2", "pyarrow<18", "faiss-cpu==1.8.*"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _build_ours(xb_path: str, out: str, budget: str, threads: str) -> dict:
    from indexes import BuildConfig, build_folder

    xb = np.load(xb_path)
    meta = {"document_id": [str(i) for i in range(xb.shape[0])], "chunk": [0] * xb.shape[0]}
    started = time.perf_counter()
    m = build_folder(
        out,
        xb,
        meta,
        encoding="float",
        model="bench",
        # No lexical index: autofaiss builds none.
        config=BuildConfig(memory_budget=int(budget), threads=int(threads), lexical=False),
    )
    return {
        "build_s": time.perf_counter() - started,
        "index_key": m.index_factory,
        "index_param": {**m.search_params, "rescore_factor": (m.rescore or {}).get("factor")},
        "manifest_recall": m.recall["value"] if m.recall else None,
    }


def _search_ours(out: str, xq_path: str, i_path: str, k: int = 10) -> dict:
    import faiss

    from indexes.reader import open_index
    from indexes.storage.ids import chunk_ids
    from indexes.storage.part_files import RESCORE_SUFFIX

    xq = np.load(xq_path)
    faiss.omp_set_num_threads(1)
    warm = faiss.index_factory(xq.shape[1], "IVF4,PQ8", faiss.METRIC_INNER_PRODUCT)
    xw = np.random.default_rng(0).standard_normal((2000, xq.shape[1])).astype("float32")
    warm.train(xw)
    warm.add(xw)
    warm.search(xw[:5], k)  # the libraries' first-use costs, paid before measuring
    # Row number of each id (the benchmark's bookkeeping, made before measuring).
    with open(Path(out) / "manifest.json") as mf:
        n = json.load(mf)["count"]
    ids = np.asarray(chunk_ids([str(i) for i in range(n)], [0] * n))
    order = np.argsort(ids)
    before = _rss_mb()
    f = open_index(out, verify=False)
    times, found = [], np.empty((xq.shape[0], k), dtype=np.int64)
    for i in range(xq.shape[0]):
        started = time.perf_counter()
        res = f.search(xq[i : i + 1], k)
        times.append(time.perf_counter() - started)
        found[i] = np.where(res.I[0] >= 0, order[np.searchsorted(ids, res.I[0], sorter=order)], -1)
    resident = _rss_mb() - before
    np.save(i_path, found)
    kept = (*f.manifest.index_files, (f.manifest.rescore or {}).get("file"))
    disk = sum(
        info["bytes"]
        for name, info in f.manifest.files.items()
        if name in kept or name.endswith(RESCORE_SUFFIX)  # the parts' rescoring vectors
    )
    return {
        "p50_ms": float(np.median(times) * 1000),
        "resident_mb": resident,
        "disk_mb": disk / 2**20,
    }


def _child(python: str, entry: list[str], *args: object) -> dict:
    proc = subprocess.run(
        [python, *entry, *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _autofaiss_python(venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *AUTOFAISS_PINS], check=True)
    return str(python)


def _data(cache: Path, n: int, nq: int) -> tuple[Path, Path, np.ndarray]:
    """xb and xq files (made once) and the exact top 10 of each query, as row numbers."""
    from benchmarks.indexes_scale import dataset

    cache.mkdir(parents=True, exist_ok=True)
    xb_path, xq_path, gt_path = (cache / f"{s}-{n}.npy" for s in ("xb", "xq", "gt"))
    if not xb_path.exists():
        np.save(xb_path, dataset(n, D))
        np.save(xq_path, dataset(nq, D, stream=2))
    if not gt_path.exists():
        import faiss

        flat = faiss.IndexFlatIP(D)
        flat.add(np.load(xb_path))
        np.save(gt_path, flat.search(np.load(xq_path), 10)[1])
    return xb_path, xq_path, np.load(gt_path)


def _recall(I: np.ndarray, gt: np.ndarray) -> float:  # noqa: E741
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt, strict=True)]))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # one side of a run, in its own process
        command, *rest = argv[1:]
        print(json.dumps({"build": _build_ours, "search": _search_ours}[command](*rest)))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="300000,1000000")
    parser.add_argument("--budgets", default="128,48", help="memory budgets in MB")
    parser.add_argument("--nq", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="build threads, both tools")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/compressed-vs-autofaiss"))
    parser.add_argument("--autofaiss-venv", type=Path, default=Path("/tmp/autofaiss-venv"))
    parser.add_argument("--skip-autofaiss", action="store_true")
    args = parser.parse_args(argv)
    af_python = None if args.skip_autofaiss else _autofaiss_python(args.autofaiss_venv)
    for n in (int(s) for s in args.sizes.split(",")):
        xb_path, xq_path, gt = _data(args.cache, n, args.nq)
        for mb in (int(s) for s in args.budgets.split(",")):
            runs = {}
            ours = ["-m", "benchmarks.compressed_vs_autofaiss", "--child"]
            tools = [("corpusbeam", sys.executable, ours, mb << 20)]
            if af_python:
                tools.append(("autofaiss", af_python, [str(AUTOFAISS_CHILD)], f"{mb}MB"))
            for tool, python, entry, budget in tools:
                out = args.cache / f"{tool}-{n}-{mb}"
                subprocess.run(["rm", "-rf", str(out)], check=True)
                out.mkdir(parents=True)
                started = time.perf_counter()
                built = _child(python, entry, "build", xb_path, out, budget, args.threads)
                built["wall_s"] = time.perf_counter() - started
                found = _child(python, entry, "search", out, xq_path, out / "I.npy")
                runs[tool] = {**built, **found, "recall_at_10": _recall(np.load(out / "I.npy"), gt)}
            base = runs.get("autofaiss", {}).get("build_s")
            for tool, r in runs.items():
                common = {"tool": tool, "n": n, "budget_mb": mb, "index_key": r["index_key"]}
                emit(
                    BENCH,
                    "build_s",
                    round(r["build_s"], 1),
                    "s",
                    **common,
                    baseline="autofaiss build_s",
                    ratio=round(r["build_s"] / base, 3) if base else None,
                    target="<= 1.0x autofaiss",
                )
                emit(
                    BENCH,
                    "recall_at_10",
                    round(r["recall_at_10"], 4),
                    "",
                    **common,
                    target=">= 0.95",
                    index_param=r["index_param"],
                )
                emit(BENCH, "p50_ms", round(r["p50_ms"], 3), "ms", **common, target="<= 5 ms")
                emit(
                    BENCH,
                    "resident_mb",
                    round(r["resident_mb"], 1),
                    "MB",
                    **common,
                    disk_mb=round(r["disk_mb"], 1),
                )


if __name__ == "__main__":
    main()
