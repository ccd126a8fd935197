"""Nightly reruns: a first run, an unchanged rerun and 1% changed reruns of the index job.

Generates N one-chunk documents as JSONL files, runs ``corpusbeam index`` in a child
process (``python -m corpusbeam index``: the local reference endpoint, hash model,
unshaped, DirectRunner) and reports, for each run, the wall time from the process's
start to its exit, the job's own seconds (pipeline; finish and publish) and the update's
(``report["update"]``), and the new bytes the version wrote: the bytes of its files that
are not hard links to an earlier version's, against the first version's bytes.

A 1% change is a third edited, a third added, a third deleted. After ``--updates``
successive 1% changes, the same corpus is built in full (``--rebuild``) and both are
evaluated on the same queries (``indexes.evaluate_folder``: recall@10 against exact
search over the stored vectors).

    python -m benchmarks.update [--docs 100000] [--updates 10] [--dimensions 256] [--files 20]
    python -m benchmarks.update --docs 100000 --dimensions 256 --breakdown

After the first run and after the last update (the live version, with its delta segment
and tombstones), it searches what the job wrote the way users do
(``benchmarks/_query_load.py``): ``--search-commands`` whole ``corpusbeam search``
processes and ``--serve-requests`` ``POST /search`` from 4 clients to a ``corpusbeam
serve`` child, printing p50, p99 and failed queries.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import emit
from benchmarks._query_load import query_load

BENCH = "update"
TOPICS = ["cats", "boats", "trains", "rain", "tea", "bread", "snow", "owls", "chess", "moon"]


class Corpus:
    """``n`` one-chunk documents as JSONL records spread over ``files`` files (document i
    in file i mod files); a change rewrites only the files whose records changed."""

    def __init__(self, root: Path, n: int, files: int = 20) -> None:
        self.root = root
        self.files = files
        self.written: dict[int, str] = {}
        self.docs = {i: 0 for i in range(n)}  # doc number -> edit count
        self.next = n
        self.rng = random.Random(0)
        root.mkdir(parents=True, exist_ok=True)
        self.write()

    def write(self) -> None:
        lines: list[list[str]] = [[] for _ in range(self.files)]
        for i, edits in sorted(self.docs.items()):
            topic = TOPICS[i % len(TOPICS)]
            text = f"Document {i} is about {topic} and number {i * 7 % 1000}."
            if edits:
                text += f" It was edited {edits} times."
            lines[i % self.files].append(json.dumps({"id": f"doc-{i}", "text": text}))
        for f, rows in enumerate(lines):
            body = "\n".join(rows) + "\n"
            if self.written.get(f) != body:  # unchanged files keep their modification time
                (self.root / f"part-{f:05d}.jsonl").write_text(body)
                self.written[f] = body

    def change(self, fraction: float) -> dict:
        third = max(1, int(len(self.docs) * fraction / 3))
        picked = self.rng.sample(sorted(self.docs), 2 * third)
        for i in picked[:third]:
            self.docs[i] += 1
        for i in picked[third:]:
            del self.docs[i]
        for _ in range(third):
            self.docs[self.next] = 0
            self.next += 1
        self.write()
        return {"edited": third, "deleted": third, "added": third}


def run_job(corpus: Path, output: Path, options: list[str]) -> tuple[dict, float, float]:
    """(report, seconds from the process's start to its exit, CPU seconds it and its
    children used: less moved by other load on the machine than the wall time) of
    ``corpusbeam index``."""
    cmd = [sys.executable, "-m", "corpusbeam", "index", str(corpus), "--output", str(output)]
    cmd += ["--json", *options]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"index job failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), seconds, cpu


def version_bytes(folder: Path, seen: set[tuple[int, int]]) -> tuple[int, int]:
    """(all bytes, new bytes) of a version's files: new ones are not hard links to a file
    of an earlier version (``seen``: (device, inode) of those; updated in place)."""
    total = new = 0
    for p in folder.rglob("*"):
        if not p.is_file():
            continue
        st = p.stat()
        total += st.st_size
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            new += st.st_size
            seen.add(key)
    return total, new


def _load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument(
        "--files",
        type=int,
        default=20,
        help="JSONL files the documents are spread over (20: a 1%% change touches every "
        "file; as many as --docs: one document a file)",
    )
    ap.add_argument("--dimensions", type=int, default=None)
    ap.add_argument("--index", default=None, help="a factory string (default: auto)")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="after the first run, time Beam's start-up, reading the corpus and loading "
        "the live ids and hashes, each alone, and stop",
    )
    ap.add_argument(
        "--no-rebuild",
        action="store_true",
        help="stop after the updates (no full build of the final corpus to compare recall)",
    )
    ap.add_argument("--search-commands", type=int, default=200)
    ap.add_argument("--serve-requests", type=int, default=1000)
    args = ap.parse_args()
    options = ["--runner=DirectRunner"]
    if args.dimensions:
        options += ["--dimensions", str(args.dimensions)]
    if args.index:
        options += ["--index", args.index]
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        root = Path(tmp)
        corpus = Corpus(root / "corpus", args.docs, args.files)
        nightly = Nightly(args, options, corpus, root / "out", set())
        first_report, first = measure(nightly, "first")
        if args.breakdown:
            breakdown(corpus.root, nightly.out)
            return
        search(nightly, f"first run ({first_report['index']['factory']})")
        measure(nightly, "unchanged", first)
        last = rerun_after_changes(nightly, first)
        updates = max(args.updates, 1)
        search(nightly, f"after {updates} updates ({(last.get('update') or {}).get('mode')})")
        if args.no_rebuild:
            return
        compare_with_a_full_build(nightly, first, last, root / "rebuilt")


@dataclass(frozen=True)
class Nightly:
    """What every run shares: the options, the corpus (changed between runs), the output
    folder and the (device, inode) of every file an earlier version wrote."""

    args: argparse.Namespace
    options: list[str]
    corpus: Corpus
    out: Path
    seen: set[tuple[int, int]]


@dataclass(frozen=True)
class Baseline:
    """The first run's wall time, version bytes and CPU time."""

    seconds: float
    bytes: int
    cpu: float


def measure(
    nightly: Nightly,
    run: str,
    first: Baseline | None = None,
    extra: list[str] | None = None,
    output: Path | None = None,
) -> tuple[dict, Baseline]:
    """Run the job on the corpus as it is and print its line, against ``first``: (its
    report, ``first``, or this run's figures when it is the first)."""
    output = output or nightly.out
    load = _load_avg()
    report, wall, cpu = run_job(nightly.corpus.root, output, nightly.options + (extra or []))
    folder = output / "versions" / report["version"]
    total, new = version_bytes(folder, nightly.seen)
    first = first or Baseline(wall, total, cpu)
    update = report.get("update") or {}
    row = {
        "run": run,
        "docs": len(nightly.corpus.docs),
        "of_first_run": round(wall / first.seconds, 3),
        "cpu_s": round(cpu, 2),
        "cpu_of_first_run": round(cpu / first.cpu, 3),
        "inside_s": report["seconds"],
        "startup_s": round(wall - report["seconds"]["total"], 2),
        "embedded": report["counts"]["embedded"],
        "files": nightly.args.files,
        "files_skipped": report["counts"].get("files_skipped", 0),
        "reused": report["counts"]["reused"],
        "mode": update.get("mode"),
        "reason": update.get("reason"),
        "update_s": update.get("seconds"),
        "index": report["index"]["factory"],
        "recall": (report["index"]["recall"] or {}).get("value"),
        "version_mib": round(total / 2**20, 2),
        "new_mib": round(new / 2**20, 2),
        "new_of_first": round(new / first.bytes, 4),
        "load_1m": [load, _load_avg()],
    }
    emit(BENCH, "wall_time", round(wall, 2), "s", **row)
    return report, first


def search(nightly: Nightly, version: str) -> None:
    """The live version searched through ``corpusbeam search`` and ``corpusbeam serve``."""
    docs = nightly.corpus.docs
    picked = random.Random(1).sample(sorted(docs), min(500, len(docs)))
    texts = [f"Document {i} is about {TOPICS[i % len(TOPICS)]}" for i in picked]
    query_load(
        BENCH,
        str(nightly.out),
        texts,
        commands=nightly.args.search_commands,
        requests=nightly.args.serve_requests,
        docs=len(docs),
        version=version,
    )


def rerun_after_changes(nightly: Nightly, first: Baseline) -> dict:
    """``--updates`` successive changes of ``--fraction``, each run: the last one's report."""
    args = nightly.args
    for u in range(max(args.updates, 1)):
        nightly.corpus.change(args.fraction)
        last, _ = measure(nightly, f"changed {args.fraction:.0%} #{u + 1}", first)
    return last


def compare_with_a_full_build(nightly: Nightly, first: Baseline, last: dict, rebuilt: Path) -> None:
    """Build the same corpus in full (``--rebuild``) and print the updated version's
    recall@10 against it: each with its own search parameters, with the same ones, and on
    queries that are not indexed points."""
    import numpy as np

    from indexes import evaluate_folder
    from indexes.storage.manifest import Manifest

    measure(nightly, "full build of the same corpus", first, ["--rebuild"], output=rebuilt)
    updated = nightly.out / "versions" / last["version"]
    full = rebuilt / "versions" / versions_current(rebuilt)
    a, b = evaluate_folder(updated), evaluate_folder(full)
    # The same search parameters for both (each build tunes its own under a latency
    # budget, which a loaded machine moves): the index structures compared alone.
    params = Manifest.from_json((updated / "manifest.json").read_text()).search_params
    same = evaluate_folder(full, params=params)
    # Queries that are not indexed points: a sampled query is its own node in a
    # rebuilt graph (whose links are its neighbours), but not in an updated one when
    # it was added since (it is in the delta), which favours the rebuild.
    rng = np.random.default_rng(0)
    xq = rng.standard_normal((200, _dims(updated))).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    fresh_a = evaluate_folder(updated, xq=xq)["recall_at_10"]
    fresh_b = evaluate_folder(full, xq=xq, params=params)["recall_at_10"]
    emit(
        BENCH,
        "recall_at_10_updated",
        a["recall_at_10"],
        "recall",
        after_updates=nightly.args.updates,
        rebuilt=b["recall_at_10"],
        params=params,
        rebuilt_same_params=same["recall_at_10"],
        random_queries={"updated": fresh_a, "rebuilt_same_params": fresh_b},
        baseline="a full build of the same corpus (--rebuild)",
        ratio=round(a["recall_at_10"] / b["recall_at_10"], 4),
        load_1m=_load_avg(),
    )


def breakdown(corpus: Path, output: Path) -> None:
    """Where a rerun's pipeline time goes, each part timed alone in this process: Beam's
    start-up (an empty pipeline), reading and chunking the corpus, reading the live
    version's ids and content hashes (what ``ReuseVectors`` loads)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from indexes.storage.manifest import Manifest
    from transforms import ChunkDocuments, ReadDocuments
    from transforms.previous import PreviousVersion
    from transforms.reuse import _load

    opts = PipelineOptions(["--runner=DirectRunner"])
    t = time.perf_counter()
    with beam.Pipeline(options=opts) as p:
        _ = p | beam.Create([1]) | beam.Map(lambda x: x)
    empty = time.perf_counter() - t
    t = time.perf_counter()
    with beam.Pipeline(options=opts) as p:
        docs, _ = p | ReadDocuments([str(corpus)])
        chunks, _ = docs | ChunkDocuments(max_tokens=512, overlap_tokens=None)
        _ = chunks | beam.combiners.Count.Globally()
    read = time.perf_counter() - t
    live = output / "versions" / versions_current(output)
    manifest = Manifest.from_json((live / "manifest.json").read_text())
    t = time.perf_counter()
    _load(PreviousVersion.from_manifest(str(live), manifest))
    load = time.perf_counter() - t
    emit(
        BENCH,
        "rerun_breakdown",
        round(read, 2),
        "s",
        part="read and chunk the corpus (an empty pipeline's time included)",
        empty_pipeline_s=round(empty, 2),
        previous_ids_and_hashes_s=round(load, 2),
        docs=manifest.count,
        load_1m=_load_avg(),
    )


def _dims(folder: Path) -> int:
    return json.loads((folder / "manifest.json").read_text())["dimensions"]


def versions_current(output: Path) -> str:
    return (output / "CURRENT").read_text().strip()


if __name__ == "__main__":
    main()
