"""The search service's settings: ``ServiceConfig`` and its defaults.

Imports only the standard library and ``corpusbeam.inference.errors``, so the command line reads the
defaults without importing Starlette, FAISS or numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from corpusbeam.errors import ConfigError

__all__ = [
    "DEFAULT_CURSOR_TTL",
    "DEFAULT_FAISS_THREADS",
    "DEFAULT_HOST",
    "DEFAULT_K",
    "DEFAULT_KEEP_VERSIONS",
    "DEFAULT_MAX_K",
    "DEFAULT_MAX_QUERY_CHARS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_PORT",
    "DEFAULT_QUERY_CACHE",
    "ServiceConfig",
]

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_QUERY_CHARS = 4096
DEFAULT_MAX_K = 1000
DEFAULT_K = 10
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FAISS_THREADS = 1
DEFAULT_HOST = "127.0.0.1"  # where ``corpusbeam serve`` listens
DEFAULT_PORT = 8090
# The library's defaults (query_cache.DEFAULT_QUERY_CACHE, paging.DEFAULT_KEPT_VERSIONS and
# DEFAULT_CURSOR_TTL), repeated so the command line reads them without numpy.
DEFAULT_QUERY_CACHE = 1024
DEFAULT_KEEP_VERSIONS = 2
DEFAULT_CURSOR_TTL = 600.0


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Limits and settings of the search service; every field validated on construction.

    ``max_request_bytes``: largest ``POST /search`` body (an image query's data URL is
    the large one); ``max_query_chars``: longest text query; ``max_k``: most hits asked
    for; ``default_k``: when the body gives none; ``poll_interval``: seconds between
    ``CURRENT`` checks (0 turns polling off); ``faiss_threads``: OpenMP threads a search
    (1: concurrent requests use the cores; None: FAISS's default), set in each worker
    thread, since OpenMP keeps the setting per thread; ``api_key``: required by
    ``/search`` and ``/indexes`` (never shown by ``repr``); ``query_cache``: text query
    vectors kept (0: off); ``keep_versions`` / ``cursor_ttl``: replaced versions kept open
    for paging cursors, and for how many seconds after their replacement;
    ``local_in_process``: text queries of ``local://`` indexes run the model in this
    process (False: through a local endpoint on loopback).
    """

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS
    max_k: int = DEFAULT_MAX_K
    default_k: int = DEFAULT_K
    poll_interval: float = DEFAULT_POLL_INTERVAL
    faiss_threads: int | None = DEFAULT_FAISS_THREADS
    api_key: str | None = field(default=None, repr=False)
    query_cache: int = DEFAULT_QUERY_CACHE
    keep_versions: int = DEFAULT_KEEP_VERSIONS
    cursor_ttl: float = DEFAULT_CURSOR_TTL
    local_in_process: bool = True

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_query_chars", "max_k", "default_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, value, "must be a positive integer")
        if self.default_k > self.max_k:
            raise ConfigError("default_k", self.default_k, f"must be <= max_k ({self.max_k})")
        if self.faiss_threads is not None and (
            isinstance(self.faiss_threads, bool)
            or not isinstance(self.faiss_threads, int)
            or self.faiss_threads < 1
        ):
            raise ConfigError("faiss_threads", self.faiss_threads, "must be >= 1 or None")
        for name in ("query_cache", "keep_versions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, value, "must be an integer >= 0")
        if not (0 <= self.cursor_ttl < math.inf):
            raise ConfigError("cursor_ttl", self.cursor_ttl, "must be >= 0 seconds")
        if not (0 <= self.poll_interval < math.inf):
            raise ConfigError("poll_interval", self.poll_interval, "must be >= 0 seconds")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("api_key", "<hidden>", "must be a non-empty string or None")
