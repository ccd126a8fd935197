"""Kill and resume: a run SIGKILLed at 60% of its inputs, and the rerun (issue 24).

Generates N one-chunk documents (JSONL files), starts the local reference endpoint in a
child process with added latency, and runs ``corpusbeam index`` in a child process of its
own process group. The endpoint's ``/metrics`` (``corpusbeam_inputs_total``: inputs
embedded) is polled every 20 ms; once 60% of the corpus is embedded the whole process
group is SIGKILLed. The same command is then run again to the end. Figures, counted at
the endpoint: the inputs the killed run got embedded (including what was in flight), the
inputs the rerun sent as a share of the corpus against the target (the remaining share
at the kill + 2%), and both runs' wall times from process start. ``--s3`` writes to
``s3://`` on moto's server (a stand-in for S3) with 2 worker processes
(``--direct_running_mode=multi_processing --direct_num_workers=2``).

    python -m benchmarks.kill_resume [--docs 20000] [--latency-ms 100] [--s3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import emit

BENCH = "kill_resume"
TOPICS = ["cats", "boats", "trains", "rain", "tea", "bread", "snow", "owls", "chess", "moon"]
MP = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
LEASE = 15  # s3:// runs: seconds a killed run's lease holds the output


def write_corpus(root: Path, n: int, files: int = 8) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        with (root / f"docs{f:02d}.jsonl").open("w") as out:
            for i in range(f, n, files):
                t = TOPICS[i % 10]
                text = (
                    f"Document {i} is about {t}: {t} and {TOPICS[(i * 7) % 10]}, number {i * 31}."
                )
                out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")


def embedded(ep) -> int:
    return int(sum(v for k, v in ep.metrics().items() if k.startswith("corpusbeam_inputs_total")))


def index_command(corpus: Path, output: str, url: str, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "corpusbeam", "index", str(corpus), "-o", output,
        "--endpoint", url, "--progress", "off", "--json", *extra,
    ]  # fmt: skip


def killed_run(cmd: list[str], ep, n: int, at: float, env: dict) -> dict:
    """Run ``cmd`` and SIGKILL its process group once ``at`` of ``n`` inputs are embedded."""
    before = embedded(ep)
    started = time.perf_counter()
    child = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen = 0
    while child.poll() is None:
        seen = embedded(ep) - before
        if seen >= at * n:
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    child.wait()
    killed_after = time.perf_counter() - started
    time.sleep(1.0)  # requests in flight at the kill still reach the endpoint
    return {
        "seconds": round(killed_after, 2),
        "at_kill": seen,
        "embedded": embedded(ep) - before,
        "killed": child.returncode == -signal.SIGKILL,
        "stderr": child.stderr.read().decode()[-800:] if child.returncode > 0 else "",
    }


def full_run(cmd: list[str], ep, env: dict) -> dict:
    before = embedded(ep)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"the run failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return {
        "seconds": round(seconds, 2),
        "sent": embedded(ep) - before,
        "resumed": report["counts"].get("resumed"),
        "indexed": report["counts"]["indexed"],
    }


def scenario(name: str, args, output: str, corpus: Path, ep, extra: list[str], env: dict) -> dict:
    cmd = index_command(corpus, output, ep.url, extra)
    first = killed_run(cmd, ep, args.docs, args.kill_at, env)
    if output.startswith("s3://"):  # the killed run's lease must expire first
        time.sleep(LEASE + 1)
    second = full_run(cmd, ep, env)
    share = second["sent"] / args.docs
    remaining = 1 - first["at_kill"] / args.docs
    result = {
        "scenario": name,
        "docs": args.docs,
        "latency_ms": args.latency_ms,
        "killed_run": first,
        "rerun": second,
        "rerun_share": round(share, 4),
        "remaining_share_at_kill": round(remaining, 4),
        "target_share": round(remaining + 0.02, 4),
        "met": share <= remaining + 0.02,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    emit(BENCH, f"rerun_share_{name}", round(share, 4), "of the corpus", **result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--kill-at", type=float, default=0.6)
    p.add_argument("--s3", action="store_true", help="also s3:// (moto) with 2 worker processes")
    p.add_argument("--only-s3", action="store_true")
    p.add_argument("--quick", action="store_true", help="1,000 documents")
    p.add_argument("--results", help="append the JSON lines to this file")
    p.add_argument("index_args", nargs="*", help="more `corpusbeam index` options, after --")
    args = p.parse_args(argv)
    if args.quick:
        args.docs = 1000
    from corpusbeam.inference.server import EndpointConfig, running_endpoint

    results = []
    config = EndpointConfig(latency_ms=(args.latency_ms, args.latency_ms))
    with tempfile.TemporaryDirectory() as tmp, running_endpoint(config, subprocess=True) as ep:
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, args.docs)
        env = dict(os.environ)
        if not args.only_s3:
            out = str(Path(tmp) / "out")
            results.append(scenario("local", args, out, corpus, ep, args.index_args, env))
        if args.s3 or args.only_s3:
            from benchmarks._s3 import s3_stand_in

            with s3_stand_in() as s3_args:
                extra = [*args.index_args, "--lease-seconds", str(LEASE), *MP, *s3_args]
                env = dict(os.environ)
                results.append(
                    scenario("s3_2_workers", args, "s3://bench/out", corpus, ep, extra, env)
                )
    if args.results:
        with open(args.results, "a") as f:
            for r in results:
                f.write(json.dumps({"benchmark": BENCH, **r}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
