"""ResumeFromCheckpoints: chunks a killed or capped run already embedded are not embedded again.

Each worker process loads the checkpoints' keys once (``transforms.checkpoints``:
24 bytes a row) and decides element by element, in the stage that reads and chunks: a
chunk (or image) whose id and content hash a checkpoint holds leaves as an ``Embedded``
with that checkpoint's vector; the rest go on ``to_embed``. To keep memory bounded the
matched elements wait in a buffer of at most ``FLUSH_ROWS`` and are then filled batch
file by batch file (each read once a flush, only one held at a time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from indexes.storage.ids import chunk_id
from transforms import counters as progress
from transforms.checkpoints import load_index, read_vectors
from transforms.elements import Chunk, ImageItem
from transforms.embed_outputs import embedded_from
from transforms.reuse import hash_digest

__all__ = ["FLUSH_ROWS", "ResumeFromCheckpoints"]

TO_EMBED = "to_embed"
FLUSH_ROWS = 2048  # matched elements a DoFn holds before it reads their vectors


class _ResumeFn(beam.DoFn):
    def __init__(self, location: str, run: str) -> None:
        self._location = location
        self._run = run
        self._resumed = progress.counter("inputs_resumed")

    def setup(self) -> None:
        self._index = load_index(self._location, self._run)

    def start_bundle(self) -> None:
        self._held: dict[int, list[tuple[int, Chunk | ImageItem]]] = {}
        self._count = 0

    def process(self, item: Chunk | ImageItem) -> Iterator:
        if len(self._index):
            index = item.chunk_index if isinstance(item, Chunk) else 0
            found = self._index.find(
                chunk_id(item.document_id, index), hash_digest(item.content_hash)
            )
            if found is not None:
                self._held.setdefault(found[0], []).append((found[1], item))
                self._count += 1
                if self._count >= FLUSH_ROWS:
                    yield from self._flush()
                return
        yield beam.pvalue.TaggedOutput(TO_EMBED, item)

    def finish_bundle(self) -> Iterator:
        for e in self._flush():
            yield GlobalWindows.windowed_value(e)

    def _flush(self) -> Iterator:
        held, self._held, self._count = self._held, {}, 0
        for batch, items in sorted(held.items()):
            arrays = read_vectors(self._location, self._index.batches[batch])
            vectors, rescore = arrays["vectors"], arrays.get("rescore")
            for row, item in items:
                modality = "image" if isinstance(item, ImageItem) else "text"
                r = None if rescore is None else np.array(rescore[row])
                self._resumed.inc()
                yield embedded_from(item, np.array(vectors[row]), modality, rescore=r)
            del arrays, vectors, rescore


class ResumeFromCheckpoints(beam.PTransform):
    """Split ``Chunk``/``ImageItem`` elements into ``Embedded`` ones taken from the
    checkpoints under ``location`` (``transforms.checkpoints``: same settings digest) and
    those still ``to_embed``. Returns ``(resumed, to_embed)``."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self._location = location.rstrip("/")
        self._run = uuid.uuid4().hex  # the keys are loaded once a process for this run

    def expand(self, items: beam.PCollection):
        split = items | "Split" >> beam.ParDo(_ResumeFn(self._location, self._run)).with_outputs(
            TO_EMBED, main="resumed"
        )
        return split.resumed, split[TO_EMBED]
