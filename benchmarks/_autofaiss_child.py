"""The autofaiss side of ``compressed_vs_autofaiss``, run by autofaiss's own interpreter
(its virtual environment: numpy<2, faiss-cpu 1.8). Imports nothing of corpusbeam.

    python _autofaiss_child.py build XB.npy OUT BUDGET THREADS
    python _autofaiss_child.py search OUT XQ.npy I.npy

Each prints one JSON object.
"""

import json
import os
import sys
import time

import faiss
import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def build(xb_path: str, out: str, budget: str, threads: str) -> dict:
    from autofaiss import build_index

    xb = np.load(xb_path)
    faiss.omp_set_num_threads(int(threads))
    started = time.perf_counter()
    _, infos = build_index(
        embeddings=xb,
        index_path=os.path.join(out, "knn.index"),
        index_infos_path=os.path.join(out, "infos.json"),
        max_index_memory_usage=budget,
        current_memory_available="16G",
        metric_type="ip",
        save_on_disk=True,
        verbose=40,
    )
    return {
        "build_s": time.perf_counter() - started,
        "index_key": infos["index_key"],
        "index_param": infos["index_param"],
    }


def search(out: str, xq_path: str, i_path: str, k: int = 10) -> dict:
    xq = np.load(xq_path)
    faiss.omp_set_num_threads(1)
    warm = faiss.index_factory(xq.shape[1], "IVF4,PQ8", faiss.METRIC_INNER_PRODUCT)
    xw = np.random.default_rng(0).standard_normal((2000, xq.shape[1])).astype("float32")
    warm.train(xw)
    warm.add(xw)
    warm.search(xw[:5], k)  # the libraries' first-use costs, paid before measuring
    before = rss_mb()
    index = faiss.read_index(os.path.join(out, "knn.index"))
    with open(os.path.join(out, "infos.json")) as f:
        faiss.ParameterSpace().set_index_parameters(index, json.load(f)["index_param"])
    times, found = [], np.empty((xq.shape[0], k), dtype=np.int64)
    for i in range(xq.shape[0]):
        started = time.perf_counter()
        _, found[i] = index.search(xq[i : i + 1], k)
        times.append(time.perf_counter() - started)
    np.save(i_path, found)
    return {
        "p50_ms": float(np.median(times) * 1000),
        "resident_mb": rss_mb() - before,
        "disk_mb": os.path.getsize(os.path.join(out, "knn.index")) / 2**20,
    }


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    print(json.dumps({"build": build, "search": search}[command](*args)))
