"""The index job end to end: documents a second, peak memory, and an incremental rerun.

Generates N short documents as JSONL files, runs ``corpusbeam index`` in a child
process (local reference endpoint, hash model) on the DirectRunner and with 2 worker
processes, and reports documents a second and the peak RSS of the job's processes.
Then changes 1% of the documents and runs again: requests sent and the time as a
fraction of the first run's.

``--shape azure`` runs the reference endpoint with an Azure serverless deployment's
quotas (1,000 requests and 200,000 tokens a minute, 429 + Retry-After beyond), as a
real endpoint would be: then embedding, not the machine, sets the first run's pace.
``--shape slots`` gives it 200 ms a request and 8 requests at a time: at 96 inputs a
request its limit is 3,840 documents/s, and the run is timed from the process's start
to ``CURRENT`` switched (``fraction_of_limit``). ``--s3`` runs each job a second time
with ``--output s3://...`` against moto's S3 server on loopback (a stand-in for S3).

Peak memory is sampled from /proc every 0.1 s: the launcher alone, and the sum over the
launcher and every process under it (endpoint, worker processes) at each moment. The
local output folder's disk is sampled every second by kind of file (run files, IVF
shards, parts, lexical segments, index: ``benchmarks/_disk.py``), as the staging files
are deleted at publishing; ``peak_disk`` gives each kind's peak and the total's. The CPU
time of the job's processes and of a ``--shape`` endpoint (``cpu_seconds_job``,
``cpu_seconds_endpoint``) says how far the machine's cores, not the endpoint, set the
pace: on 2 cores no run is shorter than their sum / 2.

Each run ends by searching what it built the way users do (``benchmarks/_query_load.py``):
``--search-commands`` whole ``corpusbeam search`` processes and ``--serve-requests``
``POST /search`` from ``--clients`` clients to a ``corpusbeam serve`` child, with p50,
p99, failed queries and the service's resident memory; after the 1% rerun too.

    python -m benchmarks.index_job [--docs 100000] [--runners direct,multi] [--quick]
    python -m benchmarks.index_job --shape azure --docs 30000 --runners direct
    python -m benchmarks.index_job --docs 250000 --runners direct --no-incremental
    python -m benchmarks.index_job --shape slots --docs 50000 --runners direct --no-incremental
    python -m benchmarks.index_job --docs 200000 --runners multi --s3 --no-incremental
"""

from __future__ import annotations

import argparse
import contextlib
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
from benchmarks._disk import DiskSampler
from benchmarks._query_load import query_load
from benchmarks._rss import RssSampler, cpu_seconds, tree_pids
from benchmarks._s3 import s3_stand_in
from corpusbeam.inference.server import EndpointConfig, running_endpoint

BENCH = "index_job"
RUNNERS = {
    "direct": ["--runner=DirectRunner"],
    "multi": [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}
TOPICS = ["cats", "boats", "trains", "rain", "tea", "bread", "snow", "owls", "chess", "moon"]


def write_corpus(
    root: Path, n: int, files: int = 20, changed: set[int] | None = None, long_every: int = 0
) -> None:
    """``n`` documents in ``files`` JSONL files, one chunk each; with ``long_every``, one
    document in that many is about 2,400 bytes long: two chunks at the default 512 tokens."""
    root.mkdir(parents=True, exist_ok=True)
    per = (n + files - 1) // files
    for f in range(files):
        lines = []
        for i in range(f * per, min(n, (f + 1) * per)):
            topic = TOPICS[i % len(TOPICS)]
            text = f"Document {i} is about {topic} and number {i * 7 % 1000}."
            if changed and i in changed:
                text += " It was edited today."
            if long_every and i % long_every == 0:
                text += "".join(f" Paragraph {j} of document {i} is on {topic}." for j in range(60))
            lines.append(json.dumps({"id": f"doc-{i}", "text": text}))
        (root / f"part-{f:03d}.jsonl").write_text("\n".join(lines) + "\n")


def queries(n: int, count: int = 500) -> list[str]:
    """Texts of ``count`` of the corpus's documents, as queries."""
    picked = random.Random(1).sample(range(n), min(n, count))
    return [f"Document {i} is about {TOPICS[i % len(TOPICS)]}" for i in picked]


def run_job(
    corpus: Path, output: str, options: list[str], trace: Path | None = None
) -> tuple[dict, float, RssSampler, DiskSampler | None]:
    """(report, seconds from the process's start to its exit, sampled memory peaks, sampled
    disk peaks of a local output, else None) of a fresh ``corpusbeam index`` process; with
    ``trace`` (a path without suffix), its log lines go to ``trace.log``, its memory samples
    to ``trace.rss.tsv`` and its disk samples to ``trace.disk.tsv``."""
    cmd = [
        sys.executable,
        "-m",
        "corpusbeam",
        "index",
        str(corpus),
        "--output",
        output,
        "--json",
        *options,
    ]
    started = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(proc.pid, trace=trace and trace.with_suffix(".rss.tsv")).start()
    disk = None
    if "://" not in output:
        disk = DiskSampler(Path(output), trace=trace and trace.with_suffix(".disk.tsv")).start()
    out, err = proc.communicate()
    if trace:
        trace.with_suffix(".log").write_text(err)
    sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the job's own CPU and its worker processes' (reaped by then): user + system
    sampler.cpu_seconds = after.ru_utime - cpu.ru_utime + after.ru_stime - cpu.ru_stime
    if disk:
        disk.stop()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"index job failed ({proc.returncode}): {err[-2000:]}")
    return json.loads(out), seconds, sampler, disk


def endpoint_cpu_seconds() -> float:
    """CPU time used so far by the reference endpoints this benchmark started (child
    processes running ``corpusbeam.inference.server``)."""
    total = 0.0
    for pid in tree_pids(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"corpusbeam.inference.server" in cmdline:
            total += cpu_seconds(pid)
    return total


def _disk(folder: Path) -> float:
    """MiB of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument(
        "--long-every",
        type=int,
        default=0,
        help="one document in N two chunks long (100,000 documents with 20: 105,000 chunks, "
        "which --index auto gives IVF1024,Flat, as a real corpus of that size gets)",
    )
    parser.add_argument("--runners", default="direct,multi")
    parser.add_argument("--incremental", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--shape", choices=("none", "azure", "slots"), default="none")
    parser.add_argument("--s3", action="store_true", help="also run with s3:// output")
    parser.add_argument("--dimensions", type=int, help="passed to the job")
    parser.add_argument("--shards", help="passed to the job (default: the job's, auto)")
    parser.add_argument("--quick", action="store_true", help="2,000 documents, DirectRunner")
    parser.add_argument(
        "--search-commands", type=int, default=200, help="corpusbeam search processes a run"
    )
    parser.add_argument(
        "--serve-requests", type=int, default=1000, help="POST /search to serve a run"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent serve clients")
    parser.add_argument(
        "--trace", type=Path, help="a folder for each run's log and memory samples over time"
    )
    args = parser.parse_args()
    if args.quick:
        args.docs, args.runners = 2_000, "direct"
        args.search_commands, args.serve_requests = 10, 100
    with contextlib.ExitStack() as stack:
        extra: list[str] = []
        if args.shape == "azure":
            ep = stack.enter_context(
                running_endpoint(EndpointConfig(rpm=1000, tpm=200_000), subprocess=True)
            )
            extra = ["--endpoint", ep.url]
        if args.shape == "slots":
            ep = stack.enter_context(
                running_endpoint(
                    EndpointConfig(latency_ms=(200, 200), max_concurrency=8), subprocess=True
                )
            )
            extra = ["--endpoint", ep.url]
        if args.dimensions:
            extra += ["--dimensions", str(args.dimensions)]
        if args.shards:
            extra += ["--shards", args.shards]
        run_all(args, extra)


def search_what_was_built(args: argparse.Namespace, target: str, **where: object) -> None:
    query_load(
        BENCH,
        target,
        queries(args.docs),
        commands=args.search_commands,
        requests=args.serve_requests,
        clients=args.clients,
        docs=args.docs,
        **where,
    )


def run_all(args: argparse.Namespace, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, args.docs, long_every=args.long_every)
        for name in args.runners.split(","):
            first = first_run(args, corpus, Path(tmp) / f"out-{name}", name, extra)
            if args.s3:
                s3_run(args, corpus, first, extra)
            if args.incremental and name == args.runners.split(",")[0]:
                incremental_run(args, corpus, first, extra)


@dataclass(frozen=True)
class FirstRun:
    """A runner's first run, which its later runs are measured against."""

    runner: str
    out: Path
    report: dict
    seconds: float


def _common(args: argparse.Namespace, runner: str) -> dict:
    return {"runner": runner, "docs": args.docs, "shape": args.shape}


def _trace(args: argparse.Namespace, runner: str) -> Path | None:
    if not args.trace:
        return None
    args.trace.mkdir(parents=True, exist_ok=True)
    return args.trace / f"{runner}-{args.docs}-{args.shape}"


def first_run(
    args: argparse.Namespace, corpus: Path, out: Path, runner: str, extra: list[str]
) -> FirstRun:
    """Index the corpus into ``out``, print its pace, memory and disk, and search it."""
    trace = _trace(args, runner)
    endpoint_cpu = endpoint_cpu_seconds()
    report, seconds, peaks, disk = run_job(corpus, str(out), RUNNERS[runner] + extra, trace)
    endpoint_cpu = endpoint_cpu_seconds() - endpoint_cpu
    first = FirstRun(runner, out, report, seconds)
    emit_pace(args, first, peaks, endpoint_cpu)
    emit_memory_and_disk(args, runner, peaks, disk)
    search_what_was_built(args, str(out), runner=runner, version="first run")
    return first


def emit_pace(
    args: argparse.Namespace, first: FirstRun, peaks: RssSampler, endpoint_cpu: float
) -> None:
    """Documents a second (and with ``--shape slots``, as a fraction of the limit)."""
    report, seconds = first.report, first.seconds
    common = _common(args, first.runner)
    emit(
        BENCH,
        "documents_per_second",
        round(args.docs / seconds, 1),
        "docs/s",
        **common,
        seconds=round(seconds, 1),
        stages=report["seconds"],
        indexed=report["counts"]["indexed"],
        index=report["index"]["factory"],
        requests=report["requests"]["requests"],
        version_disk_mib=round(_disk(first.out / "versions" / report["version"]), 1),
        cpu_seconds_job=round(peaks.cpu_seconds, 1),
        # a separate endpoint (--shape); with none the job runs its own, counted above
        cpu_seconds_endpoint=round(endpoint_cpu, 1),
    )
    if args.shape == "slots":
        limit = 8 * 96 / 0.2
        emit(
            BENCH,
            "fraction_of_limit",
            round(args.docs / seconds / limit, 3),
            "ratio",
            **common,
            limit_docs_per_s=limit,
            target=">= 0.75",
            note="process start to CURRENT switched",
        )


def emit_memory_and_disk(
    args: argparse.Namespace, runner: str, peaks: RssSampler, disk: DiskSampler | None
) -> None:
    common = _common(args, runner)
    emit(BENCH, "peak_rss_tree", round(peaks.peak_tree, 1), "MiB", **common)
    emit(
        BENCH,
        "peak_rss_launcher",
        round(peaks.peak_launcher, 1),
        "MiB",
        **common,
        anonymous=round(peaks.peak_launcher_anon, 1),
    )
    if disk:
        emit(
            BENCH,
            "peak_disk",
            round(disk.peak_total, 1),
            "MiB",
            **common,
            by_kind={k: round(v, 1) for k, v in disk.peaks.items()},
            note="the output folder, staging included, sampled every second",
        )


def s3_run(args: argparse.Namespace, corpus: Path, first: FirstRun, extra: list[str]) -> None:
    """The same job with ``--output s3://`` on the S3 stand-in, against the first run."""
    name = first.runner
    with s3_stand_in() as s3_options:
        url = f"s3://bench/{name}"
        report, seconds, peaks, _ = run_job(corpus, url, RUNNERS[name] + extra + s3_options)
        search_what_was_built(args, url, runner=name, version="first run, s3")
    emit(
        BENCH,
        "s3_time_ratio",
        round(seconds / first.seconds, 3),
        "ratio",
        **_common(args, name),
        seconds=round(seconds, 1),
        baseline_seconds=round(first.seconds, 1),
        baseline="the same job with local output",
        stages=report["seconds"],
        peak_rss_tree=round(peaks.peak_tree, 1),
        peak_rss_launcher=round(peaks.peak_launcher, 1),
        note="moto's S3 server on loopback, a stand-in for S3",
    )


def incremental_run(
    args: argparse.Namespace, corpus: Path, first: FirstRun, extra: list[str]
) -> None:
    """1% of the documents changed, the job run again into the first run's output and
    searched; then the corpus is written back as it was."""
    changed = set(random.Random(0).sample(range(args.docs), args.docs // 100))
    write_corpus(corpus, args.docs, changed=changed, long_every=args.long_every)
    again, again_s, _, _ = run_job(corpus, str(first.out), RUNNERS[first.runner] + extra)
    emit(
        BENCH,
        "incremental_time_ratio",
        round(again_s / first.seconds, 3),
        "ratio",
        runner=first.runner,
        changed=len(changed),
        seconds=round(again_s, 1),
        baseline_seconds=round(first.seconds, 1),
        embedded=again["counts"]["embedded"],
        reused=again["counts"]["reused"],
        requests=again["requests"]["requests"],
        first_run_requests=first.report["requests"]["requests"],
    )
    search_what_was_built(args, str(first.out), runner=first.runner, version="after a 1% update")
    write_corpus(corpus, args.docs, long_every=args.long_every)


if __name__ == "__main__":
    main()
