"""How many requests go out, and when: adaptive concurrency, pacing and budgets.

One ``Throttle`` per client shapes all its requests:

- **Concurrency, AIMD.** At most ``limit`` requests are in flight. Each success adds
  ``1/limit`` (one more slot per window of successes); a 429 halves it, once per window:
  a 429 for a request sent before the last decrease does not count again, as in TCP.
- **The pause gate.** A 429's ``Retry-After`` (or ``retry-after-ms``) pauses every sender
  until then, not only the request that got it, so a throttled endpoint is not hammered.
- **Pacing.** Concurrency does not bound the rate when answers are fast, so after the first
  429 the throttle also paces sends: ``rate`` starts at 0.9x the success rate measured over
  the last few seconds, drops by 10% at each further 429 window, and creeps up 0.5% per
  success. The endpoint is used near its limit with few 429s.
- **Budgets.** Optional client-side requests- and tokens-a-minute budgets for endpoints
  with known quotas, as token buckets holding ten seconds' worth.

Time comes from an injected ``clock`` and ``sleep`` so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Throttle", "Ticket", "TokenBucket"]

_RATE_WINDOW = 5.0  # seconds of successes used to measure the rate at the first 429
_DECREASE = 0.9  # pacing: rate multiplier at each 429 window
_INCREASE = 0.005  # pacing: relative rate increase per success


@dataclass
class Ticket:
    """One admitted request: when it was sent (by the throttle's clock)."""

    sent_at: float


class TokenBucket:
    """A budget of ``per_minute`` units, refilled continuously, holding ``burst`` at most."""

    def __init__(self, per_minute: float, clock: Callable[[], float], burst_seconds: float = 10):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self._level = self.capacity
        self._clock = clock
        self._stamp = clock()

    def wait_for(self, units: float) -> float:
        """Take ``units`` (possibly into debt) and return seconds to wait before sending."""
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        units = min(units, self.capacity)  # a request larger than the bucket still goes
        self._level -= units
        return 0.0 if self._level >= 0 else -self._level / self.rate


class Throttle:
    """Admits requests under an adaptive concurrency limit, a pause gate, pacing and budgets."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        min_concurrency: int = 1,
        initial_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.limit = float(initial_concurrency or max_concurrency)
        self.rate: float | None = None  # requests a second once paced, else None
        self._clock = clock
        self._sleep = sleep
        self._in_flight = 0
        self._cond: asyncio.Condition | None = None
        self._resume_at = 0.0
        self._next_send = 0.0
        self._last_decrease = float("-inf")
        self._successes: collections.deque[float] = collections.deque()
        self._started = clock()
        self._rpm = TokenBucket(rpm, clock) if rpm else None
        self._tpm = TokenBucket(tpm, clock) if tpm else None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self, tokens: int = 0) -> Ticket:
        """Wait until a request of ``tokens`` tokens may be sent, then count it in flight."""
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            await self._cond.wait_for(lambda: self._in_flight < max(1, int(self.limit)))
            self._in_flight += 1
        try:
            await self._wait_until_allowed(tokens)
        except BaseException:
            await self._leave()
            raise
        return Ticket(sent_at=self._clock())

    async def release(
        self,
        ticket: Ticket,
        *,
        throttled: bool = False,
        ok: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Record how a request ended: ``ok`` (a success), ``throttled`` (a 429), or neither."""
        now = self._clock()
        if throttled:
            self._on_throttled(ticket, now, retry_after)
        elif ok:
            self._on_success(now)
        await self._leave()

    async def _leave(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self._in_flight -= 1
            # Wake only as many waiters as there are free slots: with hundreds of requests
            # queued, notify_all would wake them all on every answer.
            self._cond.notify(max(1, int(self.limit) - self._in_flight))

    async def _wait_until_allowed(self, tokens: int) -> None:
        while True:
            now = self._clock()
            wait = self._resume_at - now
            if self.rate is not None:
                slot = max(self._next_send, now)
                wait = max(wait, slot - now)
            if wait <= 0:
                break
            await self._sleep(wait)
        if self.rate is not None:
            self._next_send = max(self._next_send, self._clock()) + 1.0 / self.rate
        budget_wait = max(
            self._rpm.wait_for(1) if self._rpm else 0.0,
            self._tpm.wait_for(tokens) if self._tpm else 0.0,
        )
        if budget_wait > 0:
            await self._sleep(budget_wait)

    def _on_success(self, now: float) -> None:
        self.limit = min(float(self.max_concurrency), self.limit + 1.0 / self.limit)
        self._successes.append(now)
        while self._successes and self._successes[0] < now - _RATE_WINDOW:
            self._successes.popleft()
        if self.rate is not None:
            self.rate *= 1.0 + _INCREASE

    def _on_throttled(self, ticket: Ticket, now: float, retry_after: float | None) -> None:
        if retry_after:
            self._resume_at = max(self._resume_at, now + retry_after)
        if ticket.sent_at <= self._last_decrease:
            return  # this window's 429s were already counted
        self._last_decrease = now
        self.limit = max(float(self.min_concurrency), self.limit / 2.0)
        if self.rate is None:
            span = max(1e-3, min(_RATE_WINDOW, now - self._started))
            measured = len(self._successes) / span
            self.rate = max(0.1, _DECREASE * measured) if measured else 1.0
        else:
            self.rate = max(0.1, self.rate * _DECREASE)
