"""The asyncio embeddings client: one batch in, one batch out, nothing lost on the way.

``AsyncEmbeddingsClient.embed_texts`` / ``embed_images`` take any number of inputs, cut
them into requests of at most ``settings.max_inputs``, keep many requests in flight under
the ``Throttle``, retry what is worth retrying (``retry``), and return one
``EmbeddingsResult`` in input order.

A request the endpoint refuses because of its inputs is split, never dropped whole:

- too large (413, or a 400/422 naming the input's size): split in halves and retried;
- refused for one input (content filter, an invalid or too long input): when the error
  names the input (``target: "input[3]"``), that input fails and the rest are sent
  again; otherwise the batch is bisected until the offending input is isolated.

With ``errors="raise"`` (the default) the first input that cannot be embedded raises.
With ``errors="collect"`` such inputs are returned in ``result.failures`` with their
error, and so are inputs whose requests ran out of retries. Errors that no input can fix
(401, 403, 404, a 422 on a parameter) always raise: every other input would fail alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from corpusbeam.inference.client.images import ImageInput
from corpusbeam.inference.client.responses import (
    EmbeddingsResult,
    Usage,
    input_position,
    parse_embeddings,
    parse_error,
    request_id_of,
)
from corpusbeam.inference.client.retry import retry_after_seconds
from corpusbeam.inference.client.settings import ClientSettings
from corpusbeam.inference.client.throttle import Throttle
from corpusbeam.inference.errors import (
    BadRequestError,
    ConnectError,
    ContentFilterError,
    DeadlineExceeded,
    EmbeddingError,
    EndpointTimeout,
    PayloadTooLargeError,
    RateLimitError,
    StatusError,
    TransportError,
    UnprocessableError,
)
from corpusbeam.inference.protocol import IMAGE_ROUTE, TEXT_ROUTE
from corpusbeam.inference.token_budget import (
    LengthRefusal,
    TokenBudget,
    estimate_tokens,
    length_refusal,
)

__all__ = [
    "AsyncEmbeddingsClient",
    "ClientStats",
    "ErrorMode",
    "pack_requests",
]

log = logging.getLogger(__name__)

ErrorMode = Literal["raise", "collect"]


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
class _Options:
    route: str
    encoding: str
    dimensions: int | None
    input_type: str | None


class AsyncEmbeddingsClient:
    """Embeds texts and images through one endpoint; use as ``async with``.

    ``clock`` (monotonic seconds), ``sleep`` (an async function) and ``wallclock``
    (epoch seconds, for HTTP-date Retry-After) are injectable so tests need not wait;
    ``seed`` makes backoff jitter repeatable.

    ``budget`` (a ``TokenBudget``, texts only) keeps inputs under the model's limit: it
    learns from each answer's ``usage`` and from refusals of an input as too long, and
    once it knows the limit, a text it says cannot fit is not sent: it comes back failed
    at once (413 ``input_too_long``, "not sent") for the caller to cut again.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wallclock: Callable[[], float] = time.time,
        seed: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: TokenBudget | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.stats = ClientStats()
        self._clock = clock
        self._sleep = sleep
        self._wallclock = wallclock
        self._rng = random.Random(seed)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.throttle = Throttle(
            max_concurrency=settings.max_concurrency,
            clock=clock,
            sleep=sleep,
            rpm=settings.rpm,
            tpm=settings.tpm,
        )

    def __repr__(self) -> str:
        s = self.settings
        return f"AsyncEmbeddingsClient(endpoint={s.endpoint!r}, credential={s.credential!r})"

    async def __aenter__(self) -> AsyncEmbeddingsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ---- public API ------------------------------------------------------------------

    async def embed_texts(
        self,
        texts: Sequence[str],
        *,
        input_type: str | None = None,
        dimensions: int | None = None,
        encoding_format: str | None = None,
        errors: ErrorMode = "raise",
    ) -> EmbeddingsResult:
        """Embed ``texts``; the result's rows are in the same order."""
        if isinstance(texts, str):
            raise ConfigError("texts", texts[:40], "pass a list of strings, not one string")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigError(f"texts[{i}]", type(text).__name__, "must be a string")
        opts = self._options(TEXT_ROUTE, input_type, dimensions, encoding_format)
        costs = [estimate_tokens(t) for t in texts]
        s = self.settings
        return await self._embed(
            list(texts), costs, opts, errors, s.max_inputs, s.max_request_tokens, costs
        )

    async def embed_images(
        self,
        images: Sequence[ImageInput | bytes | str],
        *,
        input_type: str | None = None,
        dimensions: int | None = None,
        encoding_format: str | None = None,
        errors: ErrorMode = "raise",
    ) -> EmbeddingsResult:
        """Embed images (bytes, paths, or ``ImageInput`` with optional text), in order."""
        inputs = [im if isinstance(im, ImageInput) else ImageInput(image=im) for im in images]
        wire = [im.to_wire() for im in inputs]
        costs = [estimate_tokens(w.get("text", "")) + 1000 for w in wire]
        sizes = [len(w["image"]) + len(w.get("text", "")) for w in wire]
        opts = self._options(IMAGE_ROUTE, input_type, dimensions, encoding_format)
        s = self.settings
        return await self._embed(
            wire, costs, opts, errors, s.max_images, s.max_request_bytes, sizes
        )

    async def info(self) -> dict:
        """The endpoint's ``GET /info``: model name, type and provider."""
        response = await self._send("GET", "/info", None)
        if response.status_code != 200:
            raise self._error(response)
        return response.json()

    # ---- batching and splitting -------------------------------------------------------

    def _options(self, route, input_type, dimensions, encoding_format) -> _Options:
        s = self.settings
        enc = codec.check_encoding(encoding_format or s.encoding_format)
        dims = dimensions if dimensions is not None else s.dimensions
        if dims is not None:
            codec.wire_width(enc, dims)
        return _Options(route, enc, dims, input_type or s.input_type)

    async def _embed(
        self, items, costs, opts, errors, max_count, max_weight, weights
    ) -> EmbeddingsResult:
        n = len(items)
        rows: dict[int, np.ndarray] = {}
        failures: dict[int, Exception] = {}
        meta: list[EmbeddingsResult] = []
        chunks = pack_requests(weights, max_count, max_weight)
        await asyncio.gather(
            *(
                self._embed_chunk(c, items, costs, opts, errors, rows, failures, meta)
                for c in chunks
            )
        )
        if failures and errors == "raise":
            first = min(failures)
            error = failures[first]
            error.add_note(f"input {first} of the batch could not be embedded")
            raise error
        return self._assemble(n, rows, failures, meta, opts)

    async def _embed_chunk(self, positions, items, costs, opts, errors, rows, failures, meta):
        budget = self.budget if opts.route == TEXT_ROUTE else None
        if budget is not None:
            positions = _screen(budget, positions, items, failures)
            if not positions:
                return
        try:
            result = await self._request(
                [items[p] for p in positions], sum(costs[p] for p in positions), opts
            )
        except (StatusError, TransportError, DeadlineExceeded) as exc:
            if budget is not None and isinstance(exc, StatusError):
                _learn_refusal(budget, exc, positions, items)
            if isinstance(exc, StatusError) and _caused_by_inputs(exc):
                parts = self._split(positions, exc, failures)
                await asyncio.gather(
                    *(
                        self._embed_chunk(p, items, costs, opts, errors, rows, failures, meta)
                        for p in parts
                    )
                )
                return
            if errors == "raise" or not _input_may_fail_alone(exc):
                raise
            for p in positions:
                failures[p] = exc
            return
        if budget is not None:
            based = sum(budget.base(items[p]) for p in positions)
            budget.observe_usage(based, result.usage.prompt_tokens)
        meta.append(result)
        for p, row in zip(positions, result.vectors, strict=True):
            rows[p] = row

    def _split(self, positions: list[int], exc: StatusError, failures: dict) -> list[list[int]]:
        """After a refusal caused by inputs: the groups of positions to send again."""
        named = input_position(exc)
        if named is not None and 0 <= named < len(positions) and len(positions) > 1:
            failures[positions[named]] = exc
            return [positions[:named] + positions[named + 1 :]]
        if len(positions) == 1:
            failures[positions[0]] = exc
            return []
        self.stats.splits += 1
        half = len(positions) // 2
        return [positions[:half], positions[half:]]

    def _assemble(self, n, rows, failures, meta, opts) -> EmbeddingsResult:
        self.stats.inputs_embedded += len(rows)
        self.stats.inputs_failed += len(failures)
        if rows:
            width = next(iter(rows.values())).shape[0]
        else:
            width = codec.wire_width(opts.encoding, opts.dimensions) if opts.dimensions else 0
        vectors = np.zeros((n, width), dtype=codec.natural_dtype(opts.encoding))
        for p, row in rows.items():
            vectors[p] = row
        usage = Usage()
        for m in meta:
            usage = usage + m.usage
        bits = opts.encoding in codec.BIT_ENCODINGS
        return EmbeddingsResult(
            vectors=vectors,
            encoding_format=opts.encoding,
            dimensions=width * 8 if bits else width,
            model=meta[0].model if meta else "",
            ids=tuple(i for m in meta for i in m.ids),
            usage=usage,
            failures=dict(sorted(failures.items())),
        )

    # ---- one request, with retries ------------------------------------------------------

    def _body(self, items: list, opts: _Options) -> dict:
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

    async def _request(self, items: list, tokens: int, opts: _Options) -> EmbeddingsResult:
        policy = self.settings.retry
        body = self._body(items, opts)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            ticket = await self.throttle.acquire(tokens)
            error: EmbeddingError
            retry_after = None
            try:
                response = await self._send("POST", opts.route, body)
            except TransportError as exc:
                await self.throttle.release(ticket)
                error = exc
            else:
                if response.status_code == 200:
                    try:
                        result = parse_embeddings(
                            response.content,
                            n_inputs=len(items),
                            encoding=opts.encoding,
                            dimensions=opts.dimensions,
                        )
                    except TransportError as exc:
                        await self.throttle.release(ticket)
                        error = exc
                    else:
                        await self.throttle.release(ticket, ok=True)
                        self.stats.prompt_tokens += result.usage.prompt_tokens
                        self.stats.prompt_patches += result.usage.prompt_patches
                        return result
                else:
                    error = self._error(response)
                    retry_after = error.retry_after
                    throttled = response.status_code == 429
                    self.stats.throttled += throttled
                    self.stats.length_refusals += length_refusal(error) is not None
                    await self.throttle.release(
                        ticket, throttled=throttled, retry_after=retry_after
                    )
            if not self._retryable(error):
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

    def _retryable(self, error: EmbeddingError) -> bool:
        if isinstance(error, TransportError):
            return True
        return isinstance(error, StatusError) and error.status in self.settings.retry.retry_statuses

    def _error(self, response: httpx.Response) -> StatusError:
        retry_after = retry_after_seconds(response.headers, self._wallclock())
        return parse_error(
            response.status_code, response.headers, response.content, retry_after=retry_after
        )

    async def _send(self, method: str, route: str, body: dict | None) -> httpx.Response:
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
                transport=self._transport,
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


def pack_requests(weights: Sequence[int], max_count: int, max_weight: int | None) -> list:
    """Consecutive positions grouped into requests of at most ``max_count`` inputs and,
    when given, ``max_weight`` total weight (estimated tokens, or bytes for images).
    An input heavier than ``max_weight`` goes alone: the endpoint decides about it."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, w in enumerate(weights):
        full = len(current) >= max_count
        if current and (full or (max_weight is not None and total + w > max_weight)):
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += w
    if current:
        groups.append(current)
    return groups


def _screen(budget: TokenBudget, positions: list[int], items: list, failures: dict) -> list[int]:
    """The positions whose texts the budget says fit; the others fail unsent."""
    if budget.usable() is None:
        return positions
    keep = []
    for p in positions:
        if budget.fits(items[p]):
            keep.append(p)
        else:
            failures[p] = PayloadTooLargeError(
                f"not sent: about {budget.cost(items[p])} tokens by this client's count, "
                f"more than the {budget.usable()} it sends the model (limit {budget.limit})",
                status=413,
                code="input_too_long",
                param="input",
            )
    return keep


def _learn_refusal(budget: TokenBudget, exc: StatusError, positions: list[int], items) -> None:
    """Teach the budget what a refusal of one input as too long says."""
    refusal = length_refusal(exc)
    if refusal is None:
        return
    named = input_position(exc)
    if named is None and len(positions) == 1:
        named = 0
    if named is not None and 0 <= named < len(positions):
        budget.observe_refusal(items[positions[named]], refusal)
    elif refusal.limit is not None:
        budget.observe_refusal("", LengthRefusal(count=None, limit=refusal.limit))


def _caused_by_inputs(exc: StatusError) -> bool:
    """Whether a refusal is about the inputs sent (so splitting the batch can help)."""
    if isinstance(exc, PayloadTooLargeError | ContentFilterError):
        return True
    param = exc.param or ""
    return isinstance(exc, BadRequestError | UnprocessableError) and param.startswith("input")


def _input_may_fail_alone(exc: Exception) -> bool:
    """Whether ``exc`` can be recorded against inputs rather than stopping the run."""
    return isinstance(exc, TransportError | DeadlineExceeded | RateLimitError) or (
        isinstance(exc, StatusError) and exc.status >= 500
    )
