"""The index job end to end: documents a second, peak memory, and an incremental rerun.

Generates N short documents as JSONL files, runs ``corpusbeam index`` in a child
process (local reference endpoint, hash model) on the DirectRunner and with 2 worker
processes, and reports documents a second and the peak RSS of the job's processes.
Then changes 1% of the documents and runs again: requests sent and the time as a
fraction of the first run's.

``--shape azure`` runs the reference endpoint with an Azure serverless deployment's
quotas (1,000 requests and 200,000 tokens a minute, 429 + Retry-After beyond), as a
real endpoint would be: then embedding, not the machine, sets the first run's pace.

    python -m benchmarks.index_job [--docs 100000] [--runners direct,multi] [--quick]
    python -m benchmarks.index_job --shape azure --docs 30000 --runners direct
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

from benchmarks._common import emit
from inference.server import EndpointConfig, running_endpoint

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


def write_corpus(root: Path, n: int, files: int = 20, changed: set[int] | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    per = (n + files - 1) // files
    for f in range(files):
        lines = []
        for i in range(f * per, min(n, (f + 1) * per)):
            topic = TOPICS[i % len(TOPICS)]
            text = f"Document {i} is about {topic} and number {i * 7 % 1000}."
            if changed and i in changed:
                text += " It was edited today."
            lines.append(json.dumps({"id": f"doc-{i}", "text": text}))
        (root / f"part-{f:03d}.jsonl").write_text("\n".join(lines) + "\n")


def run_job(corpus: Path, output: Path, options: list[str]) -> tuple[dict, float, float]:
    """(report, seconds, peak RSS MiB of the job and its children) from a fresh process."""
    code = (
        "import resource, subprocess, sys, json\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'code': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:],"
        " 'peak': peak}))\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "cli.main",
        "index",
        str(corpus),
        "--output",
        str(output),
        "--json",
        *options,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    result = json.loads(done.stdout)
    if result["code"] not in (0, 3):
        raise SystemExit(f"index job failed ({result['code']}): {result['err']}")
    return json.loads(result["out"]), seconds, result["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--runners", default="direct,multi")
    parser.add_argument("--incremental", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--shape", choices=("none", "azure"), default="none")
    parser.add_argument("--quick", action="store_true", help="2,000 documents, DirectRunner")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.runners = 2_000, "direct"
    with contextlib.ExitStack() as stack:
        extra: list[str] = []
        if args.shape == "azure":
            ep = stack.enter_context(
                running_endpoint(EndpointConfig(rpm=1000, tpm=200_000), subprocess=True)
            )
            extra = ["--endpoint", ep.url]
        run_all(args, extra)


def run_all(args: argparse.Namespace, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, args.docs)
        for name in args.runners.split(","):
            out = Path(tmp) / f"out-{name}"
            report, seconds, peak = run_job(corpus, out, RUNNERS[name] + extra)
            emit(
                BENCH,
                "documents_per_second",
                round(args.docs / seconds, 1),
                "docs/s",
                runner=name,
                docs=args.docs,
                seconds=round(seconds, 1),
                indexed=report["counts"]["indexed"],
                index=report["index"]["factory"],
                requests=report["requests"]["requests"],
            )
            emit(
                BENCH,
                "peak_rss",
                round(peak, 1),
                "MiB",
                runner=name,
                docs=args.docs,
                note="largest single process among the job and its children",
            )
            if args.incremental and name == args.runners.split(",")[0]:
                changed = set(random.Random(0).sample(range(args.docs), args.docs // 100))
                write_corpus(corpus, args.docs, changed=changed)
                again, again_s, _ = run_job(corpus, out, RUNNERS[name] + extra)
                emit(
                    BENCH,
                    "incremental_time_ratio",
                    round(again_s / seconds, 3),
                    "ratio",
                    runner=name,
                    changed=len(changed),
                    seconds=round(again_s, 1),
                    baseline_seconds=round(seconds, 1),
                    embedded=again["counts"]["embedded"],
                    reused=again["counts"]["reused"],
                    requests=again["requests"]["requests"],
                    first_run_requests=report["requests"]["requests"],
                )
                write_corpus(corpus, args.docs)


if __name__ == "__main__":
    main()
