"""ChunkDocuments: documents to chunks under a token budget, with character offsets."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from corpusbeam.inference.token_budget import TokenBudget, estimate_tokens
from transforms import counters as progress
from transforms.elements import Chunk, Document, Failure, content_hash
from transforms.read import FAILURES, Outputs
from transforms.recut import FitEstimate
from transforms.text_split import TokenEstimator, split_text

__all__ = ["ChunkDocuments"]


class _ChunkFn(beam.DoFn):
    def __init__(self, max_tokens: int, overlap_tokens: int | None, estimate: TokenEstimator):
        self._max_tokens = max_tokens
        self._overlap = overlap_tokens
        self._estimate = estimate
        self._chunks = progress.counter("chunks")

    def process(self, doc: Document) -> Iterator:
        try:
            spans = split_text(
                doc.text,
                max_tokens=self._max_tokens,
                overlap_tokens=self._overlap,
                estimate=self._estimate,
            )
        except Exception as exc:
            yield beam.pvalue.TaggedOutput(
                FAILURES, Failure.of(exc, source_id=doc.document_id, uri=doc.uri, stage="chunk")
            )
            return
        for index, (start, end) in enumerate(spans):
            text = doc.text[start:end]
            self._chunks.inc()
            yield Chunk(
                document_id=doc.document_id,
                chunk_index=index,
                uri=doc.uri,
                text=text,
                start=start,
                end=end,
                content_hash=content_hash(text),
                metadata=doc.metadata,
            )

    def display_data(self) -> dict:
        return {"max_tokens": self._max_tokens, "overlap_tokens": self._overlap or 0}


class ChunkDocuments(beam.PTransform):
    """Split each document into chunks of at most ``max_tokens`` estimated tokens, cut at
    paragraph, sentence or word boundaries, overlapping by ``overlap_tokens`` (default an
    eighth of the budget). ``estimate`` counts tokens (default: UTF-8 bytes / 4). With a
    ``budget`` (the model's ``TokenBudget``), chunks also fit the model's input limit by
    its cost (``transforms.recut.FitEstimate``). Returns ``Outputs(main=Chunk, failures)``."""

    def __init__(
        self,
        *,
        max_tokens: int = 512,
        overlap_tokens: int | None = None,
        estimate: TokenEstimator = estimate_tokens,
        budget: TokenBudget | None = None,
    ) -> None:
        super().__init__()
        if budget is not None and budget.limit is not None:
            estimate = FitEstimate(budget, max_tokens)
        split_text("check settings", max_tokens=max_tokens, overlap_tokens=overlap_tokens)
        self._fn = _ChunkFn(max_tokens, overlap_tokens, estimate)

    def expand(self, documents: beam.PCollection) -> Outputs:
        out = documents | "Chunk" >> beam.ParDo(self._fn).with_outputs(FAILURES, main="chunks")
        return Outputs(out.chunks, out.failures)
