"""The search service's ``GET /metrics``, in the Prometheus text format, written by hand.

Series:

- ``corpusbeam_search_requests_total{status}``: answers of ``POST /search`` by status;
- ``corpusbeam_search_seconds`` (histogram): the whole ``POST /search`` handler;
- ``corpusbeam_search_embed_seconds`` / ``corpusbeam_search_index_seconds`` (histograms):
  embedding the query, and searching + metadata lookup, for answered queries;
- ``corpusbeam_index_info{index, version}``: 1 for the version each index serves;
- ``corpusbeam_index_swaps_total{index}`` / ``corpusbeam_index_swap_failures_total{index}``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

__all__ = ["BUCKETS", "ServiceMetrics"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

_HISTOGRAMS = {
    "corpusbeam_search_seconds": "Time to answer POST /search.",
    "corpusbeam_search_embed_seconds": "Time to embed a query.",
    "corpusbeam_search_index_seconds": "Time to search the indexes and look up metadata.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum += seconds
        for i, upper in enumerate(BUCKETS):
            if seconds <= upper:
                self.counts[i] += 1

    def lines(self, name: str) -> Iterable[str]:
        for upper, count in zip(BUCKETS, self.counts, strict=True):
            yield f'{name}_bucket{{le="{upper}"}} {count}'
        yield f'{name}_bucket{{le="+Inf"}} {self.total}'
        yield f"{name}_sum {self.sum!r}"
        yield f"{name}_count {self.total}"


class ServiceMetrics:
    """Counters and histograms; ``render(indexes)`` writes them with the indexes' state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self._hist = {name: _Histogram() for name in _HISTOGRAMS}

    def request(self, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[str(status)] += 1
            self._hist["corpusbeam_search_seconds"].observe(seconds)

    def timings(self, embed_seconds: float | None, index_seconds: float) -> None:
        with self._lock:
            if embed_seconds is not None:
                self._hist["corpusbeam_search_embed_seconds"].observe(embed_seconds)
            self._hist["corpusbeam_search_index_seconds"].observe(index_seconds)

    def render(self, indexes: Iterable) -> str:
        """The text of ``/metrics``; ``indexes`` are ``LiveIndex`` objects."""
        out = [
            "# HELP corpusbeam_search_requests_total POST /search answers by status.",
            "# TYPE corpusbeam_search_requests_total counter",
        ]
        with self._lock:
            for status, n in sorted(self.requests.items()):
                out.append(f'corpusbeam_search_requests_total{{status="{status}"}} {n}')
            for name, text in _HISTOGRAMS.items():
                out += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
                out += list(self._hist[name].lines(name))
        indexes = list(indexes)
        out += [
            "# HELP corpusbeam_index_info The version each index serves.",
            "# TYPE corpusbeam_index_info gauge",
        ]
        for live in indexes:
            version = _escape(live.version or "")
            out.append(
                f'corpusbeam_index_info{{index="{_escape(live.name)}",version="{version}"}} 1'
            )
        for metric, attr, text in (
            ("corpusbeam_index_swaps_total", "swaps", "Versions swapped in."),
            (
                "corpusbeam_index_swap_failures_total",
                "failed_swaps",
                "Versions that failed to open.",
            ),
        ):
            out += [f"# HELP {metric} {text}", f"# TYPE {metric} counter"]
            for live in indexes:
                out.append(f'{metric}{{index="{_escape(live.name)}"}} {getattr(live, attr)}')
        return "\n".join(out) + "\n"
