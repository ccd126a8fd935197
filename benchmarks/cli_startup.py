"""How long a ``corpusbeam`` command takes to start, measured as a user meets it: the whole
process, from exec to exit, for ``--help`` of the top level and of each command.

The baseline, measured in the same run, is the interpreter alone (``python -c pass``): the
ratio says how much of the wait is corpusbeam's. Each figure is the median of ``--runs``
runs. The console script is used when it is installed next to this interpreter (as a user
runs it), else ``python -m corpusbeam``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import emit

__all__ = ["main"]

COMMANDS = ((), ("search",), ("serve",), ("index",), ("evaluate",), ("report",), ("endpoint",))


def _median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    script = Path(sys.executable).with_name("corpusbeam")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "corpusbeam"]
    how = "console script" if script.exists() else "python -m corpusbeam"
    python = shutil.which(sys.executable) or sys.executable
    baseline = _median_seconds([python, "-c", "pass"], args.runs)
    emit("cli_startup", "python_alone", round(baseline, 4), "s")
    for sub in COMMANDS:
        seconds = _median_seconds([*command, *sub, "--help"], args.runs)
        name = " ".join(("corpusbeam", *sub, "--help"))
        emit(
            "cli_startup",
            name,
            round(seconds, 4),
            "s",
            baseline=round(baseline, 4),
            ratio=round(seconds / baseline, 2),
            target="< 0.3 s",
            how=how,
        )


if __name__ == "__main__":
    main()
