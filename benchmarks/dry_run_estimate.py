"""The dry run's token estimate against what the run then measured, on MiniLM.

For each corpus, as a user would, in child processes (``python -m corpusbeam index ...
--local-model minilm``, which starts the local reference endpoint with all-MiniLM-L6-v2
for each command, DirectRunner):

1. ``--dry-run --json`` on an empty output (no live version: not calibrated);
2. the real run (``--json``): its report's ``usage`` tokens (``prompt_tokens``);
3. a change to the corpus (edits, additions, deletions), then ``--dry-run --json`` again,
   now against a live version (calibrated from its usage);
4. the real rerun, and its ``prompt_tokens``.

Each story runs twice: counting tokens with MiniLM's own tokenizer (``--token-count auto``,
the ``minilm`` extra ships it) and with the bare estimate (``--token-count estimate``, UTF-8
bytes / 4: what a dry run has for a hosted model whose tokenizer is not installed).
Each dry run's ``tokens.to_embed`` is compared with the next run's ``prompt_tokens``
(target: within 5%), its chunks to embed with the run's embedded count, and its wall time
(from the process's start to its exit) with the run's (the baseline, same corpus, same
run). Corpora: the bundled sample corpus (``corpusbeam sample``) without its images, which
MiniLM does not embed, and a larger text corpus
made on this machine: the standard library's docstrings as JSONL records plus
``pydoc_data``'s topics (long pages: many chunks each, cut for the model's 256 tokens).

    python -m benchmarks.dry_run_estimate [--docstrings 600] [--topics 15] [--quick] [--append]

``--append`` adds the lines to ``benchmarks/results/dry_run_estimate.jsonl`` with the
date, commit, machine and load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import emit

BENCH = "dry_run_estimate"
RESULTS = Path(__file__).parent / "results" / f"{BENCH}.jsonl"
# Small requests, few in flight: on a shared 2-core machine MiniLM answers a request of 96
# long inputs slower than the client's deadline, and a run whose inputs fail measures the
# usage of only part of what the dry run counted. Dry runs and runs take the same flags.
SMALL_REQUESTS = ("--max-inputs", "16", "--max-concurrency", "2")


def _index(corpus: Path, out: Path, *extra: str) -> tuple[dict, float]:
    """One ``corpusbeam index`` process: its JSON output and its wall seconds."""
    cmd = [sys.executable, "-m", "corpusbeam", "index", str(corpus), "-o", str(out)]
    cmd += ["--local-model", "minilm", "--json", "--progress", "off", *SMALL_REQUESTS, *extra]
    cmd += ["--runner=DirectRunner"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout), seconds


def _sample(root: Path) -> Path:
    """The sample corpus's documents (its images left out: MiniLM embeds no images)."""
    import shutil

    from pipeline.sample_corpus import write_sample

    write_sample(root)
    shutil.rmtree(root / "images")
    return root


def _change_sample(root: Path, rng: random.Random) -> None:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".md", ".txt") and p.is_file())
    for p in rng.sample(files, 3):
        p.write_text(p.read_text() + "\n\nThis page was edited for the nightly run.\n")
    rng.choice(files).unlink()
    (root / "added.md").write_text("# Lighthouses\n\nA lighthouse marks a dangerous coast.\n")


def _text_corpus(root: Path, n: int, pages: int) -> Path:
    """Docstring records (JSONL) and pydoc's topic pages (one .txt a topic)."""
    import pydoc_data.topics

    from benchmarks.relevance_docstrings import docstring_pairs

    root.mkdir(parents=True)
    pairs = docstring_pairs()[:n]
    rows = [{"id": d, "text": f"{s}\n\n{b}"} for d, s, b in pairs]
    (root / "docstrings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    topics = root / "topics"
    topics.mkdir()
    for name, text in sorted(pydoc_data.topics.topics.items())[:pages]:
        (topics / f"{name}.txt").write_text(text)
    return root


def _change_text(root: Path, rng: random.Random) -> None:
    """5% of the records edited, 2% deleted, 2% added; three topic pages edited."""
    path = root / "docstrings.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    k = max(1, len(rows) // 50)
    for r in rng.sample(rows, 5 * k // 2):
        r["text"] += " Edited: see the changelog for the behaviour before this release."
    for r in rng.sample(rows, k):
        rows.remove(r)
    rows += [
        {"id": f"added-{i}", "text": f"Added record {i} about {rng.choice(rows)['text'][:200]}"}
        for i in range(k)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pages = sorted((root / "topics").glob("*.txt"))
    for p in rng.sample(pages, 3):
        p.write_text(p.read_text() + "\n\nA paragraph added for the nightly rerun.\n")


def _compare(corpus, count, step, dry: dict, dry_s: float, run: dict, run_s: float) -> None:
    if run["counts"]["failed"]:  # usage then covers only part of what the dry run counted
        print(f"warning: the run failed {run['counts']['failed']} inputs", file=sys.stderr)
    measured = run["requests"]["prompt_tokens"]
    estimated = dry["tokens"]["to_embed"]
    error = (estimated - measured) / measured if measured else 0.0
    common = {"corpus": corpus, "token_count": count, "step": step}
    common["calibrated"] = dry["tokens"]["calibrated"]
    emit(
        BENCH,
        "token_estimate_error",
        round(abs(error), 4),
        "fraction",
        estimated=estimated,
        measured=measured,
        signed_error=round(error, 4),
        ratio=dry["tokens"]["ratio"],
        counter=dry["tokens"]["counter"],
        target="<= 0.05",
        **common,
    )
    emit(
        BENCH,
        "chunks_to_embed",
        dry["chunks"]["to_embed"],
        "chunks",
        embedded=run["counts"]["embedded"],
        failed=run["counts"]["failed"],
        reused=run["counts"]["reused"],
        dry_reused=dry["chunks"]["reused"],
        documents=dry["documents"],
        **common,
    )
    emit(
        BENCH,
        "dry_run_wall",
        round(dry_s, 2),
        "s",
        baseline="the run's wall time, same corpus",
        run_s=round(run_s, 2),
        ratio=round(dry_s / run_s, 3),
        note="whole processes from start to exit, each starting its MiniLM endpoint",
        **common,
    )


def _story(name: str, corpus: Path, out: Path, change, count: str) -> None:
    """A first run and a changed rerun of ``corpus``, each after its dry run, counting
    tokens by ``count`` (``--token-count``)."""
    flags = ("--token-count", count)
    dry, dry_s = _index(corpus, out, "--dry-run", *flags)
    run, run_s = _index(corpus, out, *flags)
    _compare(name, count, "first run", dry, dry_s, run, run_s)
    change(corpus, random.Random(7))
    dry, dry_s = _index(corpus, out, "--dry-run", *flags)
    run, run_s = _index(corpus, out, *flags)
    _compare(name, count, "changed rerun", dry, dry_s, run, run_s)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docstrings", type=int, default=600, help="records of the text corpus")
    ap.add_argument("--topics", type=int, default=15, help="pydoc topic pages of the text corpus")
    ap.add_argument("--quick", action="store_true", help="the sample corpus only")
    ap.add_argument("--counts", default="auto,estimate", help="--token-count modes to run")
    ap.add_argument("--no-sample", action="store_true", help="the text corpus only")
    ap.add_argument("--append", action="store_true", help=f"append the lines to {RESULTS}")
    args = ap.parse_args(argv)
    lines: list[str] = []
    real_stdout = sys.stdout

    class _Tee:
        def write(self, s: str) -> None:
            real_stdout.write(s)
            lines.extend(x for x in s.splitlines() if x.strip())

        def flush(self) -> None:
            real_stdout.flush()

    sys.stdout = _Tee()  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for count in args.counts.split(","):
                if not args.no_sample:
                    corpus = _sample(root / f"sample-{count}")
                    _story("sample", corpus, root / f"out-sample-{count}", _change_sample, count)
                if not args.quick:
                    corpus = _text_corpus(root / f"text-{count}", args.docstrings, args.topics)
                    out = root / f"out-text-{count}"
                    _story("docstrings+topics", corpus, out, _change_text, count)
    finally:
        sys.stdout = real_stdout
    if args.append:
        _append(lines, argv)


def _append(lines: list[str], argv: list[str] | None) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    extra = {
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "machine": f"{os.cpu_count()} cores (python kind)",
        "command": "python -m benchmarks.dry_run_estimate " + " ".join(argv or sys.argv[1:]),
        "load": round(os.getloadavg()[0], 2),
        "load_note": "shared machine: 2 cores, 8 engineers at work",
    }
    with RESULTS.open("a") as f:
        for line in lines:
            f.write(json.dumps({**json.loads(line), **extra}) + "\n")


if __name__ == "__main__":
    main()
