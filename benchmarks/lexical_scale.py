"""Lexical and hybrid search at scale: BM25 build time and bytes, query latency against
dense, and the service's p50 for hybrid against dense.

    python -m benchmarks.lexical_scale [--n 1000000] [--words 60] [--segments 1]
                                       [--cache DIR] [--quick]

The chunks: ``--n`` texts of about ``--words`` words (uniform in [words/2, 3 words/2]),
each word drawn from the word frequencies of the standard library's docstrings
(``benchmarks.relevance_docstrings``: real vocabulary, Zipf-like, ~20k distinct words;
the sequences themselves are random). The queries: docstring summaries (real text,
4 to 30 words). The vectors: ``benchmarks.indexes_scale``'s seeded clustered data, 256
dimensions, ``IVF1024,SQ8`` (as ``benchmarks.search_latency``), the manifest's endpoint
``local://hash`` so the service embeds text queries with the hash model.

Figures (one JSON line each, ``loadavg_1m`` beside every timing):

- ``bm25_build``: ``indexes.lexical.index.build_lexical`` over the texts (what the folder
  writer runs), seconds, with the lexical folder's bytes and postings; ``--segments S``
  builds the folder's lexical index as S segments of consecutive ids (as the id-range
  parts of an index job give), searched as one;
- ``lexical_index_p50``: ``LexicalIndex.search`` alone (pruned, the default) and
  ``lexical_exhaustive_p50`` (``search_exhaustive``, every posting scored: the reference
  it equals), against ``dense_index_p50``: the FAISS index's own search of the same
  queries' vectors; k = 10, one thread, one query at a time. Each is timed by the wall
  clock and by the thread's CPU time (``cpu_p50_ms``: what the query costs, less
  sensitive to a loaded machine); every lexical result is checked equal to exhaustive;
- ``{dense,lexical,hybrid}_latency``: ``Searcher.search_texts`` of one query at a time
  with precomputed query vectors (embedding not counted), k = 10, one thread (FAISS
  too): p50 and p99, with the ratio of each p50 to dense's;
- ``service_{dense,hybrid}_p50``: ``POST /search {"query", "mode"}`` to ``corpusbeam serve``
  in a child process at concurrency 8 (embedding included: the hash model behind a local
  endpoint in another child process), p50 and p99, hybrid's ratio to dense's.

``bm25_build`` also gives the build's CPU seconds (``cpu_s``) and its peak anonymous
memory above what the process held before it (``peak_mib``). ``--no-service`` skips
the service figures.

``--cache DIR`` keeps the built folder (the 1M build takes several minutes); a cached
folder whose lexical index has another number of segments (or an older format, such as
segments without block maxima) gets its lexical index rebuilt, the vectors kept.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from benchmarks._common import emit
from benchmarks._rss import RssSampler, anon_mib
from benchmarks.indexes_scale import dataset
from benchmarks.relevance_docstrings import docstring_pairs
from benchmarks.search_latency import _Server, _stats, service
from corpusbeam.inference.server import EndpointConfig, running_endpoint

BENCH = "lexical_scale"
D = 256


def vocabulary() -> tuple[list[str], np.ndarray, list[str]]:
    """(words, their probabilities, query texts) from the stdlib docstrings."""
    pairs = docstring_pairs()
    counts = collections.Counter(
        w for _, summary, body in pairs for w in re.findall(r"\w+", f"{summary} {body}")
    )
    words = sorted(counts)
    p = np.asarray([counts[w] for w in words], dtype=np.float64)
    return words, p / p.sum(), [summary for _, summary, _ in pairs]


def texts_for(n: int, words_a_chunk: int, seed: int = 0) -> list[str]:
    words, p, _ = vocabulary()
    vocab = np.asarray(words, dtype=object)
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        lengths = rng.integers(words_a_chunk // 2, words_a_chunk * 3 // 2 + 1, m)
        drawn = vocab[rng.choice(len(words), size=int(lengths.sum()), p=p)]
        cuts = np.cumsum(lengths)[:-1]
        out.extend(" ".join(chunk) for chunk in np.split(drawn, cuts))
    return out


def lexical_segments(version: Path) -> int | None:
    """The number of segments of ``version``'s lexical index (None: an older format)."""
    info = json.loads((version / "manifest.json").read_text()).get("lexical") or {}
    if "segments" not in info or not all("blocks" in s for s in info["segments"]):
        return None
    return len(info["segments"])


def relex(version: Path, segments: int) -> None:
    """Rebuild ``version``'s lexical index from its parts' text as ``segments`` segments of
    consecutive ids, in place, and record it (and its files' checksums) in the manifest."""
    from indexes import open_index
    from indexes.lexical.index import build_lexical
    from indexes.storage.files import sha256
    from indexes.storage.manifest import Manifest

    parts = open_index(version, verify=False).parts
    ids = parts.ids()
    n = len(ids)
    shutil.rmtree(version / "lexical", ignore_errors=True)
    before = anon_mib(os.getpid())
    rss = RssSampler(os.getpid(), interval=0.05).start()
    t0, c0 = time.perf_counter(), time.process_time()
    info = build_lexical(version, ids, parts.iter_column("text"), segment_rows=-(-n // segments))
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = rss.stop().peak_launcher_anon - before
    lexical = [p for p in sorted((version / "lexical").rglob("*")) if p.is_file()]
    size = sum(p.stat().st_size for p in lexical)
    emit(BENCH, "bm25_build", round(took, 1), "s", bytes=size, bytes_per_chunk=round(size / n, 1),
         postings=info["postings"], terms=info["terms"], segments=segments, n=n,
         peak_mib=round(peak), cpu_s=round(cpu, 1),
         loadavg_1m=round(os.getloadavg()[0], 2))  # fmt: skip
    m = Manifest.from_json((version / "manifest.json").read_text())
    files = {k: v for k, v in m.files.items() if not k.startswith("lexical/")}
    for p in lexical:
        files[p.relative_to(version).as_posix()] = {"sha256": sha256(p), "bytes": p.stat().st_size}
    m = dataclasses.replace(m, lexical=info, files=dict(sorted(files.items())))
    (version / "manifest.json").write_text(m.to_json())


def build(folder: Path, texts: list[str]) -> None:
    from indexes import BuildConfig, build_folder
    from indexes.lexical.index import build_lexical

    n = len(texts)
    scratch = Path(tempfile.mkdtemp(prefix="bm25-"))
    try:
        before = anon_mib(os.getpid())
        rss = RssSampler(os.getpid(), interval=0.05).start()
        t0, c0 = time.perf_counter(), time.process_time()
        info = build_lexical(scratch, np.arange(n, dtype=np.int64), texts)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = rss.stop().peak_launcher_anon - before
        size = sum(p.stat().st_size for p in (scratch / "lexical").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(scratch)
    emit(
        BENCH,
        "bm25_build",
        round(took, 1),
        "s",
        bytes=size,
        bytes_per_chunk=round(size / n, 1),
        postings=info["postings"],
        terms=info["terms"],
        n=n,
        peak_mib=round(peak),
        cpu_s=round(cpu, 1),
        loadavg_1m=round(os.getloadavg()[0], 2),
    )
    meta = {
        "document_id": [f"doc-{i // 4}" for i in range(n)],
        "chunk": [i % 4 for i in range(n)],
        "modality": ["text"] * n,
        "text": texts,
    }
    t0 = time.perf_counter()
    m = build_folder(
        folder / "versions" / "v1",
        dataset(n, D),
        meta,
        encoding="float",
        model="hash",
        dimensions=D,
        endpoint="local://hash",
        config=BuildConfig(
            factory="IVF1024,SQ8" if n >= 200_000 else None, eval_queries=100, latency_budget_ms=5
        ),
    )
    (folder / "CURRENT").write_text("v1")
    emit(
        BENCH,
        "folder_build",
        round(time.perf_counter() - t0, 1),
        "s",
        factory=m.index_factory,
        n=n,
        loadavg_1m=round(os.getloadavg()[0], 2),
    )


def latencies(folder: Path, queries: list[str], k: int) -> dict[str, dict]:
    from corpusbeam.retrieval.searcher import Searcher

    faiss.omp_set_num_threads(1)
    out: dict[str, dict] = {}
    with Searcher(folder, verify=False) as s:
        xq = s.embed_texts(queries)
        for mode in ("dense", "lexical", "hybrid"):
            for i in range(min(20, len(queries))):  # warm the pages the queries touch
                s.search_texts([queries[i]], k, mode=mode, vectors=xq[i : i + 1])
            lat = []
            started = time.perf_counter()
            for i, q in enumerate(queries):
                t0 = time.perf_counter()
                s.search_texts([q], k, mode=mode, vectors=xq[i : i + 1])
                lat.append(time.perf_counter() - t0)
            out[mode] = _stats(lat, time.perf_counter() - started)
    return out


def _timed(fn, items: list) -> tuple[dict, list]:
    """p50/p99 of ``fn(item)`` one at a time, by wall clock and by the thread's CPU time."""
    wall, cpu, out = [], [], []
    for item in items:
        w0, c0 = time.perf_counter(), time.thread_time()
        out.append(fn(item))
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    stats = _stats(wall, sum(wall))
    stats["cpu_p50_ms"] = round(float(np.percentile(cpu, 50)) * 1000, 3)
    stats["cpu_p99_ms"] = round(float(np.percentile(cpu, 99)) * 1000, 3)
    return stats, out


def index_latencies(folder: Path, queries: list[str], k: int) -> dict[str, dict]:
    """The lexical index (pruned and exhaustive) and the FAISS index alone, one thread."""
    from corpusbeam.retrieval.searcher import Searcher

    faiss.omp_set_num_threads(1)
    with Searcher(folder, verify=False) as s:
        xq = s.embed_texts(queries)
        lex = s.lexical
        for q in queries[:20]:  # warm the pages and load the compiled loop
            lex.search([q], k)
            lex.search_exhaustive([q], k)
        rows = list(range(len(queries)))
        dense, _ = _timed(lambda i: s.folder.search(xq[i : i + 1], k), rows)
        pruned, got = _timed(lambda q: lex.search([q], k), queries)
        exhaustive, want = _timed(lambda q: lex.search_exhaustive([q], k), queries)
    pairs = zip(got, want, strict=True)
    if not all(np.array_equal(a.I, b.I) and np.array_equal(a.D, b.D) for a, b in pairs):
        raise SystemExit("pruned lexical search differs from exhaustive scoring")
    return {"dense_index": dense, "lexical_index": pruned, "lexical_exhaustive": exhaustive}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--nq", type=int, default=300)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--segments", type=int, default=1, help="lexical segments (default 1)")
    ap.add_argument("--cache", help="keep the built folder here")
    ap.add_argument("--quick", action="store_true", help="20,000 chunks, 50 queries")
    ap.add_argument("--no-service", action="store_true", help="skip the service figures")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.nq = 20_000, 50
    root = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="lexical_scale-"))
    folder = root / f"n{args.n}-w{args.words}"
    if not (folder / "CURRENT").is_file():
        if folder.exists():
            shutil.rmtree(folder)
        build(folder, texts_for(args.n, args.words))
    version = folder / "versions" / "v1"
    if lexical_segments(version) != args.segments:
        relex(version, args.segments)
    _, _, summaries = vocabulary()
    rng = np.random.default_rng(1)
    queries = [summaries[i] for i in rng.choice(len(summaries), args.nq, replace=False)]
    common = {"n": args.n, "k": args.k, "words_a_chunk": args.words, "threads": 1}
    common["segments"] = args.segments
    alone = index_latencies(folder, queries, args.k)
    for name, stats in alone.items():
        emit(BENCH, f"{name}_p50", stats["p50_ms"], "ms", p99_ms=stats["p99_ms"],
             cpu_p50_ms=stats["cpu_p50_ms"], cpu_p99_ms=stats["cpu_p99_ms"],
             ratio=round(stats["p50_ms"] / alone["dense_index"]["p50_ms"], 2),
             cpu_ratio=round(stats["cpu_p50_ms"] / alone["dense_index"]["cpu_p50_ms"], 2),
             baseline="dense_index p50, same run", equal_to_exhaustive=True,
             loadavg_1m=stats["loadavg_1m"], **common)  # fmt: skip
    lat = latencies(folder, queries, args.k)
    for mode, stats in lat.items():
        emit(
            BENCH,
            f"{mode}_latency_p50",
            stats["p50_ms"],
            "ms",
            p99_ms=stats["p99_ms"],
            ratio=round(stats["p50_ms"] / lat["dense"]["p50_ms"], 2),
            baseline="dense p50, same run",
            loadavg_1m=stats["loadavg_1m"],
            **common,
        )
    if args.no_service:
        return
    with running_endpoint(EndpointConfig(model="hash", dimensions=D), subprocess=True) as ep:
        server = _Server([folder], ep.url)
        try:
            results = {}
            for mode in ("dense", "hybrid"):
                bodies = [{"query": q, "k": args.k, "mode": mode} for q in queries]
                results[mode], _ = service(server.url, bodies, 8)
        finally:
            server.close()
        for mode, stats in results.items():
            emit(
                BENCH,
                f"service_{mode}_p50",
                stats["p50_ms"],
                "ms",
                p99_ms=stats["p99_ms"],
                qps=stats["qps"],
                concurrency=8,
                ratio=round(stats["p50_ms"] / results["dense"]["p50_ms"], 2),
                baseline="service dense p50, same run",
                loadavg_1m=stats["loadavg_1m"],
                n=args.n,
                segments=args.segments,
            )


if __name__ == "__main__":
    main()
