"""The search service's ``GET /metrics``, in the Prometheus text format
(``corpusbeam.asgi.prometheus``).

Series:

- ``corpusbeam_search_requests_total{status}``: answers of ``POST /search`` by status;
- ``corpusbeam_search_seconds`` (histogram): the whole ``POST /search`` handler;
- ``corpusbeam_search_embed_seconds`` / ``corpusbeam_search_index_seconds`` (histograms):
  embedding the query, and searching + metadata lookup, for answered queries;
- ``corpusbeam_index_info{index, version}``: 1 for the version each index serves;
- ``corpusbeam_index_swaps_total{index}`` / ``corpusbeam_index_swap_failures_total{index}``;
- ``corpusbeam_query_cache_hits_total`` / ``corpusbeam_query_cache_misses_total``: text
  queries answered from the query-embedding cache, and sent to the endpoint;
  ``corpusbeam_query_cache_entries``: vectors it holds
  (``corpusbeam.retrieval.query_cache``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from corpusbeam.asgi.prometheus import Counters, Histogram, family, render, sample

__all__ = ["BUCKETS", "ServiceMetrics"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

_REQUESTS = "corpusbeam_search_requests_total"
_HISTOGRAMS = {
    "corpusbeam_search_seconds": "Time to answer POST /search.",
    "corpusbeam_search_embed_seconds": "Time to embed a query.",
    "corpusbeam_search_index_seconds": "Time to search the indexes and look up metadata.",
}
_SWAPS = (
    ("corpusbeam_index_swaps_total", "swaps", "Versions swapped in."),
    ("corpusbeam_index_swap_failures_total", "failed_swaps", "Versions that failed to open."),
)


class ServiceMetrics:
    """Counters and histograms; ``render(indexes)`` writes them with the indexes' state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = Counters()
        self._hist = {name: Histogram(BUCKETS) for name in _HISTOGRAMS}

    def request(self, status: int, seconds: float) -> None:
        self._requests.inc(_REQUESTS, status=str(status))
        with self._lock:
            self._hist["corpusbeam_search_seconds"].observe(seconds)

    def timings(self, embed_seconds: float | None, index_seconds: float) -> None:
        with self._lock:
            if embed_seconds is not None:
                self._hist["corpusbeam_search_embed_seconds"].observe(embed_seconds)
            self._hist["corpusbeam_search_index_seconds"].observe(index_seconds)

    def render(self, indexes: Iterable) -> str:
        """The text of ``/metrics``; ``indexes`` are ``LiveIndex`` objects."""
        out = family(
            _REQUESTS,
            "counter",
            "POST /search answers by status.",
            self._requests.samples(_REQUESTS),
        )
        with self._lock:
            for name, text in _HISTOGRAMS.items():
                out += family(name, "histogram", text, self._hist[name].samples(name))
        indexes = list(indexes)
        info = [
            sample("corpusbeam_index_info", 1, {"index": live.name, "version": live.version or ""})
            for live in indexes
        ]
        out += family("corpusbeam_index_info", "gauge", "The version each index serves.", info)
        for metric, attr, text in _SWAPS:
            counts = [sample(metric, getattr(live, attr), {"index": live.name}) for live in indexes]
            out += family(metric, "counter", text, counts)
        return render(out + _cache_families(indexes))


def _cache_families(indexes: list) -> list:
    """The query caches of the indexes' embedder pools (one a pool, usually one in all)."""
    caches = list({id(live.embedders): live.embedders.cache for live in indexes}.values())
    out = []
    for name, attr, kind, text in (
        ("corpusbeam_query_cache_hits_total", "hits", "counter", "Queries embedded from cache."),
        ("corpusbeam_query_cache_misses_total", "misses", "counter", "Queries sent to embed."),
        ("corpusbeam_query_cache_entries", "__len__", "gauge", "Query vectors cached."),
    ):
        total = sum(len(c) if attr == "__len__" else getattr(c, attr) for c in caches)
        out += family(name, kind, text, [sample(name, total, {})])
    return out
