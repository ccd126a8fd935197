"""Retry policy as data, and reading how long an endpoint asked us to wait.

Retried: connection errors, timeouts, malformed answers, and HTTP 408, 429, 500, 502,
503, 504. Never retried: 400, 401, 403, 404, 413, 422 (a 413 is split instead, see
``core``). A wait the endpoint asks for (``retry-after-ms``, ``x-ms-retry-after-ms``,
``Retry-After`` in seconds or as an HTTP date) is honoured; otherwise the wait is capped
exponential backoff with full jitter. A total deadline bounds every call.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from corpusbeam.errors import ConfigError

__all__ = ["RetryPolicy", "retry_after_seconds"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a failed request is retried.

    ``max_attempts`` counts the first try; ``deadline`` (seconds) bounds one call from its
    first attempt to its last answer, waits included; ``max_retry_after`` caps a wait the
    endpoint asks for (a confused server cannot park us for an hour).
    """

    max_attempts: int = 10
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    deadline: float = 600.0
    max_retry_after: float = 120.0
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts", self.max_attempts, "must be at least 1")
        for name in ("initial_backoff", "max_backoff", "deadline", "max_retry_after"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "must be positive")
        if self.multiplier < 1:
            raise ConfigError("multiplier", self.multiplier, "must be at least 1")
        never = {400, 401, 403, 404, 413, 422} & set(self.retry_statuses)
        if never:
            raise ConfigError("retry_statuses", sorted(never), "these are never retried")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full-jitter backoff before retry number ``retry`` (1 for the first retry)."""
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return rng.uniform(cap / 2, cap)


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the endpoint asked us to wait, from the most precise header present.

    ``now`` is the wall-clock time (seconds since the epoch), used for HTTP dates.
    """
    for name, scale in (("retry-after-ms", 1e-3), ("x-ms-retry-after-ms", 1e-3)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
