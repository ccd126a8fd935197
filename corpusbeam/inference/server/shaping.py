"""Load shaping: latency, a concurrency cap, request and token budgets, injected faults.

All of it is off unless configured, and all of it is deterministic given ``seed``:

- latency: each embeddings request waits a uniform random time in ``latency_ms`` (while
  holding its concurrency slot, so it behaves like model time);
- concurrency: at most ``max_concurrency`` requests are worked on; the rest queue;
- budgets: ``rpm`` requests and ``tpm`` tokens over a sliding 60-second window. A request
  that does not fit is answered 429 with the time until enough of the window has expired
  (``RateBudget.admit`` returns it); refused requests do not count;
- faults: ``FaultPicker`` decides, per embeddings request in arrival order, whether it gets
  a 5xx, a dropped connection, a truncated body or a stall (see
  ``corpusbeam.inference.server.faults``).

Time is injected (``clock``), so the budget tests need no sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable

from corpusbeam.inference.server.config import FaultRates

__all__ = ["WINDOW_SECONDS", "FaultPicker", "LatencyPicker", "RateBudget"]

WINDOW_SECONDS = 60.0


class RateBudget:
    """Requests-a-minute and tokens-a-minute budgets over a sliding window."""

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._window = window
        self._events: deque[tuple[float, int]] = deque()  # (time, tokens), oldest first
        self._tokens = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def admit(self, tokens: int) -> float | None:
        """Count a request of ``tokens`` and return None, or the seconds until it would fit.

        A request of more tokens than ``tpm`` can never fit; callers check that first.
        """
        if not self.enabled:
            return None
        with self._lock:
            now = self._clock()
            self._expire(now)
            wait = self._wait(now, tokens)
            if wait is not None:
                return wait
            self._events.append((now, tokens))
            self._tokens += tokens
            return None

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self._window:
            _, tokens = self._events.popleft()
            self._tokens -= tokens

    def _wait(self, now: float, tokens: int) -> float | None:
        """Seconds until the oldest events have expired enough to admit the request."""
        need_requests = 0 if self.rpm is None else max(0, len(self._events) + 1 - self.rpm)
        need_tokens = 0 if self.tpm is None else max(0, self._tokens + tokens - self.tpm)
        if need_requests == 0 and need_tokens == 0:
            return None
        freed_tokens = 0
        for i, (at, t) in enumerate(self._events):
            freed_tokens += t
            if i + 1 >= need_requests and freed_tokens >= need_tokens:
                return max(0.0, at + self._window - now)
        return self._window  # pragma: no cover - only when tokens > tpm, checked by callers


class LatencyPicker:
    """Seconds to wait for each request: uniform in ``latency_ms`` (milliseconds)."""

    def __init__(self, latency_ms: tuple[float, float], seed: int) -> None:
        self._lo, self._hi = latency_ms
        self._rng = random.Random(f"latency:{seed}")
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._hi > 0

    def next(self) -> float:
        with self._lock:
            return self._rng.uniform(self._lo, self._hi) / 1000.0


class FaultPicker:
    """Which fault, if any, the next request gets: "5xx", "drop", "truncate", "stall" or None."""

    def __init__(self, rates: FaultRates, seed: int) -> None:
        self._cumulative = []
        total = 0.0
        for kind, rate in (
            ("5xx", rates.server_error),
            ("drop", rates.drop),
            ("truncate", rates.truncate),
            ("stall", rates.stall),
        ):
            total += rate
            self._cumulative.append((total, kind))
        self.enabled = total > 0
        self._rng = random.Random(f"faults:{seed}")
        self._lock = threading.Lock()

    def next(self) -> str | None:
        if not self.enabled:
            return None
        with self._lock:
            u = self._rng.random()
            status_pick = self._rng.random()
        for upto, kind in self._cumulative:
            if u < upto:
                if kind == "5xx":
                    return "500" if status_pick < 0.5 else "503"
                return kind
        return None
