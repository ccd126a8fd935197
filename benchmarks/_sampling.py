"""A thread that calls ``sample()`` every ``interval`` seconds until ``stop()``: the
common part of the benchmarks' samplers (memory: ``benchmarks/_rss.py``; disk:
``benchmarks/_disk.py``), each writing its samples to an optional trace file."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Self

__all__ = ["PeriodicSampler"]


class PeriodicSampler:
    """Subclasses define ``sample()``; ``self.trace`` is the open trace file or None."""

    def __init__(self, interval: float, trace: Path | None = None) -> None:
        self.interval = interval
        self.trace = trace.open("w") if trace else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> Self:
        """Stop sampling (if started) and close the trace."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.trace:
            self.trace.close()
        return self
