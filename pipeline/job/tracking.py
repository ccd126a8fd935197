"""The launcher's side of live progress: listen for the workers' counts, say where the run is.

``tracking(patterns, on_update)`` binds a UDP socket on loopback, puts its address in the
environment (``transforms.counters.ENV``) so every worker process the runner starts (the
DirectRunner in process or with ``multi_processing`` workers, a portable runner's
LOOPBACK workers) sends its counter deltas there, and calls ``on_update(Snapshot)``
every ``interval`` seconds from a thread of its own. It also keeps what the run report
needs: a time series of the counts (one sample a second, the last one the pipeline's Beam
counters when it ends) and every request's latency.

The stage is the launcher's own (``merging``, ``publishing``) once the pipeline has
ended; while it runs it is read off the counts: ``reading`` until every pattern is
matched and every matched file read, then ``embedding`` until every input is embedded,
reused or failed, then ``building`` (the index shards). The total, and with it the ETA,
is known once reading is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from transforms.counters import ENV

__all__ = ["MATCHERS", "ProgressTracker", "Snapshot", "tracking"]

# the graph matches every input pattern twice: ReadDocuments and ReadImages (once when
# the image steps are left out: ``ProgressTracker.matchers``)
MATCHERS = 2
_MAX_LATENCIES = 20_000  # latency samples the report keeps (the first ones)
_MAX_POINTS = 4_000  # time-series points kept: past it, every other one is dropped
_RATE_WINDOW = 5.0  # seconds the inputs-a-second figure averages over


@dataclass(frozen=True)
class Snapshot:
    """Where a run is: counts summed over every worker process, and what follows."""

    elapsed: float
    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    rate: float = 0.0  # inputs (embedded + reused) a second, recent
    total: int | None = None  # inputs to embed or reuse, once reading is done
    done: int = 0  # inputs embedded, reused or failed
    eta: float | None = None  # seconds, once the total is known

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)

    def line(self) -> str:
        """One plain line, for logs."""
        return f"{self.head()}; {self.tail()}"

    def head(self) -> str:
        """Stage, time, embedded of the total, ETA: what a terminal's first line shows."""
        total = f"/{self.total}" if self.total is not None else ""
        eta = f", ETA {_seconds(self.eta)}" if self.eta is not None else ""
        return (
            f"[{self.stage}] {_seconds(self.elapsed)}: "
            f"embedded {self.get('inputs_embedded')}{total}{eta}"
        )

    def tail(self) -> str:
        """Everything else counted."""
        return (
            f"read {self.get('documents_read')} docs {self.get('images_read')} images, "
            f"{self.get('chunks')} chunks; reused {self.get('inputs_reused')}, "
            f"failed {self.get('inputs_failed')}; {self.rate:.1f} inputs/s, "
            f"{self.in_flight} in flight, {self.get('requests')} requests, "
            f"{self.get('retries')} retries, {self.get('throttled')} 429s"
        )


def _seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}:{s % 60:02d}" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressTracker:
    """Sums the datagrams workers send; thread-safe; ``snapshot()`` at any time."""

    def __init__(
        self,
        patterns: int,
        clock: Callable[[], float] = time.monotonic,
        on_update: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.on_update = on_update
        self._patterns = patterns
        self._expected_patterns = patterns * MATCHERS
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._gauges: dict[str, dict[str, int]] = {}  # source -> name -> value
        self._latencies: list[float] = []
        self._stage: str | None = None  # the launcher's; None while the pipeline runs
        self._recent: deque[tuple[float, int]] = deque()
        self._timeline: list[dict] = []

    def matchers(self, count: int) -> None:
        """How many readers match each input pattern (the total is known once all have)."""
        with self._lock:
            self._expected_patterns = self._patterns * count

    def receive(self, body: dict) -> None:
        """Add one datagram's content (see ``transforms.counters``)."""
        with self._lock:
            for name, n in body.get("c", {}).items():
                self._counts[name] = self._counts.get(name, 0) + int(n)
            if body.get("g"):
                self._gauges[str(body.get("src"))] = {k: int(v) for k, v in body["g"].items()}
            room = _MAX_LATENCIES - len(self._latencies)
            if room > 0:
                self._latencies.extend(float(ms) for ms in body.get("l", [])[:room])

    def stage(self, name: str | None) -> None:
        """Set the launcher's stage (``None``: read it off the counts); shown at once."""
        with self._lock:
            self._stage = name
        if self.on_update is not None:
            self.on_update(self.snapshot())

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            c = dict(self._counts)
            in_flight = sum(g.get("in_flight", 0) for g in self._gauges.values())
            stage_override = self._stage
            moved = c.get("inputs_embedded", 0) + c.get("inputs_reused", 0)
            self._recent.append((now, moved))
            while len(self._recent) > 2 and now - self._recent[0][0] > _RATE_WINDOW:
                self._recent.popleft()
            t0, m0 = self._recent[0]
        rate = (moved - m0) / (now - t0) if now > t0 else 0.0
        read_done = c.get("patterns_matched", 0) >= self._expected_patterns and c.get(
            "files_read", 0
        ) >= c.get("files_matched", 0)
        total = c.get("chunks", 0) + c.get("images_read", 0) if read_done else None
        done = moved + c.get("inputs_failed", 0)
        eta = None
        if total is not None:
            left = max(0, total - done)
            eta = 0.0 if left == 0 else (left / rate if rate > 0 else None)
        if stage_override is not None:
            stage = stage_override
        elif not read_done:
            stage = "reading"
        elif total is not None and done < total:
            stage = "embedding"
        else:
            stage = "building"
        return Snapshot(
            elapsed=now - self._started,
            stage=stage,
            counts=c,
            in_flight=in_flight,
            rate=rate,
            total=total,
            done=done,
            eta=eta,
        )

    def sample(self) -> None:
        """Add one point to the time series the run report keeps."""
        s = self.snapshot()
        with self._lock:
            self._timeline.append(
                {
                    "t": round(s.elapsed, 3),
                    "stage": s.stage,
                    "in_flight": s.in_flight,
                    **{k: s.get(k) for k in _SERIES},
                }
            )
            if len(self._timeline) > _MAX_POINTS:  # a long run: halve the resolution
                del self._timeline[1:-1:2]

    def pipeline_done(self, counters: dict[str, int], settle: float = 0.3) -> None:
        """The pipeline has ended: wait ``settle`` seconds for the workers' last datagrams,
        then take its final counts from Beam's counters (``counters``: the run's totals,
        which a datagram lost, or a worker process ended before its last send, cannot
        change) and add the point to the time series."""
        time.sleep(settle)
        with self._lock:
            for name, value in counters.items():
                self._counts[name] = int(value)
        self.sample()

    def record(self) -> dict:
        """What the run report keeps of the run: ``timeline`` and ``request_latency_ms``."""
        with self._lock:
            return {"timeline": list(self._timeline), "request_latency_ms": list(self._latencies)}


_SERIES = (
    "documents_read",
    "images_read",
    "chunks",
    "inputs_embedded",
    "inputs_reused",
    "inputs_failed",
    "requests",
    "retries",
    "throttled",
    "prompt_tokens",
    "tokens_estimated",
    "inputs_resumed",
)


@contextlib.contextmanager
def tracking(
    patterns: int,
    on_update: Callable[[Snapshot], None] | None = None,
    *,
    interval: float = 0.25,
    sample_every: float = 1.0,
) -> Iterator[ProgressTracker]:
    """Listen for the workers' counts while the block runs (see the module docstring)."""
    tracker = ProgressTracker(patterns, on_update=on_update)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    host, port = sock.getsockname()
    stop = threading.Event()
    previous = os.environ.get(ENV)
    os.environ[ENV] = f"{host}:{port}"

    def listen() -> None:
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                tracker.receive(json.loads(data))

    def tick() -> None:
        next_sample = 0.0
        while not stop.wait(interval):
            if time.monotonic() >= next_sample:
                tracker.sample()
                next_sample = time.monotonic() + sample_every
            if on_update is not None:
                on_update(tracker.snapshot())

    threads = [
        threading.Thread(target=listen, name="corpusbeam-progress-listen", daemon=True),
        threading.Thread(target=tick, name="corpusbeam-progress-tick", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        yield tracker
    finally:
        time.sleep(0.3)  # the workers' last flush (transforms.counters.FLUSH_SECONDS)
        stop.set()
        for t in threads:
            t.join()
        sock.close()
        tracker.sample()
        if on_update is not None:
            on_update(tracker.snapshot())
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
