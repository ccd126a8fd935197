"""Query latency on a 1,000,000-vector index: direct FAISS, the library, and the HTTP service.

    python -m benchmarks.search_latency [--n 1000000] [--cache DIR] [--quick]

Two index output folders (``DIR/CURRENT`` + ``versions/v1``) of the same 1M x 384 seeded
clustered vectors (``benchmarks.indexes_scale``'s data model; queries from another
stream, not in the index):

- float: ``IVF1024,SQ8`` (the auto choice at a 1 GB budget is ``IVF4096,SQ8``, whose
  training takes ~10 minutes on 2 cores; 1024 lists keep the whole run near 5), nprobe
  tuned by ``build_folder``;
- ubinary: ``IDMap,BFlat`` (the auto choice) with int8 rescoring vectors, rescored 10x.

For each: p50 / p99 latency and queries a second at concurrency 1, 8 and 32 for

- ``direct``: ``IndexFolder.search`` (FAISS + rescoring) in this process, in threads;
- ``service``: ``POST /search {"vector": ...}`` over loopback HTTP to ``corpusbeam serve``
  in a child process (so client and server do not share a GIL), from that many threads,
  each with its own keep-alive httpx client.

FAISS runs one thread a query in both (``--threads 1``, the service's default): with
single queries the parallelism comes from concurrent requests.

``service_added_latency`` is the service's p50 minus the direct p50 at concurrency 1,
the same query vectors (target: under 2 ms). ``embed_share`` sends text queries through
the service with the hash model behind a local endpoint (384 native dimensions, child
process) and reports the share of the service's time spent embedding the query
(``embed_ms / took_ms`` from the answers) and the client-side p50.

``--cache DIR`` keeps the built folders between runs (building takes ~2 minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import httpx
import numpy as np

from benchmarks._added_latency import added, added_minimal_client
from benchmarks._common import emit
from benchmarks.indexes_scale import dataset
from corpusbeam.inference import codec
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes import BuildConfig, build_folder, open_index

BENCH = "search_latency"
ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)
_READY = "corpusbeam search: listening on "


def build(root: Path, n: int, d: int) -> None:
    """The two output folders, unless ``root`` already holds them."""
    if (root / "float" / "CURRENT").is_file() and (root / "ubinary" / "CURRENT").is_file():
        return
    xb = dataset(n, d)
    meta = {
        "document_id": [f"doc-{i // 4}" for i in range(n)],
        "chunk": [i % 4 for i in range(n)],
        "uri": [f"file:///corpus/doc-{i // 4}.txt" for i in range(n)],
        "modality": ["text"] * n,
        "text": [f"passage {i}" for i in range(n)],
        "lang": ["en" if i % 3 else "fr" for i in range(n)],
    }
    factory = "IVF1024,SQ8" if n >= 200_000 else None
    common = {"model": "synthetic", "endpoint": "local://hash"}
    for enc in ("float", "ubinary"):
        out = root / enc
        t0 = time.perf_counter()
        if enc == "float":
            m = build_folder(
                out / "versions" / "v1",
                xb,
                meta,
                encoding="float",
                config=BuildConfig(factory=factory, eval_queries=200, latency_budget_ms=5.0),
                **common,
            )
        else:
            m = build_folder(
                out / "versions" / "v1",
                codec.quantize(xb, "ubinary"),
                meta,
                encoding="ubinary",
                rescore_vectors=codec.quantize(xb, "int8"),
                config=BuildConfig(eval_queries=200),
                **common,
            )
        (out / "CURRENT").write_text("v1")
        emit(
            BENCH,
            f"{enc}_build_time",
            round(time.perf_counter() - t0, 1),
            "s",
            factory=m.index_factory,
            search_params=m.search_params,
            recall_at_10=m.recall["value"] if m.recall else None,
            n=n,
            d=d,
        )


def _stats(latencies: list[float], wall: float) -> dict:
    ms = np.asarray(latencies) * 1000
    return {
        "loadavg_1m": round(os.getloadavg()[0], 2),  # a shared machine: say how busy
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "qps": round(len(latencies) / wall, 1),
    }


def direct(folder, xq: np.ndarray, concurrency: int, k: int) -> dict:
    """``folder.search`` of one query at a time, ``concurrency`` threads."""
    lat: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        faiss.omp_set_num_threads(1)  # OpenMP keeps it per thread: set it in each
        t0 = time.perf_counter()
        folder.search(xq[i : i + 1], k)
        took = time.perf_counter() - t0
        with lock:
            lat.append(took)

    for i in range(min(20, len(xq))):  # warm the pages the queries touch
        folder.search(xq[i : i + 1], k)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(len(xq))))
    return _stats(lat, time.perf_counter() - started)


def service(url: str, bodies: list[dict], concurrency: int) -> tuple[dict, list[dict]]:
    """``POST /search`` of each body, ``concurrency`` threads each with its own client."""
    lat: list[float] = []
    answers: list[dict] = []
    lock = threading.Lock()
    local = threading.local()

    def one(body: dict) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=60)
            clients.append(client)
        t0 = time.perf_counter()
        r = client.post("/search", json=body)
        took = time.perf_counter() - t0
        r.raise_for_status()
        with lock:
            lat.append(took)
            answers.append(r.json())

    clients: list[httpx.Client] = []
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, bodies[:concurrency]))  # open the connections, warm up
        lat.clear()
        answers.clear()
        started = time.perf_counter()
        list(pool.map(one, bodies))
        wall = time.perf_counter() - started
    for client in clients:
        client.close()
    return _stats(lat, wall), answers


class _Server:
    """``corpusbeam serve`` in a child process."""

    def __init__(self, dirs: list[Path], endpoint: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "corpusbeam", "serve", *map(str, dirs), "--port", "0"]
        cmd += ["--endpoint", endpoint, "--no-verify", "--poll-interval", "0", "--threads", "1"]
        cmd += ["--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(_READY):
            self.close()
            raise RuntimeError(f"serve did not start: {line!r}")
        self.url = line[len(_READY) :].strip()
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve not ready in 300 s")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=None, help="queries a level (default 1000)")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--cache", help="keep the built folders here")
    ap.add_argument("--added-only", action="store_true", help="only the added-latency part")
    ap.add_argument("--quick", action="store_true", help="5,000 vectors, few queries")
    args = ap.parse_args(argv)
    if args.quick:
        args.n = 5_000
    args.nq = args.nq or (40 if args.quick else 1000)
    faiss.omp_set_num_threads(1)  # as the service: concurrency comes from the requests
    tmp = None
    if args.cache:
        root = Path(args.cache)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="search_latency-")
        root = Path(tmp.name)
    n, d, k = args.n, args.d, args.k
    build(root, n, d)
    queries = Queries.make(args.nq, d, k)
    common = {"n": n, "d": d, "k": k, "cores": os.cpu_count()}
    try:
        with running_endpoint(EndpointConfig(model="hash", dimensions=d), subprocess=True) as ep:
            for enc in ("float", "ubinary"):
                measure_folder(root / enc, enc, ep.url, queries, common, args.added_only)
    finally:
        if tmp is not None:
            tmp.cleanup()


@dataclass(frozen=True)
class Queries:
    """The same queries as vectors, as ``POST /search`` bodies of those vectors, and as
    texts; ``k`` results each."""

    xq: np.ndarray
    bodies: list[dict]
    texts: list[str]
    k: int

    @classmethod
    def make(cls, nq: int, d: int, k: int) -> Queries:
        xq = dataset(max(nq, 50), d, stream=2)[:nq]
        bodies = [{"vector": x.tolist(), "k": k} for x in xq]
        texts = [f"passage about topic {i} and its neighbours" for i in range(nq)]
        return cls(xq, bodies, texts, k)


def measure_folder(
    out: Path, enc: str, endpoint: str, queries: Queries, common: dict, added_only: bool
) -> None:
    """One output folder searched directly and through a ``corpusbeam serve`` child: the
    added latency, then each concurrency level and the query-embedding share."""
    folder = open_index(out / "versions" / "v1", verify=False, mmap=True)
    info = {
        "factory": folder.manifest.index_factory,
        "search_params": folder.manifest.search_params,
        "rescored": folder.manifest.rescore is not None,
        **common,
    }
    server = _Server([out], endpoint)
    try:
        # First, while the machine is quietest (before the 32-thread runs).
        emit_added_latency(enc, folder, server.url, queries, info)
        if added_only:
            return
        emit_concurrency_levels(enc, folder, server.url, queries, info)
        emit_embed_share(enc, server.url, queries, info)
    finally:
        server.close()


def emit_added_latency(enc: str, folder, url: str, queries: Queries, info: dict) -> None:
    """The service's added latency at concurrency 1: with httpx, then a minimal client."""
    xq, bodies, k = queries.xq, queries.bodies, queries.k
    emit(BENCH, f"{enc}_service_added_latency", **added(folder, url, xq, bodies, k), **info)
    emit(
        BENCH,
        f"{enc}_service_added_latency_minimal_client",
        **added_minimal_client(folder, url, xq, bodies, k),
        **info,
    )


def emit_concurrency_levels(enc: str, folder, url: str, queries: Queries, info: dict) -> None:
    """p50, p99 and queries a second, direct and through the service, at each concurrency."""
    for c in CONCURRENCY:
        sd = direct(folder, queries.xq, c, queries.k)
        emit(BENCH, f"{enc}_direct", sd["p50_ms"], "ms p50", concurrency=c, **sd, **info)
        ss, _ = service(url, queries.bodies, c)
        emit(
            BENCH,
            f"{enc}_service",
            ss["p50_ms"],
            "ms p50",
            concurrency=c,
            ratio=round(ss["qps"] / sd["qps"], 3),
            baseline="direct qps at the same concurrency",
            **ss,
            **info,
        )


def emit_embed_share(enc: str, url: str, queries: Queries, info: dict) -> None:
    """Text queries through the service: the share of its time spent embedding them."""
    tbodies = [{"query": t, "k": queries.k} for t in queries.texts]
    st, answers = service(url, tbodies, 1)
    embed = np.array([a["embed_ms"] for a in answers])
    took = np.array([a["took_ms"] for a in answers])
    emit(
        BENCH,
        f"{enc}_embed_share",
        round(float(np.median(embed / took)), 3),
        "ratio",
        embed_p50_ms=round(float(np.median(embed)), 3),
        server_p50_ms=round(float(np.median(took)), 3),
        client_p50_ms=st["p50_ms"],
        client_p99_ms=st["p99_ms"],
        qps=st["qps"],
        endpoint="hash model, local endpoint in a child process",
        concurrency=1,
        **info,
    )


if __name__ == "__main__":
    main()
