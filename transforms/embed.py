"""EmbedTexts and EmbedImages: chunks and images to vectors through the embeddings client.

Elements are batched (``BatchElements``, fixed size: ``max_concurrency x max_inputs``,
one wave of requests) and each batch goes to the client, which packs it into requests
by count and estimated tokens or bytes, keeps ``max_concurrency`` of them in flight,
retries, and isolates inputs the endpoint refuses. Each input comes out either as an
``Embedded`` or as a ``Failure`` on the failures output; none twice, none missing.

This module is what a pipeline applies: the batching, the ParDo and its two outputs. What
runs on the workers (the shared client, batches in flight, derived vectors, chunks cut
again when too long) is ``transforms.embed_worker``; the elements it yields are built in
``transforms.embed_outputs``.
"""

from __future__ import annotations

from dataclasses import replace

import apache_beam as beam
from apache_beam.transforms.util import BatchElements

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import ClientSettings
from corpusbeam.inference.derive import EncodingPlan
from corpusbeam.inference.token_budget import TokenBudget
from transforms.embed_worker import EmbedFn, check_picklable
from transforms.read import FAILURES, Outputs
from transforms.token_cap import TokenCap

__all__ = ["EmbedImages", "EmbedTexts"]


class _Embed(beam.PTransform):
    _modality = "text"

    def __init__(
        self,
        settings: ClientSettings,
        *,
        input_type: str | None = "document",
        batch_size: int | None = None,
        encodings: EncodingPlan | None = None,
        budget: TokenBudget | None = None,
        checkpoints: str | None = None,
        cap: TokenCap | None = None,
    ) -> None:
        super().__init__()
        self._checkpoints, self._cap = checkpoints, cap
        if input_type is not None:
            settings = replace(settings, input_type=input_type)
        self._settings = check_picklable(settings)
        self._encodings = encodings or EncodingPlan.of(
            settings.encoding_format, settings.encoding_format
        )
        if self._encodings.wire != settings.encoding_format:
            raise ConfigError(
                "encodings",
                self._encodings,
                f"asks for {self._encodings.wire} but the settings ask the endpoint for "
                f"{settings.encoding_format}",
            )
        self._budget = budget
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
            >> beam.ParDo(
                EmbedFn(
                    self._settings,
                    self._modality,
                    self._encodings,
                    self._budget,
                    checkpoints=self._checkpoints,
                    cap=self._cap,
                )
            ).with_outputs(FAILURES, main="embedded")
        )
        return Outputs(out.embedded, out.failures)


class EmbedTexts(_Embed):
    """Embed ``Chunk`` (or ``Document``) elements through the endpoint in ``settings``.

    ``input_type`` defaults to ``document`` (the corpus side; None keeps the settings').
    Batches of ``batch_size`` (default one wave: max_concurrency x max_inputs) go to a
    per-process client that keeps many requests in flight. Returns
    ``Outputs(main=Embedded, failures)``; retries and bisection happen before an input
    is declared failed. ``encodings`` is the index's encoding and the wire's (default:
    the settings' wire encoding for both; see ``corpusbeam.inference.derive``);
    ``budget`` keeps chunks under the model's input limit, cutting them again before
    sending or after a refusal. ``checkpoints``: a folder where each embedded batch is
    persisted (``transforms.checkpoints``); ``cap``: the run's token cap, shared by every
    worker process (``transforms.token_cap``). Metrics in namespace
    ``corpusbeam``: requests, retries, throttled (429s), splits, prompt_tokens,
    length_refusals, chunks_cut_before_sending, chunks_cut_after_refusal,
    inputs_embedded, inputs_failed, inputs_over_budget, tokens_estimated, batch_latency_ms.
    """


class EmbedImages(_Embed):
    """Embed ``ImageItem`` elements (with their captions as text, when they have one)
    through the image route; otherwise as ``EmbedTexts``. ``settings.max_images`` is the
    images a request (1 for models such as Cohere v3) and ``max_request_bytes`` bounds a
    request's size."""

    _modality = "image"
