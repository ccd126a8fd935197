"""EmbedTexts and EmbedImages: chunks and images to vectors through the embeddings client.

Elements are batched (``BatchElements``, fixed size: ``max_concurrency x max_inputs``,
one wave of requests) and each batch goes to the client, which packs it into requests
by count and estimated tokens or bytes, keeps ``max_concurrency`` of them in flight,
retries, and isolates inputs the endpoint refuses. Each input comes out either as an
``Embedded`` or as a ``Failure`` on the failures output; none twice, none missing.

One client serves every DoFn instance in a worker process (``apache_beam.utils.shared``),
so its adaptive throttle sees all the process's traffic. It is created in ``setup``;
the settings that reach the worker carry no secret (an ``EnvApiKey`` carries only the
variable's name), and a literal key is refused when the pipeline is built.
"""

from __future__ import annotations

import collections
import pickle
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.util import BatchElements
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from inference.client import ClientSettings, ClientStats, EmbeddingsClient, ImageInput
from inference.client.timing import timed_transport
from inference.errors import ConfigError
from transforms import progress
from transforms.elements import NAMESPACE, Chunk, Document, Embedded, Failure, ImageItem
from transforms.read import FAILURES, Outputs

__all__ = ["EmbedImages", "EmbedTexts"]

_MAX_PENDING = 2  # batches submitted and not yet emitted, a DoFn instance
_COUNTED = ("requests", "retries", "throttled", "splits", "prompt_tokens", "prompt_patches")


class _ClientHandle:
    """A worker process's client and what its counters were at the last report."""

    def __init__(self, settings: ClientSettings) -> None:
        # Each request's latency goes to the progress channel (the run report's histogram).
        self.client = EmbeddingsClient(
            settings, transport=timed_transport(settings, progress.latency)
        )
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


def _check_picklable(settings: ClientSettings) -> ClientSettings:
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


class _EmbedFn(beam.DoFn):
    def __init__(self, settings: ClientSettings, modality: str) -> None:
        self._settings = _check_picklable(settings)
        self._modality = modality
        self._shared = shared.Shared()
        self._handle: _ClientHandle | None = None
        self._counters = {n: progress.counter(n) for n in _COUNTED}
        self._embedded = progress.counter("inputs_embedded")
        self._failed = progress.counter("inputs_failed")
        self._latency = Metrics.distribution(NAMESPACE, "batch_latency_ms")

    def setup(self) -> None:
        settings = self._settings
        self._handle = self._shared.acquire(lambda: _ClientHandle(settings))
        progress.watch("in_flight", self._handle.in_flight)

    def teardown(self) -> None:
        self._handle = None  # the last reference gone, the client closes itself

    def start_bundle(self) -> None:
        self._pending: collections.deque = collections.deque()

    def process(
        self, batch: list, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> Iterator:
        """Submit the batch and return to Beam at once; emit batches as they finish.

        At most ``_MAX_PENDING`` batches are outstanding, so the client always has the
        next batch's requests queued while this one's are in flight: no idle gap between
        batches while Beam hands over outputs and gathers inputs.
        """
        if not batch:  # BatchElements can emit an empty batch; nothing to do
            return
        assert self._handle is not None
        client = self._handle.client
        if self._modality == "image":
            inputs = [ImageInput(image=item.data, text=item.text) for item in batch]
            future = client.submit_images(inputs, errors="collect")
        else:
            future = client.submit_texts([item.text for item in batch], errors="collect")
        self._pending.append((batch, future, time.monotonic(), timestamp, window))
        while self._pending and (len(self._pending) > _MAX_PENDING or self._pending[0][1].done()):
            yield from self._emit(*self._pending.popleft())

    def finish_bundle(self) -> Iterator:
        while self._pending:
            yield from self._emit(*self._pending.popleft())

    def _emit(self, batch, future, started, timestamp, window) -> Iterator:
        result = future.result()  # raises what no input can fix (401, 404, a bad parameter)
        self._latency.update(int((time.monotonic() - started) * 1000))
        assert self._handle is not None
        for name, delta in self._handle.deltas().items():
            if delta:
                self._counters[name].inc(delta)
        self._failed.inc(len(result.failures))
        self._embedded.inc(len(batch) - len(result.failures))
        for position, item in enumerate(batch):
            error = result.failures.get(position)
            if error is not None:
                value = WindowedValue(_embed_failure(item, error), timestamp, (window,))
                yield beam.pvalue.TaggedOutput(FAILURES, value)
            else:
                embedded = embedded_from(item, result.vectors[position], self._modality)
                yield WindowedValue(embedded, timestamp, (window,))

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


def _source_id(item: Chunk | ImageItem | Document) -> str:
    if isinstance(item, Chunk):
        return f"{item.document_id}#{item.chunk_index}"
    return item.document_id


def _embed_failure(item, error: Exception) -> Failure:
    return Failure.of(error, source_id=_source_id(item), uri=item.uri, stage="embed")


def embedded_from(item, vector, modality: str) -> Embedded:
    """The ``Embedded`` element for a chunk, document or image and its vector."""
    if isinstance(item, Chunk):
        return Embedded(
            document_id=item.document_id,
            chunk_index=item.chunk_index,
            uri=item.uri,
            modality="text",
            text=item.text,
            start=item.start,
            end=item.end,
            content_hash=item.content_hash,
            vector=vector,
            metadata=item.metadata,
        )
    if isinstance(item, Document):
        return Embedded(
            document_id=item.document_id,
            chunk_index=0,
            uri=item.uri,
            modality="text",
            text=item.text,
            start=0,
            end=len(item.text),
            content_hash=item.content_hash,
            vector=vector,
            metadata=item.metadata,
        )
    return Embedded(
        document_id=item.document_id,
        chunk_index=0,
        uri=item.uri,
        modality=modality,
        text=item.text,
        start=None,
        end=None,
        content_hash=item.content_hash,
        vector=vector,
        metadata=item.metadata,
    )


class _Embed(beam.PTransform):
    _modality = "text"

    def __init__(
        self,
        settings: ClientSettings,
        *,
        input_type: str | None = "document",
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if input_type is not None:
            settings = replace(settings, input_type=input_type)
        self._settings = _check_picklable(settings)
        per_request = settings.max_images if self._modality == "image" else settings.max_inputs
        self._batch_size = batch_size or settings.max_concurrency * per_request
        if self._batch_size < 1:
            raise ConfigError("batch_size", batch_size, "must be at least 1")

    def expand(self, items: beam.PCollection) -> Outputs:
        out = (
            items
            | "Batch"
            >> BatchElements(min_batch_size=self._batch_size, max_batch_size=self._batch_size)
            | "Embed"
            >> beam.ParDo(_EmbedFn(self._settings, self._modality)).with_outputs(
                FAILURES, main="embedded"
            )
        )
        return Outputs(out.embedded, out.failures)


class EmbedTexts(_Embed):
    """Embed ``Chunk`` (or ``Document``) elements through the endpoint in ``settings``.

    ``input_type`` defaults to ``document`` (the corpus side; None keeps the settings').
    Batches of ``batch_size`` (default one wave: max_concurrency x max_inputs) go to a
    per-process client that keeps many requests in flight. Returns
    ``Outputs(main=Embedded, failures)``; retries and bisection happen before an input
    is declared failed. Metrics in namespace ``corpusbeam``: requests, retries,
    throttled (429s), splits, prompt_tokens, inputs_embedded, inputs_failed,
    batch_latency_ms.
    """


class EmbedImages(_Embed):
    """Embed ``ImageItem`` elements (with their captions as text, when they have one)
    through the image route; otherwise as ``EmbedTexts``. ``settings.max_images`` is the
    images a request (1 for models such as Cohere v3) and ``max_request_bytes`` bounds a
    request's size."""

    _modality = "image"
