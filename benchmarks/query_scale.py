"""A whole query through ``Searcher`` on what the job built, against one exact scan.

    python -m benchmarks.query_scale [--chunks 300000] [--data DIR] [--queries 200]

Generates ``--chunks`` one-chunk documents (``benchmarks.index_job.write_corpus``) and
builds them with ``corpusbeam index`` and its default options (hash model, ``--index
auto``, ``--shards auto``) into ``DATA/out-N``, once: a later run reuses the corpus and
the output. Then, in this process, FAISS on one thread (``faiss.omp_set_num_threads(1)``),
the p50 of:

- ``dense``: ``Searcher.search_vectors`` of one query vector (the index search at the
  tuned parameters and the 10 hits' metadata rows), the query texts embedded beforehand;
  ``dense_text``: ``Searcher.search`` of the text, the query's embedding included;
- ``lexical``: ``Searcher.search(text, mode="lexical")``, hits with their rows;
- ``index_search``: ``IndexFolder.search`` alone, and ``rows``: the 10 hits' rows alone;
- ``searcher_open``: opening the ``Searcher`` (the first open derives the parts' Arrow
  row files, ``indexes.storage.row_files``);
- the baseline, ``exact_scan``: one query against all the vectors in ``IndexFlatIP``.

Each latency's ``ratio`` is to ``exact_scan`` (targets: dense <= 0.25, lexical <= 0.15).
``row_lookup`` times the rows of 10 random ids at the parts the job wrote and at 10 times
as many parts (the same rows written again), per hit, and the Parquet path it replaced
(``ratio``: 10x parts against the parts the job wrote; target <= 1.5). ``search_command``
runs ``--search-commands`` whole ``corpusbeam search`` processes, from process start.
``tuning`` reports what the build's tuner tried and chose (the manifest's ``recall``) and
the recall@10 of this run's text queries at the chosen parameters against the scan;
``dense_p50_at`` the whole dense query's p50 and that recall at other nprobe / efSearch
values (the tuner measures recall on indexed vectors, which can flatter it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from benchmarks._common import emit
from benchmarks._query_load import search_commands
from benchmarks.index_job import queries, run_job, write_corpus

BENCH = "query_scale"
COMMAND = "python -m benchmarks.query_scale"


def _p50_ms(fn: Callable[[int], object], n: int, rounds: int = 2) -> float:
    """Median over ``rounds`` passes of ``fn(i)`` for i in 0..n-1, ms a call (the
    first pass warms the caches)."""
    best = float("inf")
    for _ in range(rounds):
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        best = min(best, statistics.median(times))
    return best * 1000


def built(data: Path, chunks: int) -> tuple[Path, dict | None]:
    """The job's output for ``chunks`` documents under ``data`` (built when missing) and
    the job's report when it was built in this run."""
    corpus, out = data / f"corpus-{chunks}", data / f"out-{chunks}"
    if (out / "CURRENT").exists():
        return out, None
    if not corpus.exists():
        write_corpus(corpus, chunks)
    report, seconds, _, _ = run_job(corpus, str(out), [])
    report["wall_s"] = round(seconds, 1)
    return out, report


def row_lookup(folder, n_ids: int = 10, tries: int = 300) -> dict[str, float]:
    """Per-hit µs of the rows of ``n_ids`` random ids: the parts as written, 10x as many
    parts of the same rows, and the Parquet row-group path at the parts as written."""
    from indexes.building.writer import write_parts
    from indexes.reader import open_index
    from indexes.storage.row_files import RowFile
    from indexes.storage.tables import FolderData

    parts = len(folder.manifest.parts)
    table = folder.metadata()  # the rows once, to write them again in 10x the parts
    ids = table.column("id").to_numpy()
    data = FolderData(
        table=table,
        ids=ids,
        xb=np.zeros((ids.size, 1), np.float32),
        rescore_vectors=None,
        encoding="float",
        dimensions=1,
    )
    rng = np.random.default_rng(0)
    picks = [rng.choice(ids, n_ids, replace=False) for _ in range(tries)]
    out: dict[str, float] = {"parts": parts}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        readers = {}
        for label, p in (("as_written", parts), ("x10", 10 * parts)):
            (Path(tmp) / label).mkdir()
            infos, _ = write_parts(Path(tmp) / label, data, p)
            parts_of = _parts(Path(tmp) / label, infos)
            readers[label] = RowFile.open(Path(tmp) / label, parts_of, digest=f"{p:064x}")
        # Rounds alternate between the two, so that the machine's load falls on both alike.
        for label in [*readers] * 7:
            ms = _p50_ms(lambda i, r=readers[label]: r.lookup(picks[i]), tries, rounds=1)
            out[f"{label}_us"] = min(out.get(f"{label}_us", 1e9), ms * 1000 / n_ids)
        parquet = open_index(folder.path).parts  # the row-group path it replaced
        out["parquet_us"] = _p50_ms(lambda i: parquet.lookup(picks[i]), tries) * 1000 / n_ids
    return out


def _parts(folder: Path, infos):
    from indexes.storage.part_reader import Parts

    return Parts(folder, infos, encoding="float", dimensions=1)


def measure(out: Path, n_queries: int) -> dict[str, float]:
    """The in-process p50s (see the module docstring)."""
    from corpusbeam import Searcher
    from indexes.building.tune import recall_at_k
    from indexes.storage.row_files import ROWS_DIR
    from indexes.storage.versions import resolve_index_folder

    faiss.omp_set_num_threads(1)
    chunks = int(out.name.split("-")[-1])
    texts = queries(chunks, n_queries)
    derived = not (resolve_index_folder(out) / ROWS_DIR).exists()
    t0 = time.perf_counter()
    s = Searcher(out)
    got = {"open_s": time.perf_counter() - t0, "derived": derived}
    xq = s.embed_texts(texts)
    got |= {
        "dense": _p50_ms(lambda i: s.search_vectors(xq[i], 10), len(texts)),
        "dense_text": _p50_ms(lambda i: s.search(texts[i], mode="dense"), len(texts)),
        "lexical": _p50_ms(lambda i: s.search(texts[i], mode="lexical"), len(texts)),
        "index_search": _p50_ms(lambda i: s.folder.search(xq[i : i + 1], 10), len(texts)),
    }
    hits = [s.folder.search(xq[i : i + 1], 10).I[0] for i in range(len(texts))]
    got["rows"] = _p50_ms(lambda i: s.folder.lookup(hits[i][hits[i] >= 0]), len(texts))
    ids, xb, _ = s.folder.vectors()
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb.astype(np.float32))
    del xb
    q = xq.astype(np.float32)
    got["exact_scan"] = _p50_ms(lambda i: flat.search(q[i : i + 1], 10), len(texts))
    # recall@10 of these queries at the tuned parameters (the tuner measured sampled ones)
    _, rows_gt = flat.search(q, 10)
    I_gt = ids[rows_gt]
    got["recall"] = recall_at_k(s.folder.search(xq, 10).I, I_gt, 10)
    got["sweep"] = sweep(s, xq, I_gt, len(texts))
    s.close()
    return got


def sweep(s, xq: np.ndarray, I_gt: np.ndarray, n: int) -> list[dict]:
    """recall@10 of the text queries and the p50 of a whole dense query (index search
    and the hits' rows, ``Searcher.hits``) at each nprobe / efSearch value."""
    from indexes.building.tune import recall_at_k

    name = next(iter(s.manifest.search_params), None)  # nprobe or efSearch, as tuned
    if name is None:
        return []
    out = []
    for v in (4, 16, 64, 128, 256, 512):
        params = {name: v}
        recall = recall_at_k(s.folder.search(xq, 10, params=params).I, I_gt, 10)
        ms = _p50_ms(lambda i, p=params: s.hits(s.folder.search(xq[i : i + 1], 10, params=p)), n)
        out.append({"params": params, "text_queries_recall": round(recall, 4), "p50_ms": ms})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=300_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/query-scale"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--search-commands", type=int, default=20)
    args = parser.parse_args(argv)
    out, report = built(args.data, args.chunks)
    common = {"chunks": args.chunks, "command": f"{COMMAND} --chunks {args.chunks}"}
    if report is not None:
        emit(BENCH, "build_wall_time", report["wall_s"], "s", **common)
    got = measure(out, args.queries)
    manifest = json.loads((out / "versions" / (out / "CURRENT").read_text().strip() /
                           "manifest.json").read_text())  # fmt: skip
    setting = {"index": manifest["index_factory"], "params": manifest["search_params"]}
    emit(BENCH, "searcher_open", round(got["open_s"], 3), "s", derived_rows=got["derived"],
         note="Searcher(DIR); derived_rows: its parts' row files derived", **common)  # fmt: skip
    base = got["exact_scan"]
    emit(BENCH, "exact_scan_p50", round(base, 3), "ms", note="IndexFlatIP, 1 thread", **common)
    targets = {"dense": 0.25, "lexical": 0.15}
    for name in ("dense", "dense_text", "lexical", "index_search", "rows"):
        emit(BENCH, f"{name}_p50", round(got[name], 3), "ms", ratio=round(got[name] / base, 3),
             baseline="exact_scan_p50", target=targets.get(name), **setting, **common)  # fmt: skip
    from indexes.reader import open_index

    rows = row_lookup(open_index(out / "versions" / (out / "CURRENT").read_text().strip()))
    emit(BENCH, "row_lookup_per_hit", round(rows["x10_us"], 2), "us",
         ratio=round(rows["x10_us"] / rows["as_written_us"], 3), baseline="as_written_us",
         target=1.5, **{k: round(v, 2) for k, v in rows.items()}, **common)  # fmt: skip
    recall = manifest.get("recall") or {}
    emit(BENCH, "tuning", recall.get("value", 0), "recall@10", tuning=recall.get("tuning"),
         text_queries_recall=round(got["recall"], 4),
         chosen=manifest["search_params"], latency_ms=manifest.get("latency_ms"),
         trials=recall.get("trials"), **common)  # fmt: skip
    for row in got["sweep"]:
        emit(BENCH, "dense_p50_at", round(row["p50_ms"], 3), "ms",
             ratio=round(row["p50_ms"] / base, 3), baseline="exact_scan_p50",
             params=row["params"], text_queries_recall=row["text_queries_recall"],
             note="Searcher.hits of IndexFolder.search at these parameters", **common)  # fmt: skip
    if args.search_commands:
        texts = queries(args.chunks, args.search_commands)
        cmd = search_commands(str(out), texts, parallel=1)
        emit(BENCH, "search_command_p50", cmd["p50_s"], "s", **cmd,
             note="whole corpusbeam search processes, from process start", **common)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
