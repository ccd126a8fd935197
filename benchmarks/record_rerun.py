"""A 1% change to records: one big JSONL file against many small ones.

Generates N one-chunk records (``{"id", "text"}``) and runs ``corpusbeam index`` in a
child process (``python -m corpusbeam index``: the local reference endpoint, hash model,
DirectRunner) twice for each layout: a first run, then a rerun after a 1% change (a
third of the changed records edited, a third deleted, a third added).

- ``one file``: every record in one JSONL file (a database export); the changed records
  are spread over it at random, so the file is rewritten.
- ``many files``: the same records in ``--files`` JSONL files; the changed records are
  those of 1% of the files, so the other files keep their size and time (the case that
  skipped whole files before records were skipped).

For each run it prints the wall time from the process's start to its exit and the job's
own seconds (``report["seconds"]["total"]``) and CPU seconds (the child's and its own
children's: less moved than the wall time by other load on a shared machine), and for
each rerun the ratios to its first run; then the one-file rerun against the many-files
rerun. Last, it searches what each layout built through ``corpusbeam search`` (a child
process) for an edited record's new text and checks that the record comes first.

    python -m benchmarks.record_rerun [--records 100000] [--files 1000] [--quick]
        [--baseline-python ../main/.venv/bin/python]
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
from pathlib import Path

from benchmarks._common import emit

BENCH = "record_rerun"
TOPICS = ["cats", "boats", "trains", "rain", "tea", "bread", "snow", "owls", "chess", "moon"]


def _text(i: int, edited: bool) -> str:
    text = f"Record {i} is about {TOPICS[i % len(TOPICS)]} and number {i * 7 % 1000}."
    return text + f" Edited: the lighthouse keeper counted {i} gulls." if edited else text


def _line(i: int, edited: bool = False) -> str:
    return json.dumps({"id": f"rec-{i}", "text": _text(i, edited)})


def _change(ids: list[int], picked: list[int], start: int) -> tuple[dict[int, bool], int]:
    """(record -> edited, of the records after the change; the first edited record)."""
    third = max(1, len(picked) // 3)
    edited, deleted = set(picked[:third]), set(picked[third : 2 * third])
    after = {i: i in edited for i in ids if i not in deleted}
    after.update({start + k: False for k in range(third)})  # added
    return after, min(edited)


def one_file(root: Path, n: int, fraction: float) -> tuple[Path, callable, int]:
    """(the input, a function making the change, the first edited record)."""
    path = root / "export.jsonl"
    path.write_text("".join(_line(i) + "\n" for i in range(n)))
    picked = random.Random(0).sample(range(n), max(3, int(n * fraction)))
    after, first = _change(list(range(n)), picked, n)

    def change() -> None:
        path.write_text("".join(_line(i, e) + "\n" for i, e in after.items()))

    return path, change, first


def many_files(root: Path, n: int, files: int, fraction: float) -> tuple[Path, callable, int]:
    """The same records over ``files`` files (record i in file i // per), the change in
    1% of the files."""
    folder = root / "files"
    folder.mkdir()
    per = -(-n // files)

    def write(f: int, records: dict[int, bool]) -> None:
        body = "".join(_line(i, e) + "\n" for i, e in records.items())
        (folder / f"part-{f:05d}.jsonl").write_text(body)

    for f in range(files):
        write(f, {i: False for i in range(f * per, min(n, (f + 1) * per))})
    changed = random.Random(0).sample(range(files), max(1, round(files * fraction)))
    picked = [i for f in changed for i in range(f * per, min(n, (f + 1) * per))]
    random.Random(1).shuffle(picked)
    after, first = _change(picked, picked, n)

    def change() -> None:
        for f in changed:
            mine = {i: e for i, e in after.items() if f * per <= i < (f + 1) * per}
            if f == changed[0]:
                mine.update({i: e for i, e in after.items() if i >= n})  # the added ones
            write(f, mine)

    return folder, change, first


def run_job(source: Path, output: Path, python: str = sys.executable) -> tuple[dict, float, float]:
    """(report, seconds from the process's start to its exit, CPU seconds it and its
    children used: less moved by other load on the machine) of ``corpusbeam index`` run
    by ``python`` (from the output's folder, so another checkout's runs its own code)."""
    cmd = [python, "-m", "corpusbeam", "index", str(source), "--output", str(output)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, check=False, cwd=output.parent
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"index job failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), seconds, cpu


def search_top(output: Path, query: str, python: str) -> str | None:
    """The first hit's document id, from a ``corpusbeam search`` child process."""
    cmd = [python, "-m", "corpusbeam", "search", str(output), query, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=output.parent)
    hits = json.loads(proc.stdout)["hits"]
    return hits[0]["document_id"] if hits else None


def measure(
    layout: str, source: Path, change, first: int, output: Path, n: int, python: str
) -> dict:
    report1, wall1, cpu1 = run_job(source, output, python)
    change()
    report2, wall2, cpu2 = run_job(source, output, python)
    inside1, inside2 = report1["seconds"]["total"], report2["seconds"]["total"]
    counts = report2["counts"]
    common = {"layout": layout, "records": n, "counts": counts}
    emit(
        BENCH,
        f"{layout}_first_s",
        round(wall1, 2),
        "s",
        inside_s=inside1,
        cpu_s=round(cpu1, 2),
        layout=layout,
        records=n,
    )
    emit(
        BENCH,
        f"{layout}_rerun_ratio",
        round(wall2 / wall1, 3),
        "x",
        baseline=f"{layout} first run, from process start",
        rerun_s=round(wall2, 2),
        inside_ratio=round(inside2 / inside1, 3),
        inside_s=inside2,
        cpu_ratio=round(cpu2 / cpu1, 3),
        cpu_s=round(cpu2, 2),
        **common,
    )
    top = search_top(output, _text(first, True), python)
    found = top == f"rec-{first}"
    emit(BENCH, f"{layout}_edited_found", int(found), "bool", top=top, expected=f"rec-{first}")
    return {"wall": wall2 / wall1, "inside": inside2 / inside1, "cpu": cpu2 / cpu1}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--quick", action="store_true", help="2,000 records in 20 files")
    ap.add_argument(
        "--baseline-python",
        help="also run the one-file layout with this interpreter (another checkout's venv, "
        "e.g. main's, whose reruns read every record): the baseline_one_file rows",
    )
    args = ap.parse_args(argv)
    n, files = (2000, 20) if args.quick else (args.records, args.files)
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="record-rerun-") as tmp:
        root = Path(tmp)
        layouts = [("one_file", sys.executable), ("many_files", sys.executable)]
        if args.baseline_python:
            layouts.append(("baseline_one_file", args.baseline_python))
        for layout, python in layouts:
            (root / layout).mkdir()
            if layout == "many_files":
                source, change, first = many_files(root / layout, n, files, args.fraction)
            else:
                source, change, first = one_file(root / layout, n, args.fraction)
            out = root / layout / "out"
            ratios[layout] = measure(layout, source, change, first, out, n, python)
    one, many = ratios["one_file"], ratios["many_files"]
    emit(
        BENCH,
        "one_file_vs_many_files",
        round(one["wall"] / many["wall"], 3),
        "x",
        baseline="the many-files rerun ratio (rerun / first run, from process start)",
        inside_ratio=round(one["inside"] / many["inside"], 3),
        cpu_ratio=round(one["cpu"] / many["cpu"], 3),
        load_1m=round(os.getloadavg()[0], 2),
    )


if __name__ == "__main__":
    main()
