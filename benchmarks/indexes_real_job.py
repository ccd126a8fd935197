"""Real text through the index job itself: all-MiniLM-L6-v2 behind the local reference
endpoint embeds docstring passages (``benchmarks.indexes_real``'s offline corpus), the job
builds a folder per encoding, and ``Searcher`` answers held-out text queries; recall@10 is
against exact float search (the float folder, ``IDMap2,Flat``) over the same passages.

    python -m benchmarks.indexes_real_job [--passages 1000] [--queries 100]
    python -m benchmarks.indexes_real_job --too-long [--documents 60] [--cache FILE]

Prints one JSON object a line. Per encoding (``ubinary`` rescored by default, ``ubinary``
with ``--wire-encoding ubinary`` unrescored, ``int8``, ``uint8``): recall@10 against
float, index and rescoring bytes, resident memory added by opening and searching, query
p50 (search only, vectors embedded beforehand). ``--too-long``: documents of joined
passages, most over MiniLM's 256 tokens, indexed with the limit known at the start (by
the model's name) and learned from the first refusals (the model's table entry removed
for the run, a stand-in for a model the table does not list), counting with the
tokenizer, the calibrated estimate, or the bare estimate: requests, 413s, chunks cut
again, wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.indexes_real import docstring_passages, first_sentence
from corpusbeam.inference import token_budget as tokens
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.searcher import Searcher
from pipeline.index_job import IndexJobConfig, run_index_job

BENCH = "indexes_real_job"
RUNS = {
    "float": {"encoding_format": "float"},
    "ubinary (rescored, default)": {"encoding_format": "ubinary"},
    "ubinary (unrescored, --wire-encoding ubinary)": {
        "encoding_format": "ubinary",
        "wire_encoding": "ubinary",
    },
    "int8": {"encoding_format": "int8"},
    "uint8": {"encoding_format": "uint8"},
}


def emit(metric: str, value, unit: str, **extra) -> None:
    print(json.dumps({"benchmark": BENCH, "metric": metric, "value": value, "unit": unit, **extra}))
    sys.stdout.flush()


_SERVE = """
import sys, numpy as np
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
from corpusbeam.retrieval.searcher import Searcher
import faiss, pyarrow.parquet, pyarrow.compute  # libraries loaded before measuring
faiss.omp_set_num_threads(1)
xq = np.load(sys.argv[2])
before = rss()
s = Searcher(sys.argv[1], endpoint=sys.argv[3])
for i in range(xq.shape[0]):
    s.search_vectors(xq[i : i + 1], k=10)
print(rss() - before)
"""


def serving_rss_kib(folder: Path, xq: np.ndarray, url: str, work: Path) -> int:
    """Resident memory a fresh process adds by opening the folder and searching it."""
    path = work / "xq.npy"
    np.save(path, xq)
    out = subprocess.run(
        [sys.executable, "-c", _SERVE, str(folder), str(path), url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(out.stdout.split()[-1])


def _job(corpus: Path, out: Path, url: str, **kw) -> IndexJobConfig:
    return IndexJobConfig(
        inputs=(str(corpus),),
        output=str(out),
        endpoint=url,
        pipeline_args=("--runner=DirectRunner",),
        **kw,
    )


def recall_runs(args, work: Path, passages: list[str], queries: list[str], url: str) -> None:
    corpus = work / "passages.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(passages))
    )
    import faiss

    faiss.omp_set_num_threads(1)  # one thread a query, as the service searches
    top: dict[str, list[set[int]]] = {}
    for name, kw in RUNS.items():
        t0 = time.perf_counter()
        result = run_index_job(_job(corpus, work / name.split()[0] / str(len(top)), url, **kw))
        seconds = time.perf_counter() - t0
        with Searcher(result.folder, endpoint=url) as s:
            xq = s.embed_texts(queries)
            lat = []
            for i in range(xq.shape[0]):
                t = time.perf_counter()
                s.search_vectors(xq[i : i + 1], k=10)
                lat.append((time.perf_counter() - t) * 1000)
            hits = s.search_vectors(xq, k=10)
            m = s.folder.manifest
        rss = serving_rss_kib(result.folder, xq, url, work)
        top[name] = [{h.id for h in row} for row in hits]
        files = {f: v["bytes"] for f, v in m.files.items()}
        index_bytes = sum(v for f, v in files.items() if f.startswith(("index", "shards")))
        extra = {
            "encoding": m.encoding,
            "factory": m.index_factory,
            "passages": len(passages),
            "queries": len(queries),
            "index_bytes": index_bytes,
            "rescore_bytes": files.get("rescore.npy", 0),
            "serving_rss_kib": rss,
            "baseline": "exact float search: the float folder's IDMap2,Flat, same run",
            "query_p50_ms": round(float(np.median(lat)), 4),
            "job_seconds": round(seconds, 1),
            "manifest_recall": m.recall,
            "note": m.note,
        }
        if name == "float":
            emit("recall_at_10_vs_exact_float", 1.0, "fraction", run=name, **extra)
            continue
        ref = top["float"]
        recall = np.mean([len(a & b) / 10 for a, b in zip(top[name], ref, strict=True)])
        emit("recall_at_10_vs_exact_float", round(float(recall), 4), "fraction", run=name, **extra)


# (label, --token-count, whether the model's limit is known before the first request)
TOO_LONG_RUNS = (
    ("tokenizer, limit known", "auto", True),
    ("tokenizer, limit learned", "auto", False),
    ("ratio learned, limit learned", "calibrated", False),
    ("no ratio learning, limit learned", "estimate", False),
)


@contextlib.contextmanager
def _unknown_model(known: bool):
    """A benchmark-only stand-in for a model the table does not list: its
    ``KNOWN_LIMITS`` entries are removed for the run (the job runs in this process)."""
    saved = dict(tokens.KNOWN_LIMITS)
    if not known:
        for name in [n for n in tokens.KNOWN_LIMITS if "minilm" in n]:
            del tokens.KNOWN_LIMITS[name]
    try:
        yield
    finally:
        tokens.KNOWN_LIMITS.clear()
        tokens.KNOWN_LIMITS.update(saved)


def too_long_runs(args, work: Path, passages: list[str], url: str, ep) -> None:
    docs, current = [], []
    for p in passages:
        current.append(p)
        if sum(len(c) for c in current) > 1500:
            docs.append("\n\n".join(current))
            current = []
        if len(docs) >= args.documents:
            break
    corpus = work / "long.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs))
    )
    from corpusbeam.inference.server.minilm import MiniLMModel

    counts = [MiniLMModel().count_tokens(d) for d in docs]
    over = sum(c > 256 for c in counts) / len(counts)
    for n, (label, mode, known) in enumerate(TOO_LONG_RUNS):
        before = ep.metrics()
        t0 = time.perf_counter()
        with _unknown_model(known):
            result = run_index_job(_job(corpus, work / f"long-{n}", url, token_count=mode))
        seconds = time.perf_counter() - t0
        after = ep.metrics()

        def delta(status: str, before=before, after=after) -> int:
            key = f'corpusbeam_requests_total{{route="/embeddings",status="{status}"}}'
            return int(after.get(key, 0) - before.get(key, 0))

        emit(
            "too_long_requests",
            delta("200") + delta("413"),
            "requests",
            run=label,
            token_count=mode,
            limit_known_at_start=known,
            refused_413=delta("413"),
            documents=len(docs),
            share_over_256_tokens=round(over, 3),
            exit_code=result.exit_code,
            failed=result.report["counts"]["failed"],
            chunks_indexed=result.report["counts"]["indexed"],
            too_long=result.report["too_long"],
            baseline="tokenizer, limit known (same run)",
            wall_seconds=round(seconds, 1),
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--too-long", action="store_true")
    ap.add_argument("--documents", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, help="keep the scanned passages here (JSON)")
    ap.add_argument("--quick", action="store_true", help="200 passages, 20 queries, 10 documents")
    args = ap.parse_args(argv)
    if args.quick:
        args.passages, args.queries, args.documents = 200, 20, 10
    if args.cache and args.cache.exists():
        pool = json.loads(args.cache.read_text())
    else:
        pool = docstring_passages()  # minutes: every docstring under site-packages
        if args.cache:
            args.cache.write_text(json.dumps(pool))
    rng = random.Random(args.seed)
    rng.shuffle(pool)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_endpoint(EndpointConfig(model="minilm"), subprocess=True) as ep,
    ):
        work = Path(tmp)
        if args.too_long:
            too_long_runs(args, work, pool, ep.url, ep)
            return
        passages = pool[: args.passages]
        queries = [first_sentence(p) for p in pool[args.passages : args.passages + args.queries]]
        recall_runs(args, work, passages, queries, ep.url)


if __name__ == "__main__":
    main()
