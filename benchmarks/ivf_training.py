"""IVF training on real embeddings: one-level k-means (the job's) against two-level.

Embeds ``--lines`` distinct lines of this machine's Python sources and docs (40 chars or
more, shuffled) with all-MiniLM-L6-v2 (the ``minilm`` extra; kept in ``--cache``, a
temporary folder by default),
holds 1,000 out as queries, and for each K trains ``IVF{K},Flat`` on 64 vectors a list
the way the index job does (``indexes.ann.train.train_index``: FAISS's k-means, 10
iterations), then with ``faiss.contrib.clustering.two_level_clustering`` (sqrt(K)
clusters, then each split). Prints each training's seconds and recall@10 against exact
search at nprobe 1..32; the baseline is the one-level training, in the same run.

    python -m benchmarks.ivf_training [--lines 160000] [--k 1024,2048]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from benchmarks._common import emit
from indexes.ann.choose import choose_index
from indexes.ann.spec import make_index
from indexes.ann.train import train_index

BENCH = "ivf_training"
NPROBES = (1, 2, 4, 8, 16, 32)


def _lines(limit: int) -> list[str]:
    roots = {os.path.dirname(os.__file__), *(p for p in sys.path if p.endswith("site-packages"))}
    seen: set[str] = set()
    for root in sorted(roots):
        for folder, _, files in os.walk(root):
            for name in files:
                if not name.endswith((".py", ".rst", ".txt", ".md")):
                    continue
                try:
                    with open(os.path.join(folder, name), encoding="utf-8", errors="ignore") as f:
                        seen.update(t for t in (line.strip() for line in f) if len(t) >= 40)
                except OSError:
                    continue
    texts = sorted(seen)
    random.Random(0).shuffle(texts)
    return texts[:limit]


def embeddings(lines: int, cache: Path) -> np.ndarray:
    path = cache / f"minilm-{lines}.npy"
    if path.is_file():
        return np.load(path)
    from corpusbeam.inference.server.minilm import MiniLMModel

    texts, model = _lines(lines), MiniLMModel()
    x = np.concatenate(
        [model.embed_texts(texts[i : i + 2048], "document") for i in range(0, len(texts), 2048)]
    ).astype("float32")
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def _recall(index, xq: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    out = {}
    for nprobe in NPROBES:
        faiss.extract_index_ivf(index).nprobe = nprobe
        _, found = index.search(xq, 10)
        hits = [len(set(a) & set(b)) for a, b in zip(found, truth, strict=True)]
        out[nprobe] = round(float(np.mean(hits)) / 10, 4)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=160_000)
    parser.add_argument("--k", default="1024,2048")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "corpusbeam-benchmarks"
    )
    args = parser.parse_args(argv)
    from faiss.contrib.clustering import two_level_clustering

    x = embeddings(args.lines, args.cache)
    faiss.normalize_L2(x)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    xq, xb = x[order[:1000]], x[order[1000:]]
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(xb)
    _, truth = exact.search(xq, 10)
    for k in (int(v) for v in args.k.split(",")):
        spec = choose_index(len(xb), x.shape[1], "float", factory=f"IVF{k},Flat")
        xt = xb[rng.choice(len(xb), 64 * k, replace=False)]
        started = time.perf_counter()
        one = train_index(spec, xt, seed=1)
        one_s = time.perf_counter() - started
        one.add(xb)
        baseline = _recall(one, xq, truth)
        started = time.perf_counter()
        two = make_index(spec)
        centroids, _ = two_level_clustering(xt, int(np.sqrt(k)), k, spherical=True, seed=1)
        centroids = np.ascontiguousarray(centroids, dtype="float32")
        faiss.normalize_L2(centroids)
        faiss.extract_index_ivf(two).quantizer.add(centroids)
        two.train(xt)  # the quantizer holds its k centroids: nothing else to train
        two_s = time.perf_counter() - started
        two.add(xb)
        emit(
            BENCH,
            "two_level_speedup",
            round(one_s / two_s, 2),
            "ratio",
            k=k,
            train_vectors=int(xt.shape[0]),
            base=int(xb.shape[0]),
            seconds=round(two_s, 1),
            baseline_seconds=round(one_s, 1),
            baseline="one-level k-means (indexes.ann.train.train_index)",
            recall_at_10=_recall(two, xq, truth),
            baseline_recall_at_10=baseline,
        )


if __name__ == "__main__":
    main()
