"""What the live progress channel costs a pipeline: elements a second through a DoFn that
increments one counter an element, on the DirectRunner.

Baseline, in the same run: the same pipeline incrementing a plain Beam counter
(``Metrics.counter``). Measured: ``transforms.counters.counter`` with the launcher listening
(``pipeline.job.tracking.tracking``: the tally, its sender thread, the datagrams) and without
(``CORPUSBEAM_PROGRESS`` unset: the Beam counter and one environment lookup). Each figure is
the best of ``--rounds`` runs. A real DoFn does far more work an element than this one, so
the ratios bound the overhead from above.
"""

from __future__ import annotations

import argparse
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks._common import emit
from pipeline.job.tracking import tracking
from transforms import counters as progress
from transforms.elements import NAMESPACE

__all__ = ["main"]


class _Count(beam.DoFn):
    def __init__(self, kind: str) -> None:
        self._counter = (
            Metrics.counter(NAMESPACE, "bench") if kind == "beam" else progress.counter("bench")
        )

    def process(self, x):
        self._counter.inc()
        yield x


def _seconds(n: int, kind: str) -> float:
    p = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    _ = p | beam.Create(range(n)) | beam.ParDo(_Count(kind)) | beam.combiners.Count.Globally()
    started = time.perf_counter()
    p.run().wait_until_finish()
    return time.perf_counter() - started


def _best(n: int, kind: str, rounds: int, listening: bool) -> float:
    best = float("inf")
    for _ in range(rounds):
        if listening:
            with tracking(1) as tracker:
                best = min(best, _seconds(n, kind))
            assert tracker.snapshot().get("bench") >= n, "the datagrams arrived"
        else:
            best = min(best, _seconds(n, kind))
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--elements", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 elements, 2 rounds")
    args = parser.parse_args(argv)
    n, rounds = (5_000, 2) if args.quick else (args.elements, args.rounds)
    _seconds(2_000, "beam")  # warm up: the first pipeline of a process pays for imports
    base = n / _best(n, "beam", rounds, listening=False)
    emit("progress_overhead", "beam_counter", round(base, 1), "elements/s", elements=n)
    for metric, listening in (
        ("progress_counter_idle", False),
        ("progress_counter_listening", True),
    ):
        value = n / _best(n, "progress", rounds, listening=listening)
        emit(
            "progress_overhead",
            metric,
            round(value, 1),
            "elements/s",
            ratio=round(value / base, 3),
            baseline="Metrics.counter, same pipeline",
            elements=n,
        )


if __name__ == "__main__":
    main()
