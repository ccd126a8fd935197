"""One request to the embeddings endpoint, with retries; the client's HTTP side.

``Transport`` builds a request's body, sends it under the ``Throttle``, turns an
answer into an ``EmbeddingsResult`` or one of our errors (httpx's exceptions become ours
in ``send``, and only there), and retries what ``RetryPolicy`` says is worth retrying
until its attempts or its deadline run out. It owns the httpx client (made at the first
request), the throttle and the ``ClientStats``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from corpusbeam.inference.client.responses import (
    EmbeddingsResult,
    parse_embeddings,
    parse_error,
    request_id_of,
)
from corpusbeam.inference.client.retry import retry_after_seconds
from corpusbeam.inference.client.settings import ClientSettings
from corpusbeam.inference.client.throttle import Throttle
from corpusbeam.inference.errors import (
    ConnectError,
    DeadlineExceeded,
    EmbeddingError,
    EndpointTimeout,
    RateLimitError,
    StatusError,
    TransportError,
)
from corpusbeam.inference.token_budget import length_refusal

__all__ = ["ClientStats", "RequestOptions", "Transport"]

log = logging.getLogger(__name__)


@dataclass
class ClientStats:
    """Running counts of what the client did; read them, or take differences."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    failed_requests: int = 0
    splits: int = 0
    inputs_embedded: int = 0
    inputs_failed: int = 0
    prompt_tokens: int = 0
    prompt_patches: int = 0
    length_refusals: int = 0  # answers refusing an input as too long for the model


@dataclass(frozen=True)
class RequestOptions:
    """What every request of one embed call carries besides its inputs."""

    route: str
    encoding: str
    dimensions: int | None
    input_type: str | None


@dataclass(frozen=True)
class _Failed:
    """One attempt that got no vectors: its error, and the wait the endpoint asked for."""

    error: EmbeddingError
    retry_after: float | None = None


class Transport:
    """Sends requests for one client: bodies, retries, errors, stats."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        wallclock: Callable[[], float],
        rng: random.Random,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self._clock = clock
        self._sleep = sleep
        self._wallclock = wallclock
        self._rng = rng
        self._http_transport = http_transport
        self._http: httpx.AsyncClient | None = None
        self.throttle = Throttle(
            max_concurrency=settings.max_concurrency,
            clock=clock,
            sleep=sleep,
            rpm=settings.rpm,
            tpm=settings.tpm,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def body(self, items: list, opts: RequestOptions) -> dict:
        s = self.settings
        body: dict = dict(s.extras)
        body["input"] = items
        if opts.dimensions is not None:
            body["dimensions"] = opts.dimensions
        if opts.encoding != "float":
            body["encoding_format"] = opts.encoding
        if opts.input_type is not None:
            body["input_type"] = opts.input_type
        if s.model:
            body["model"] = s.model
        return body

    async def request(self, items: list, tokens: int, opts: RequestOptions) -> EmbeddingsResult:
        """The vectors of ``items`` (``tokens`` estimated), retried as the policy allows."""
        body = self.body(items, opts)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(body, len(items), tokens, opts)
            if isinstance(outcome, EmbeddingsResult):
                return outcome
            await self._wait_or_raise(outcome, attempt, started)

    async def _attempt(
        self, body: dict, n_inputs: int, tokens: int, opts: RequestOptions
    ) -> EmbeddingsResult | _Failed:
        """One exchange under the throttle: the result, or why there is none."""
        ticket = await self.throttle.acquire(tokens)
        try:
            response = await self.send("POST", opts.route, body)
        except TransportError as exc:
            await self.throttle.release(ticket)
            return _Failed(exc)
        if response.status_code != 200:
            error = self.error(response)
            throttled = response.status_code == 429
            self.stats.throttled += throttled
            self.stats.length_refusals += length_refusal(error) is not None
            await self.throttle.release(ticket, throttled=throttled, retry_after=error.retry_after)
            return _Failed(error, error.retry_after)
        try:
            result = parse_embeddings(
                response.content,
                n_inputs=n_inputs,
                encoding=opts.encoding,
                dimensions=opts.dimensions,
            )
        except TransportError as exc:
            await self.throttle.release(ticket)
            return _Failed(exc)
        await self.throttle.release(ticket, ok=True)
        self.stats.prompt_tokens += result.usage.prompt_tokens
        self.stats.prompt_patches += result.usage.prompt_patches
        return result

    async def _wait_or_raise(self, failed: _Failed, attempt: int, started: float) -> None:
        """Raise ``failed``'s error when it is final (not retryable, the last attempt, or
        past the deadline); otherwise wait before the next attempt."""
        policy = self.settings.retry
        error, retry_after = failed.error, failed.retry_after
        if not self.retryable(error):
            self.stats.failed_requests += 1
            raise error
        if retry_after is not None:
            delay = min(retry_after, policy.max_retry_after)
        else:
            delay = policy.backoff(attempt, self._rng)
        elapsed = self._clock() - started
        if attempt >= policy.max_attempts:
            self.stats.failed_requests += 1
            raise error
        if elapsed + delay > policy.deadline:
            self.stats.failed_requests += 1
            raise DeadlineExceeded(
                f"gave up after {attempt} attempts in {elapsed:.1f}s "
                f"(deadline {policy.deadline:g}s); last error: {error}",
                last=error,
            )
        self.stats.retries += 1
        log.debug("retrying in %.2fs after: %s", delay, error)
        if retry_after is None or not isinstance(error, RateLimitError):
            await self._sleep(delay)
        # A 429's wait is enforced by the throttle's pause gate for every sender.

    def retryable(self, error: EmbeddingError) -> bool:
        if isinstance(error, TransportError):
            return True
        return isinstance(error, StatusError) and error.status in self.settings.retry.retry_statuses

    def error(self, response: httpx.Response) -> StatusError:
        retry_after = retry_after_seconds(response.headers, self._wallclock())
        return parse_error(
            response.status_code, response.headers, response.content, retry_after=retry_after
        )

    async def send(self, method: str, route: str, body: dict | None) -> httpx.Response:
        """One HTTP exchange; httpx's exceptions become ours here, and only here."""
        s = self.settings
        if self._http is None:
            t = s.timeouts
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
                limits=httpx.Limits(
                    max_connections=s.max_concurrency,
                    max_keepalive_connections=s.max_concurrency,
                ),
                transport=self._http_transport,
            )
        headers = s.request_headers()
        if s.credential is not None:
            headers.update(s.credential.headers())
        self.stats.requests += 1
        url = f"{s.endpoint}{route}"
        try:
            response = await self._http.request(
                method, url, params={"api-version": s.api_version}, json=body, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise EndpointTimeout(
                f"{method} {route}: no answer in time ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise ConnectError(f"{method} {route}: {type(exc).__name__}: {exc}") from None
        log.debug(
            "%s %s -> %s (request id %s)",
            method,
            route,
            response.status_code,
            request_id_of(response.headers),
        )
        return response
