"""Counters that both Beam and a live progress display see, from any worker process.

``counter("chunks")`` is a Beam counter (namespace ``corpusbeam``: the run's report reads
these when the pipeline ends) that also adds its increments to a per-process tally. When
the launcher listens (``CORPUSBEAM_PROGRESS=host:port`` in the environment, set by
``pipeline.job.tracking.listening``), a daemon thread sends the tally's deltas every
``FLUSH_SECONDS`` as one small JSON datagram over UDP:

    {"src": "pid-nonce", "c": {"chunks": 12, ...}, "g": {"in_flight": 3}, "l": [41, 38]}

``c`` are counter deltas, ``g`` the process's latest gauge values (the launcher sums the
last value of every source), ``l`` request latencies in milliseconds. Why a channel of our
own: the DirectRunner returns its result only after the run, and the portable job
service answers metrics at the end, so Beam's metrics cannot show a run while it runs.
Worker processes of the multi-processing DirectRunner inherit the variable; a portable
runner's LOOPBACK workers run in the launching process. Without the variable nothing is
sent. Datagrams are for display only: a lost one changes no number in the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable

from apache_beam.metrics import Metrics

from transforms.elements import NAMESPACE

__all__ = ["ENV", "FLUSH_SECONDS", "Counter", "counter", "latency", "watch"]

ENV = "CORPUSBEAM_PROGRESS"
FLUSH_SECONDS = 0.2
_MAX_LATENCIES = 500  # a datagram carries at most this many latency samples


class _Tally:
    """This process's pending deltas and the thread that sends them."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.source = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.latencies: list[float] = []
        self.gauges: dict[str, Callable[[], int]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stop = threading.Event()
        threading.Thread(target=self._run, name="corpusbeam-progress", daemon=True).start()

    def add(self, name: str, n: int) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def _run(self) -> None:
        while not self.stop.wait(FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
            latencies, self.latencies = self.latencies[:_MAX_LATENCIES], []
            gauges = dict(self.gauges)
        values: dict[str, int] = {}
        for name, read in gauges.items():
            try:
                values[name] = int(read())
            except Exception:  # a gauge whose object went away reads as 0
                values[name] = 0
        if not (counts or latencies or values):
            return
        body = {"src": self.source, "c": counts, "g": values, "l": latencies}
        # The launcher stopped listening: display only, nothing to lose.
        with contextlib.suppress(OSError):
            self.sock.sendto(json.dumps(body).encode("utf-8"), self.address)


_tally: _Tally | None = None
_tally_lock = threading.Lock()


def _current() -> _Tally | None:
    """The process's tally, created on first use when the launcher listens."""
    global _tally
    value = os.environ.get(ENV)
    if not value:
        return None
    with _tally_lock:
        if _tally is None or _tally.address != _parse(value):
            _tally = _Tally(_parse(value))
        return _tally


def _parse(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


class Counter:
    """A Beam counter in namespace ``corpusbeam`` whose increments also reach the display.

    Pickles as its name (a DoFn holding one ships to the workers)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._beam = Metrics.counter(NAMESPACE, name)

    def inc(self, n: int = 1) -> None:
        self._beam.inc(n)
        tally = _current()
        if tally is not None:
            tally.add(self.name, n)

    def __reduce__(self):
        return (Counter, (self.name,))


def counter(name: str) -> Counter:
    return Counter(name)


def latency(ms: float) -> None:
    """Record one request's latency (milliseconds) for the run's latency histogram."""
    tally = _current()
    if tally is not None:
        with tally.lock:
            tally.latencies.append(round(ms, 1))


def watch(name: str, read: Callable[[], int]) -> None:
    """Report ``read()`` as this process's gauge ``name`` with every flush."""
    tally = _current()
    if tally is not None:
        with tally.lock:
            tally.gauges[name] = read
