"""ReuseVectors: what a previous index version already embedded is not embedded again.

A chunk (or image) is reused when the previous version holds the same stable id (same
document id and chunk number) with the same content hash; its vector is read from the
previous version's ``vectors.parquet``. Everything else goes on to be embedded; ids the
previous version has and this corpus no longer does simply drop out (deleted
documents). One ``CoGroupByKey`` by id: nothing gathers on one worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np

from indexes.files import METADATA, VECTORS
from indexes.ids import chunk_id
from inference import codec
from transforms import progress
from transforms.elements import Chunk, ImageItem
from transforms.embed import embedded_from

__all__ = ["ReuseVectors"]

TO_EMBED = "to_embed"


def _key(item: Chunk | ImageItem) -> tuple[int, Chunk | ImageItem]:
    index = item.chunk_index if isinstance(item, Chunk) else 0
    return chunk_id(item.document_id, index), item


class _SplitFn(beam.DoFn):
    def __init__(self, encoding: str) -> None:
        self._dtype = codec.natural_dtype(encoding)
        self._reused = progress.counter("inputs_reused")
        self._deleted = progress.counter("chunks_deleted")

    def process(self, element) -> Iterator:
        _, groups = element
        new, hashes, vectors = groups["new"], groups["hash"], groups["vector"]
        if not new:
            self._deleted.inc()
            return
        old_hash = hashes[0] if hashes else None
        for item in new:
            if old_hash is not None and vectors and item.content_hash == old_hash:
                self._reused.inc()
                modality = "image" if isinstance(item, ImageItem) else "text"
                yield embedded_from(item, np.asarray(vectors[0], dtype=self._dtype), modality)
            else:
                yield beam.pvalue.TaggedOutput(TO_EMBED, item)


class ReuseVectors(beam.PTransform):
    """Split ``Chunk``/``ImageItem`` elements into ``Embedded`` ones reused from the index
    folder ``previous`` (a version folder written by corpusbeam, same encoding) and those
    still ``to_embed``. Returns ``(reused, to_embed)``."""

    def __init__(self, previous: str, *, encoding: str) -> None:
        super().__init__()
        self._previous = previous.rstrip("/")
        self._encoding = codec.check_encoding(encoding)

    def expand(self, items: beam.PCollection):
        p = items.pipeline
        hashes = (
            p
            | "OldMetadata"
            >> beam.io.ReadFromParquet(
                f"{self._previous}/{METADATA}", columns=["id", "content_hash"]
            )
            | "HashById" >> beam.Map(lambda r: (r["id"], r["content_hash"]))
        )
        vectors = (
            p
            | "OldVectors"
            >> beam.io.ReadFromParquet(f"{self._previous}/{VECTORS}", columns=["id", "vector"])
            | "VectorById" >> beam.Map(lambda r: (r["id"], r["vector"]))
        )
        new = items | "ById" >> beam.Map(_key)
        split = (
            {"new": new, "hash": hashes, "vector": vectors}
            | "Join" >> beam.CoGroupByKey()
            | "Split" >> beam.ParDo(_SplitFn(self._encoding)).with_outputs(TO_EMBED, main="reused")
        )
        return split.reused, split[TO_EMBED]
