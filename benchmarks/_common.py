"""Shared helpers for benchmarks: ``emit`` one JSON line, ``best_rate`` to time a callable."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

__all__ = ["best_rate", "emit"]


def emit(benchmark: str, metric: str, value: float, unit: str, **extra: object) -> None:
    """Print one result line (see benchmarks/README.md)."""
    record = {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, **extra}
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def best_rate(
    fn: Callable[[], object], *, items: int, budget: float = 0.5, rounds: int = 3
) -> float:
    """``items`` a call / the best time a call takes, over ``rounds`` rounds of ``budget`` s."""
    fn()  # warm up
    best = float("inf")
    for _ in range(rounds):
        calls, started = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= budget:
                break
        best = min(best, elapsed / calls)
    return items / best
