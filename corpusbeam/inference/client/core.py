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

One request and its retries are ``transport.Transport``'s; packing inputs into requests
and reading what a refusal says about them is ``packing``'s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx
import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from corpusbeam.inference.client.images import ImageInput
from corpusbeam.inference.client.packing import (
    caused_by_inputs,
    input_may_fail_alone,
    learn_refusal,
    pack_requests,
    screen,
)
from corpusbeam.inference.client.responses import EmbeddingsResult, Usage, input_position
from corpusbeam.inference.client.settings import ClientSettings
from corpusbeam.inference.client.throttle import Throttle
from corpusbeam.inference.client.transport import ClientStats, RequestOptions, Transport
from corpusbeam.inference.errors import DeadlineExceeded, StatusError, TransportError
from corpusbeam.inference.protocol import IMAGE_ROUTE, TEXT_ROUTE
from corpusbeam.inference.token_budget import TokenBudget, estimate_tokens

__all__ = ["AsyncEmbeddingsClient", "ErrorMode"]

ErrorMode = Literal["raise", "collect"]


@dataclass(frozen=True)
class _Batch:
    """One embed call's inputs, as each of its requests sees them."""

    items: list
    costs: list[int]  # estimated tokens per input, for the throttle
    opts: RequestOptions
    errors: ErrorMode


@dataclass
class _Collected:
    """What the requests of one embed call brought back, by input position."""

    rows: dict[int, np.ndarray] = field(default_factory=dict)
    failures: dict[int, Exception] = field(default_factory=dict)
    meta: list[EmbeddingsResult] = field(default_factory=list)


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
        self._transport = Transport(
            settings,
            clock=clock,
            sleep=sleep,
            wallclock=wallclock,
            rng=random.Random(seed),
            http_transport=transport,
        )

    @property
    def stats(self) -> ClientStats:
        return self._transport.stats

    @property
    def throttle(self) -> Throttle:
        return self._transport.throttle

    def __repr__(self) -> str:
        s = self.settings
        return f"AsyncEmbeddingsClient(endpoint={s.endpoint!r}, credential={s.credential!r})"

    async def __aenter__(self) -> AsyncEmbeddingsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

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
        batch = _Batch(list(texts), costs, opts, errors)
        return await self._embed(batch, s.max_inputs, s.max_request_tokens, costs)

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
        batch = _Batch(wire, costs, opts, errors)
        return await self._embed(batch, s.max_images, s.max_request_bytes, sizes)

    async def info(self) -> dict:
        """The endpoint's ``GET /info``: model name, type and provider."""
        response = await self._transport.send("GET", "/info", None)
        if response.status_code != 200:
            raise self._transport.error(response)
        return response.json()

    # ---- batching and splitting -------------------------------------------------------

    def _options(self, route, input_type, dimensions, encoding_format) -> RequestOptions:
        s = self.settings
        enc = codec.check_encoding(encoding_format or s.encoding_format)
        dims = dimensions if dimensions is not None else s.dimensions
        if dims is not None:
            codec.wire_width(enc, dims)
        return RequestOptions(route, enc, dims, input_type or s.input_type)

    async def _embed(
        self, batch: _Batch, max_count: int, max_weight: int | None, weights: list[int]
    ) -> EmbeddingsResult:
        out = _Collected()
        chunks = pack_requests(weights, max_count, max_weight)
        await asyncio.gather(*(self._embed_chunk(c, batch, out) for c in chunks))
        if out.failures and batch.errors == "raise":
            first = min(out.failures)
            error = out.failures[first]
            error.add_note(f"input {first} of the batch could not be embedded")
            raise error
        return self._assemble(len(batch.items), out, batch.opts)

    async def _embed_chunk(self, positions: list[int], batch: _Batch, out: _Collected) -> None:
        items = batch.items
        budget = self.budget if batch.opts.route == TEXT_ROUTE else None
        if budget is not None:
            positions = screen(budget, positions, items, out.failures)
            if not positions:
                return
        try:
            result = await self._transport.request(
                [items[p] for p in positions], sum(batch.costs[p] for p in positions), batch.opts
            )
        except (StatusError, TransportError, DeadlineExceeded) as exc:
            if budget is not None and isinstance(exc, StatusError):
                learn_refusal(budget, exc, positions, items)
            if isinstance(exc, StatusError) and caused_by_inputs(exc):
                parts = self._split(positions, exc, out.failures)
                await asyncio.gather(*(self._embed_chunk(p, batch, out) for p in parts))
                return
            if batch.errors == "raise" or not input_may_fail_alone(exc):
                raise
            for p in positions:
                out.failures[p] = exc
            return
        if budget is not None:
            based = sum(budget.base(items[p]) for p in positions)
            budget.observe_usage(based, result.usage.prompt_tokens)
        out.meta.append(result)
        for p, row in zip(positions, result.vectors, strict=True):
            out.rows[p] = row

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

    def _assemble(self, n: int, out: _Collected, opts: RequestOptions) -> EmbeddingsResult:
        rows, failures, meta = out.rows, out.failures, out.meta
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
