"""ReuseVectors: what a previous index version already embedded is not embedded again.

A chunk (or image) is reused when the previous version holds the same stable id (same
document id and chunk number) with the same content hash. Each worker process loads the
previous version's ``id`` and ``content_hash`` columns once, part by part, as two sorted
arrays (16 bytes a row: the id and a 64-bit digest of the hash) and decides element by
element, in the stage that reads and chunks: nothing is grouped, no text crosses a stage.
A reused element leaves as an ``Embedded`` whose vector is ``REUSED_VECTOR``; the part
writer (``BuildIndexShards``) reads its vector from the previous version's part, which
covers the same id range. Ids the previous version has and this corpus no longer does
drop out (deleted documents): the job counts them as the previous count minus the
``previous_matched`` counter.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from indexes.ids import chunk_id
from indexes.parts import METADATA_SUFFIX
from inference import codec
from transforms import progress
from transforms.elements import Chunk, ImageItem
from transforms.embed import embedded_from
from transforms.index_shards import REUSED_VECTOR

__all__ = ["ReuseVectors", "hash_digest"]

TO_EMBED = "to_embed"
_LOADED: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()


def hash_digest(content_hash: str | None) -> int:
    """A content hash as a signed 64-bit integer (0 for none)."""
    if not content_hash:
        return 0
    return int.from_bytes(
        hashlib.blake2b(content_hash.encode(), digest_size=8).digest(), "little", signed=True
    )


def _load(previous: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ids, hash digests) of the previous version, sorted by id; once a process."""
    key = previous["folder"]
    with _LOCK:
        if key not in _LOADED:
            ids, digests = [], []
            for info in previous["parts"]:
                with FileSystems.open(f"{key}/{info['name']}{METADATA_SUFFIX}") as f:
                    t = pq.read_table(io.BytesIO(f.read()), columns=["id", "content_hash"])
                ids.append(t.column("id").to_numpy())
                digests.append(
                    np.fromiter(
                        (hash_digest(h) for h in t.column("content_hash").to_pylist()),
                        dtype=np.int64,
                        count=t.num_rows,
                    )
                )
            if ids:
                _LOADED[key] = (np.concatenate(ids), np.concatenate(digests))
            else:
                _LOADED[key] = (np.empty(0, np.int64), np.empty(0, np.int64))
        return _LOADED[key]


class _SplitFn(beam.DoFn):
    def __init__(self, previous: dict) -> None:
        self._previous = previous
        self._reused = progress.counter("inputs_reused")
        self._matched = progress.counter("previous_matched")

    def setup(self) -> None:
        self._ids, self._digests = _load(self._previous)

    def process(self, item: Chunk | ImageItem) -> Iterator:
        index = item.chunk_index if isinstance(item, Chunk) else 0
        id_ = chunk_id(item.document_id, index)
        pos = int(np.searchsorted(self._ids, id_))
        if pos < self._ids.size and self._ids[pos] == id_:
            self._matched.inc()
            if self._digests[pos] == hash_digest(item.content_hash):
                self._reused.inc()
                modality = "image" if isinstance(item, ImageItem) else "text"
                yield embedded_from(item, REUSED_VECTOR, modality)
                return
        yield beam.pvalue.TaggedOutput(TO_EMBED, item)


class ReuseVectors(beam.PTransform):
    """Split ``Chunk``/``ImageItem`` elements into ``Embedded`` ones reused from the
    previous version (``{"folder", "parts"}``: its folder on any filesystem and its
    manifest's parts; same encoding) and those still ``to_embed``. Returns
    ``(reused, to_embed)``."""

    def __init__(self, previous: dict, *, encoding: str) -> None:
        super().__init__()
        self._previous = {"folder": previous["folder"].rstrip("/"), "parts": previous["parts"]}
        codec.check_encoding(encoding)

    def expand(self, items: beam.PCollection):
        split = items | "Split" >> beam.ParDo(_SplitFn(self._previous)).with_outputs(
            TO_EMBED, main="reused"
        )
        return split.reused, split[TO_EMBED]
