"""The search service under load, as a new user runs it: ``corpusbeam index`` over 20,000
documents (hash model, default options), then ``corpusbeam serve DIR`` (hybrid by default,
the query embedder started by the service for ``local://hash``), both whole processes
started by this script.

    python -m benchmarks.service_load [--docs 20000] [--requests 800] [--cache DIR] [--quick]

Figures, at concurrency 8 (``POST /search {"query", "k": 10}``, each client thread with
its own keep-alive connection):

- ``new_query_p50``: every query different (nothing cached), the target <= 25 ms;
- ``repeated_query_p50``: one query over and over (answered from the query-embedding
  cache after the first);
- ``healthz_p50``: ``GET /healthz`` at the same concurrency, the HTTP floor;
- each figure for two services in the same run, alternating ``--rounds`` times:
  ``embed: in-process`` (the default: ``local://`` text queries run the model in the
  service's process) and ``embed: local-endpoint`` (``serve --local-endpoint``: through a
  local endpoint on loopback in the service's process, the path before); an in-process
  figure's ``ratio`` is to the local-endpoint one of the same round, and ``cpu_ratio``
  compares the service process's CPU milliseconds a request (``service_cpu_ms_a_request``,
  from ``/proc``), which a loaded machine disturbs far less than latency;
- ``profile_*``: where a new query's time goes, one query at a time in this process
  against the same version (p50 of each step: embedding through the local endpoint,
  dense search at the hybrid depth, lexical search at that depth, the fusion, the hits'
  rows, JSON), beside the service's own ``embed_ms`` / ``took_ms`` from its answers.

The machine may be shared: every line carries ``loadavg_1m``. ``--cache DIR`` keeps the
built index between runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import faiss
import httpx
import orjson

from benchmarks._common import emit
from benchmarks._query_load import _env
from benchmarks.index_job import TOPICS, write_corpus
from benchmarks.search_latency import service

BENCH = "service_load"
CONCURRENCY = 8


def new_queries(n_docs: int, count: int, seed: int = 7) -> list[str]:
    """``count`` distinct queries, each like one document's text."""
    picked = random.Random(seed).sample(range(n_docs), count)
    return [
        f"Document {i} is about {TOPICS[i % len(TOPICS)]} and number {i * 7 % 1000}" for i in picked
    ]


def build(root: Path, docs: int) -> Path:
    out = root / f"index-{docs}"
    if (out / "CURRENT").is_file():
        return out
    corpus = root / f"corpus-{docs}"
    write_corpus(corpus, docs)
    cmd = [sys.executable, "-m", "corpusbeam", "index", str(corpus), "--output", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    emit(BENCH, "index_build", round(time.perf_counter() - started, 1), "s", docs=docs,
         loadavg_1m=round(os.getloadavg()[0], 2))  # fmt: skip
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, pid: int, bodies: list[dict]) -> dict:
    """``bodies`` at concurrency 8, with the service process's CPU ms a request: the figure
    a loaded machine disturbs least (p50 at concurrency 8 on 2 cores follows from it)."""
    cpu = cpu_seconds(pid)
    stats, answers = service(url, bodies, CONCURRENCY)
    stats["service_cpu_ms_a_request"] = round((cpu_seconds(pid) - cpu) * 1000 / len(bodies), 3)
    if answers and "took_ms" in answers[0]:
        stats["service_took_ms_p50"] = round(statistics.median(a["took_ms"] for a in answers), 3)
        embeds = [a["embed_ms"] for a in answers if a.get("embed_ms") is not None]
        stats["service_embed_ms_p50"] = round(statistics.median(embeds), 3) if embeds else None
    return stats


def healthz_p50(url: str, pid: int, n: int) -> dict:
    lat: list[float] = []
    cpu = cpu_seconds(pid)
    with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=8)) as c:

        def one(_: int) -> None:
            t0 = time.perf_counter()
            c.get("/healthz").raise_for_status()
            lat.append(time.perf_counter() - t0)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, range(n)))
    return {"p50_ms": round(statistics.median(lat) * 1000, 3),
            "service_cpu_ms_a_request": round((cpu_seconds(pid) - cpu) * 1000 / n, 3),
            "loadavg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip


@contextmanager
def serving(target: Path, *flags: str):
    """``corpusbeam serve TARGET FLAGS`` in a child process, ready: its URL."""
    cmd = [sys.executable, "-m", "corpusbeam", "serve", str(target), "--port", "0",
           "--log-level", "warning", "--poll-interval", "0", *flags]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("corpusbeam search: listening on "):
            raise SystemExit(f"serve did not start: {line!r}")
        url = line.rsplit(" ", 1)[1].strip()
        while httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


def one_round(target: Path, queries: list[str], requests: int, flags: tuple[str, ...]) -> dict:
    """healthz, new queries, one repeated query against a fresh ``serve`` with ``flags``."""
    with serving(target, *flags) as (url, pid):
        return {
            "healthz_p50": healthz_p50(url, pid, requests),
            "new_query_p50": load(url, pid, [{"query": q, "k": 10} for q in queries[:requests]]),
            "repeated_query_p50": load(url, pid, [{"query": queries[-1], "k": 10}] * requests),
        }


def profile(target: Path, queries: list[str], **extra) -> None:
    """Each step of a new hybrid query, one at a time, in this process (p50, ms)."""
    import numpy as np

    from corpusbeam.retrieval.hybrid import HYBRID_DEPTH, rrf
    from corpusbeam.retrieval.searcher import Searcher

    faiss.omp_set_num_threads(1)
    steps: dict[str, list[float]] = {k: [] for k in
        ("embed", "dense", "lexical", "fusion", "rows", "json", "whole_search_texts")}  # fmt: skip
    with Searcher(target, verify=False, query_cache=0) as s:
        s.embed_texts(["warm up"])
        for q in queries:
            t = [time.perf_counter()]
            xq = s.embed_texts([q])
            t.append(time.perf_counter())
            dense = s.folder.search(xq, HYBRID_DEPTH).I
            t.append(time.perf_counter())
            lex = s.lexical.search([q], HYBRID_DEPTH)
            t.append(time.perf_counter())
            fused = rrf({"dense": dense[0].tolist(), "lexical": lex.I[0].tolist()}, 10)
            t.append(time.perf_counter())
            hits = s._fused(fused)
            t.append(time.perf_counter())
            orjson.dumps({"hits": [h.to_dict() for h in hits]}, option=orjson.OPT_SERIALIZE_NUMPY)
            t.append(time.perf_counter())
            s.search_texts([q], 10, vectors=xq)
            t.append(time.perf_counter())
            for name, a, b in zip(steps, t, t[1:], strict=False):
                steps[name].append(b - a)
    for name, values in steps.items():
        ms = float(np.percentile(np.asarray(values) * 1000, 50))
        emit(BENCH, f"profile_{name}_p50", round(ms, 3), "ms", queries=len(queries),
             note="one query at a time in the benchmark's process, same version",
             loadavg_1m=round(os.getloadavg()[0], 2), **extra)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two services")
    ap.add_argument("--cache", help="keep the built index here")
    ap.add_argument("--quick", action="store_true", help="2,000 documents, 80 requests, 1 round")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.requests, args.rounds = 2_000, 80, 1
    root = Path(args.cache or tempfile.mkdtemp(prefix="service-load-"))
    root.mkdir(parents=True, exist_ok=True)
    target = build(root, args.docs)
    variants = {"in-process": (), "local-endpoint": ("--local-endpoint",)}
    for r in range(args.rounds):
        got = {}
        for v, (name, flags) in enumerate(variants.items()):
            queries = new_queries(args.docs, args.requests + 1, seed=7 + 10 * r + v)
            got[name] = one_round(target, queries, args.requests, flags)
        for name in variants:
            for metric, stats in got[name].items():
                other = got["local-endpoint"][metric]
                extra = {
                    "ratio": round(stats["p50_ms"] / other["p50_ms"], 3),
                    "baseline": "the same service with --local-endpoint, same round",
                }
                if "service_cpu_ms_a_request" in stats:
                    mine, theirs = (x["service_cpu_ms_a_request"] for x in (stats, other))
                    extra["cpu_ratio"] = round(mine / theirs, 3) if theirs else None
                rest = {k: v for k, v in stats.items() if k != "p50_ms"}
                emit(BENCH, metric, stats["p50_ms"], "ms", **rest, embed=name, round=r,
                     docs=args.docs, concurrency=CONCURRENCY, mode="hybrid (default)",
                     **(extra if name == "in-process" else {}))  # fmt: skip
    profile(target, new_queries(args.docs, 200, seed=99), docs=args.docs)


if __name__ == "__main__":
    main()
