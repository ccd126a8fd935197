"""What runs on the workers to embed: ``EmbedFn``, batches to vectors through a shared client.

Each batch goes to the client, which packs it into requests by count and estimated tokens
or bytes, keeps ``max_concurrency`` of them in flight, retries, and isolates inputs the
endpoint refuses. Each input comes out either as an ``Embedded`` or as a ``Failure`` on the
failures output (``transforms.embed_outputs``); none twice, none missing.

What the index stores may differ from what is asked for (``corpusbeam.inference.derive``): a binary
index asks for ``float`` once and derives the packed bits and int8 rescoring vectors
here, carried on each ``Embedded`` (``vector``, ``rescore``).

Inputs too long for the model (``corpusbeam.inference.token_budget.TokenBudget``): a chunk the
budget says cannot fit is cut again before it is sent, and a chunk the endpoint refuses as too
long (413 ``input_too_long`` and the other shapes ``length_refusal`` reads) teaches the
budget the limit and ratio, is cut again on the chunker's boundaries
(``transforms.recut``) and its pieces embedded as chunks of the same document. Only a
chunk where a single character cannot fit becomes a failure.

One client and one budget serve every DoFn instance in a worker process
(``apache_beam.utils.shared``), so its adaptive throttle sees all the process's traffic.
The client is created in ``setup``; the settings that reach the worker carry no secret
(an ``EnvApiKey`` carries only the variable's name), and a literal key is refused when
the pipeline is built (``check_picklable``). The PTransforms that batch the elements and
apply this DoFn are ``transforms.embed``.
"""

from __future__ import annotations

import collections
import pickle
import threading
import time
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import ClientSettings, ClientStats, EmbeddingsClient, ImageInput
from corpusbeam.inference.client.timing import timed_transport
from corpusbeam.inference.derive import EncodingPlan, derive_vectors
from corpusbeam.inference.token_budget import TokenBudget, length_refusal
from transforms import counters as progress
from transforms.checkpoint_writer import persist
from transforms.elements import NAMESPACE, Chunk, Embedded
from transforms.embed_outputs import embed_failure, embedded_from
from transforms.read import FAILURES
from transforms.recut import TooLongError, recut
from transforms.token_cap import TokenCap, estimate_batch, ledger

__all__ = ["EmbedFn", "check_picklable"]

_MAX_PENDING = 2  # batches submitted and not yet emitted, a DoFn instance
_COUNTED = (
    "requests",
    "retries",
    "throttled",
    "splits",
    "prompt_tokens",
    "prompt_patches",
    "length_refusals",
)
_MAX_RECUTS = 8  # rounds of cutting one chunk again before it is declared failed


class _ClientHandle:
    """A worker process's client and what its counters were at the last report."""

    def __init__(self, settings: ClientSettings, budget: TokenBudget | None) -> None:
        # Each request's latency goes to the progress channel (the run report's histogram).
        self.client = EmbeddingsClient(
            settings, budget=budget, transport=timed_transport(settings, progress.latency)
        )
        self.budget = budget
        self.lock = threading.Lock()
        self.reported = ClientStats()

    def in_flight(self) -> int:
        """Requests this process's client has in flight (its throttle's count)."""
        throttle = getattr(getattr(self.client, "_client", None), "throttle", None)
        return int(getattr(throttle, "in_flight", 0))

    def deltas(self) -> dict[str, int]:
        with self.lock:
            now = self.client.stats
            out = {name: getattr(now, name) - getattr(self.reported, name) for name in _COUNTED}
            for name in _COUNTED:
                setattr(self.reported, name, getattr(now, name))
            return out


def check_picklable(settings: ClientSettings) -> ClientSettings:
    """``settings``, once they are known to pickle (no literal secret to ship to workers)."""
    try:
        pickle.dumps(settings)
    except TypeError as exc:
        raise ConfigError(
            "settings.credential",
            type(settings.credential).__name__,
            f"cannot be shipped to workers ({exc}); use EnvApiKey('VAR') so the key is read "
            "on each worker and never pickled into the pipeline",
        ) from None
    return settings


class EmbedFn(beam.DoFn):
    def __init__(
        self,
        settings: ClientSettings,
        modality: str,
        encodings: EncodingPlan,
        budget: TokenBudget | None = None,
        *,
        checkpoints: str | None = None,
        cap: TokenCap | None = None,
    ) -> None:
        self._settings = check_picklable(settings)
        self._checkpoints = checkpoints  # where each embedded batch is persisted
        self._cap = cap
        self._over = progress.counter("inputs_over_budget")
        self._estimated = progress.counter("tokens_estimated")
        self._modality = modality
        self._encodings = encodings
        self._budget = budget if modality == "text" else None
        self._shared = shared.Shared()
        self._handle: _ClientHandle | None = None
        self._counters = {n: progress.counter(n) for n in _COUNTED}
        self._embedded = progress.counter("inputs_embedded")
        self._failed = progress.counter("inputs_failed")
        self._cut_before = progress.counter("chunks_cut_before_sending")
        self._cut_after = progress.counter("chunks_cut_after_refusal")
        self._latency = Metrics.distribution(NAMESPACE, "batch_latency_ms")
        self._limit = Metrics.distribution(NAMESPACE, "token_limit")
        self._ratio = Metrics.distribution(NAMESPACE, "token_ratio_milli")

    def setup(self) -> None:
        settings, budget = self._settings, self._budget
        self._handle = self._shared.acquire(lambda: _ClientHandle(settings, budget))
        self._ledger = ledger(self._cap) if self._cap is not None else None
        progress.watch("in_flight", self._handle.in_flight)

    def teardown(self) -> None:
        self._handle = None  # the last reference gone, the client closes itself

    def start_bundle(self) -> None:
        self._pending: collections.deque = collections.deque()
        self._writes: list = []  # checkpoint writes under way

    def process(
        self, batch: list, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> Iterator:
        """Submit the batch and return to Beam at once; emit batches as they finish.

        At most ``_MAX_PENDING`` batches are outstanding, so the client always has the
        next batch's requests queued while this one's are in flight: no idle gap between
        batches while Beam hands over outputs and gathers inputs. With checkpoints a batch
        is submitted a request's worth at a time (``_slices``), each persisted when done.
        """
        if not batch:  # BatchElements can emit an empty batch; nothing to do
            return
        assert self._handle is not None
        if self._modality == "text":
            batch, origins = yield from self._fit(batch, timestamp, window)
        else:
            origins = list(batch)
        parts = self._slices(batch, origins)
        for part, part_origins in parts:
            estimate = self._admit(part, part_origins)
            if estimate is None:  # over the run's token cap: left for the next run
                continue
            future = self._submit(part)
            pending = (part, part_origins, future, time.monotonic(), timestamp, window, estimate)
            self._pending.append(pending)
        most = _MAX_PENDING * len(parts)
        while self._pending and (len(self._pending) > most or self._pending[0][2].done()):
            yield from self._emit(*self._pending.popleft())

    def _slices(self, batch: list, origins: list) -> list[tuple[list, list]]:
        """The batch as it is submitted: whole; with checkpoints, a request's worth at a
        time, so each request's vectors are persisted as soon as it is answered."""
        if self._checkpoints is None:
            return [(batch, origins)]
        s = self._settings
        size = max(1, s.max_images if self._modality == "image" else s.max_inputs)
        return [(batch[i : i + size], origins[i : i + size]) for i in range(0, len(batch), size)]

    def _submit(self, items: list):
        client = self._handle.client
        if self._modality == "image":
            inputs = [ImageInput(image=item.data, text=item.text) for item in items]
            future = client.submit_images(inputs, errors="collect")
        else:
            future = client.submit_texts([item.text for item in items], errors="collect")
        if self._checkpoints is not None:  # persisted the moment it is answered
            future.add_done_callback(lambda f: self._persist(items, f))
        return future

    def _persist(self, items: list, future) -> None:
        """On the client's thread: an answered request's vectors to the writer."""
        write = persist(self._checkpoints, items, future, self._encodings, self._modality)
        if write is not None:
            self._writes.append(write)

    def _admit(self, batch: list, origins: list) -> int | None:
        """The batch's estimated tokens, or None when the run's cap leaves no room."""
        if self._ledger is None or not batch:
            return 0
        estimate = estimate_batch(batch, self._handle.budget if self._handle else None)
        if not self._ledger.admit(estimate):
            self._over.inc(len({id(o) for o in origins}))
            return None
        self._estimated.inc(estimate)
        return estimate

    def _fit(self, batch: list, timestamp, window):
        """(items to send, the chunk each came from): chunks the budget says are too
        long are cut again before sending."""
        budget = self._handle.budget if self._handle else None
        if budget is None or budget.usable() is None:
            return list(batch), list(batch)
        items, origins = [], []
        for item in batch:
            if not isinstance(item, Chunk) or budget.fits(item.text):
                items.append(item)
                origins.append(item)
                continue
            try:
                pieces = recut(item, budget)
            except TooLongError as exc:
                value = WindowedValue(embed_failure(item, exc), timestamp, (window,))
                yield beam.pvalue.TaggedOutput(FAILURES, value)
                self._failed.inc()
                continue
            self._cut_before.inc()
            items.extend(pieces)
            origins.extend([item] * len(pieces))
        return items, origins

    def finish_bundle(self) -> Iterator:
        while self._pending:
            yield from self._emit(*self._pending.popleft())
        for write in self._writes:
            write.result()  # a checkpoint that cannot be written fails the bundle
        self._writes = []

    def _report(self) -> None:
        assert self._handle is not None
        deltas = self._handle.deltas()
        for name, delta in deltas.items():
            if delta:
                self._counters[name].inc(delta)
        if self._ledger is not None:
            self._ledger.settle(0, deltas["prompt_tokens"])

    def _emit(self, *pending) -> Iterator:
        """A finished batch's outputs; then its estimate released from the token cap (its
        vectors were persisted when it was answered: ``_persist``)."""
        yield from self._outputs(*pending[:-1])
        if self._ledger is not None:
            self._ledger.settle(pending[-1], 0)

    def _outputs(self, batch, origins, future, started, timestamp, window) -> Iterator:
        result = future.result()  # raises what no input can fix (401, 404, a bad parameter)
        self._latency.update(int((time.monotonic() - started) * 1000))
        self._report()
        budget = self._handle.budget if self._handle else None
        refused: dict[int, Chunk] = {}  # origin chunks to cut again, by id()
        if budget is not None and budget.limit is not None:
            self._limit.update(budget.limit)
            self._ratio.update(round(budget.ratio * 1000))
        if budget is not None:
            for position, error in result.failures.items():
                refusal = length_refusal(error)
                if refusal is not None and isinstance(origins[position], Chunk):
                    budget.observe_refusal(batch[position].text, refusal)
                    refused[id(origins[position])] = origins[position]
        vectors, rescore = derive_vectors(
            result.vectors, self._encodings.index, self._encodings.wire
        )
        for position, item in enumerate(batch):
            if id(origins[position]) in refused:
                continue
            error = result.failures.get(position)
            if error is not None:
                self._failed.inc()
                value = WindowedValue(embed_failure(item, error), timestamp, (window,))
                yield beam.pvalue.TaggedOutput(FAILURES, value)
                continue
            self._embedded.inc()
            row = None if rescore is None else rescore[position]
            embedded = embedded_from(item, vectors[position], self._modality, rescore=row)
            yield WindowedValue(embedded, timestamp, (window,))
        if refused:
            for out in self._embed_again(list(refused.values()), budget):
                if isinstance(out, Embedded):
                    yield WindowedValue(out, timestamp, (window,))
                else:
                    yield beam.pvalue.TaggedOutput(
                        FAILURES, WindowedValue(out, timestamp, (window,))
                    )

    def _embed_again(self, origins: list[Chunk], budget: TokenBudget) -> Iterator:
        """``origins`` were refused as too long (whole or a piece of them): cut each again
        for what the budget now knows and embed all their pieces together, round after
        round, until every piece fits; yields ``Embedded`` and ``Failure`` elements."""
        assert self._handle is not None
        self._cut_after.inc(len(origins))
        targets: dict[int, int | None] = {id(o): None for o in origins}
        pending = list(origins)
        for _ in range(_MAX_RECUTS):
            flat: list[tuple[Chunk, Chunk]] = []  # (origin, piece)
            for origin in pending:
                try:
                    pieces = recut(origin, budget, target=targets[id(origin)])
                except TooLongError as exc:
                    self._failed.inc()
                    yield embed_failure(origin, exc)
                    continue
                flat.extend((origin, piece) for piece in pieces)
            if not flat:
                return
            texts = [piece.text for _, piece in flat]
            result = self._handle.client.embed_texts(texts, errors="collect")
            self._report()
            before = budget.usable()
            worst: dict[int, int] = {}
            for position, error in result.failures.items():
                refusal = length_refusal(error)
                if refusal is not None:
                    origin, piece = flat[position]
                    budget.observe_refusal(piece.text, refusal)
                    cost = budget.cost(piece.text)
                    worst[id(origin)] = max(worst.get(id(origin), 0), cost)
            vectors, rescore = derive_vectors(
                result.vectors, self._encodings.index, self._encodings.wire
            )
            pending = []
            for position, (origin, piece) in enumerate(flat):
                if id(origin) in worst:
                    if not pending or pending[-1] is not origin:
                        pending.append(origin)
                    continue
                error = result.failures.get(position)
                if error is not None:
                    self._failed.inc()
                    yield embed_failure(piece, error)
                    continue
                self._embedded.inc()
                row = None if rescore is None else rescore[position]
                yield embedded_from(piece, vectors[position], "text", rescore=row)
            if not pending:
                return
            if budget.usable() == before:  # nothing learnt: cut the refused ones smaller
                for origin in pending:
                    current = targets[id(origin)] or worst[id(origin)]
                    targets[id(origin)] = max(1, min(current, worst[id(origin)]) // 2)
        for origin in pending:
            self._failed.inc()
            yield embed_failure(
                origin,
                TooLongError(
                    "input",
                    f"{origin.document_id}#{origin.chunk_index}",
                    f"still refused as too long after cutting it {_MAX_RECUTS} times",
                ),
            )

    def display_data(self) -> dict:
        s = self._settings
        return {
            "endpoint": s.endpoint,
            "api_version": s.api_version,
            "model": s.model or "",
            "deployment": s.deployment or "",
            "encoding_format": s.encoding_format,
            "dimensions": s.dimensions or 0,
            "input_type": s.input_type or "",
            "max_concurrency": s.max_concurrency,
            "credential": type(s.credential).__name__ if s.credential else "none",
        }
