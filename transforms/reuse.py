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
from apache_beam.transforms.window import GlobalWindows

from corpusbeam.inference import codec
from indexes.storage.ids import chunk_id
from indexes.storage.part_files import DIGESTS_SUFFIX, METADATA_SUFFIX
from indexes.storage.part_ranges import part_of
from transforms import counters as progress
from transforms.build_index import REUSED_VECTOR, metadata_row, row_digest
from transforms.elements import Chunk, ImageItem
from transforms.embed_outputs import embedded_from
from transforms.part_layers import read_removed
from transforms.previous import PreviousVersion

__all__ = ["ReuseVectors", "hash_digest"]

TO_EMBED = "to_embed"
KEPT = "kept"
_LOADED: dict[str, tuple[np.ndarray, ...]] = {}
_LOCK = threading.Lock()


def hash_digest(content_hash: str | None) -> int:
    """A content hash as a signed 64-bit integer (0 for none)."""
    if not content_hash:
        return 0
    return int.from_bytes(
        hashlib.blake2b(content_hash.encode(), digest_size=8).digest(), "little", signed=True
    )


def _ids_digests(folder: str, info: dict, rows: bool) -> tuple[np.ndarray, ...]:
    """(ids, content-hash digests, row digests) of one part; row digests (0: unknown)
    only for a base part (``rows``) that keeps them (``.digests.npy``)."""
    with FileSystems.open(f"{folder}/{info['name']}{METADATA_SUFFIX}") as f:
        t = pq.read_table(io.BytesIO(f.read()), columns=["id", "content_hash"])
    digests = np.fromiter(
        (hash_digest(h) for h in t.column("content_hash").to_pylist()),
        dtype=np.int64,
        count=t.num_rows,
    )
    row = np.zeros(t.num_rows, dtype=np.int64)
    path = f"{folder}/{info['name']}{DIGESTS_SUFFIX}"
    if rows and FileSystems.exists(path):
        with FileSystems.open(path) as f:
            row = np.load(io.BytesIO(f.read()), allow_pickle=False)
    return t.column("id").to_numpy(), digests, row


def _load(previous: PreviousVersion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, content-hash digests, base row digests: 0 for a row not in a base part or
    without one) of the previous version's live rows, sorted by id; once a process. A
    layered version's rows: its base parts without the removed ids, and its delta parts
    (``indexes.storage.layers``)."""
    key = previous.folder
    with _LOCK:
        if key not in _LOADED:
            got = [_ids_digests(key, info, True) for info in previous.parts]
            removed = read_removed(key, previous.removed)
            if removed.size:
                got = [tuple(a[~np.isin(g[0], removed)] for a in g) for g in got]
            got += [_ids_digests(key, info, False) for info in previous.delta_parts]
            if got:
                ids = np.concatenate([g[0] for g in got])
                order = np.argsort(ids, kind="stable")
                _LOADED[key] = tuple(np.concatenate([g[i] for g in got])[order] for i in range(3))
            else:
                _LOADED[key] = tuple(np.empty(0, np.int64) for _ in range(3))
        return _LOADED[key]


class _SplitFn(beam.DoFn):
    def __init__(self, previous: PreviousVersion) -> None:
        self._previous = previous
        self._layered = previous.layered
        self._parts = previous.shards
        self._reused = progress.counter("inputs_reused")
        self._matched = progress.counter("previous_matched")

    def setup(self) -> None:
        self._ids, self._digests, self._rows = _load(self._previous)

    def start_bundle(self) -> None:
        self._kept: dict[int, list[int]] = {}

    def process(self, item: Chunk | ImageItem) -> Iterator:
        index = item.chunk_index if isinstance(item, Chunk) else 0
        id_ = chunk_id(item.document_id, index)
        pos = int(np.searchsorted(self._ids, id_))
        if pos < self._ids.size and self._ids[pos] == id_:
            self._matched.inc()
            if self._digests[pos] == hash_digest(item.content_hash):
                self._reused.inc()
                modality = "image" if isinstance(item, ImageItem) else "text"
                e = embedded_from(item, REUSED_VECTOR, modality)
                row = self._rows[pos]
                if self._layered and row and row == row_digest(metadata_row(e, id_)):
                    # The base part holds this row as it is: only its id goes on.
                    self._kept.setdefault(int(part_of(id_, self._parts)), []).append(id_)
                    return
                yield e
                return
        yield beam.pvalue.TaggedOutput(TO_EMBED, item)

    def finish_bundle(self) -> Iterator:
        for part, ids in sorted(self._kept.items()):
            ref = {"part": part, "kept": ids}
            yield beam.pvalue.TaggedOutput(KEPT, GlobalWindows.windowed_value(ref))
        self._kept = {}


class ReuseVectors(beam.PTransform):
    """Split ``Chunk``/``ImageItem`` elements into ``Embedded`` ones reused from the
    ``previous`` version (its folder on any filesystem and its manifest's parts; same
    encoding) and those still ``to_embed``. Returns ``(reused, to_embed, kept)``:
    ``kept`` holds, for a layered update (``previous.layered``, parts by
    ``previous.shards``), ``{"part", "kept": ids}`` references to the rows the base parts
    hold exactly as they are, which need no writing."""

    def __init__(self, previous: PreviousVersion, *, encoding: str) -> None:
        super().__init__()
        self._previous = previous
        codec.check_encoding(encoding)

    def expand(self, items: beam.PCollection):
        split = items | "Split" >> beam.ParDo(_SplitFn(self._previous)).with_outputs(
            TO_EMBED, KEPT, main="reused"
        )
        return split.reused, split[TO_EMBED], split[KEPT]
