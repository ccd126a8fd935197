"""A least-recently-used cache of query embeddings, so a repeated query is not embedded again.

    cache = QueryCache(1024)
    vectors = cache.embed(("https://...", 384, "float"), ["a", "b"], embed)  # texts -> (n, w)
    cache.hits, cache.misses, len(cache)

A key is the endpoint's identity (URL, api-version, deployment), the dimensions, the
encoding and the query text: the same text sent to another endpoint or in another encoding
is another entry. Only the texts not in the cache are sent, in one request, and the answer
rows are stored. Thread-safe (the service embeds from worker threads). ``maxsize`` 0
turns the cache off: every text is a miss and nothing is kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from corpusbeam.errors import ConfigError

__all__ = ["DEFAULT_QUERY_CACHE", "QueryCache"]

DEFAULT_QUERY_CACHE = 1024  # query vectors kept (a 384-d float vector is 1.5 KiB)


class QueryCache:
    """Query vectors by (endpoint, dimensions, encoding, text), the least recently used
    dropped past ``maxsize``; ``hits`` and ``misses`` count texts looked up."""

    def __init__(self, maxsize: int = DEFAULT_QUERY_CACHE) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ConfigError("query_cache", maxsize, "must be an integer >= 0 (0: off)")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def _get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            row = self._data.get(key)
            if row is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return row

    def _put(self, key: tuple, row: np.ndarray) -> None:
        if self.maxsize == 0:
            return
        row = row.copy()
        row.flags.writeable = False  # shared by every caller that hits it
        with self._lock:
            self._data[key] = row
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def embed(
        self,
        scope: Hashable,
        texts: Sequence[str],
        embed: Callable[[list[str]], np.ndarray],
    ) -> np.ndarray:
        """(n, width) vectors of ``texts``: cached rows, and ``embed(missing)`` for the rest
        (one call, only when something is missing)."""
        rows: list[np.ndarray | None] = [self._get((scope, t)) for t in texts]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            wanted = list(dict.fromkeys(texts[i] for i in missing))  # each text once
            by_text = dict(zip(wanted, embed(wanted), strict=True))
            for i in missing:
                rows[i] = by_text[texts[i]]
            for text, row in by_text.items():
                self._put((scope, text), row)
        return np.stack(rows)  # type: ignore[arg-type]
