"""ReadChangedRecords: an update reads its record files and leaves out the unchanged records.

A layered update (``indexes.storage.layers``) of a JSONL, CSV or Parquet file skips what
the live version holds as it is, record by record, before anything is chunked, embedded
or hashed again: each worker process loads once the live version's records from its base
parts (``id``, ``document_id``, ``uri`` and ``RECORD_DIGEST`` columns; removed ids left
out), and a record whose digest and document id are the live one's becomes a reference
to its rows' ids (``{"part", "kept": ids}``, as ``ReuseVectors`` makes them), which the
part writer keeps in the base part. Records whose rows are in the live version's delta
parts (changed in an earlier update) are read again as usual, as are changed, new and
failed records. A record gone from its file has no reference and no row: its rows are
removed. Rows kept this way count as ``rows_kept_unread``, records as
``records_unchanged``.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from indexes.storage.part_files import METADATA_SUFFIX
from indexes.storage.part_ranges import part_of
from indexes.storage.tables import RECORD_DIGEST
from transforms import counters as progress
from transforms.elements import Failure
from transforms.formats import RECORD_EXTENSIONS
from transforms.part_layers import read_removed
from transforms.previous import PreviousVersion
from transforms.read import (
    FAILURES,
    ReadDocuments,
    _extension,
    _failure,
    _MatchFn,
    _read_bytes,
    _ReadDocumentsFn,
    _TooLarge,
)
from transforms.records import KeptRecord, LiveRecords, record_items

__all__ = ["KEPT", "ReadChangedRecords", "RecordOutputs", "live_records"]

KEPT = "kept"
_LOADED: dict[str, dict[str, LiveRecords]] = {}
_LOCK = threading.Lock()


class RecordOutputs(NamedTuple):
    """ReadChangedRecords' outputs: documents, failures, and the kept rows' references."""

    main: beam.PCollection
    failures: beam.PCollection
    kept: beam.PCollection


def _columns(folder: str, info: dict, columns: list[str]) -> dict[str, list]:
    with FileSystems.open(f"{folder}/{info['name']}{METADATA_SUFFIX}") as f:
        data = pq.ParquetFile(io.BytesIO(f.read()))
    names = [c for c in columns if c in data.schema_arrow.names]
    table = data.read(columns=names)
    return {c: table.column(c).to_pylist() if c in names else None for c in columns}


def _base_records(previous: PreviousVersion, gone: set) -> dict[str, LiveRecords]:
    """uri -> the records of the live version's base parts, but those in ``gone``
    ((uri, document id) pairs: a row removed or in a delta part, or two digests)."""
    removed = read_removed(previous.folder, previous.removed)
    digest_of: dict[tuple[str, str], int] = {}
    rows: list[tuple[tuple[str, str], int, int]] = []
    for info in previous.parts:
        t = _columns(previous.folder, info, ["id", "document_id", "uri", RECORD_DIGEST])
        if t[RECORD_DIGEST] is None:  # written before records had digests
            continue
        ids = np.asarray(t["id"], dtype=np.int64)
        live = ~np.isin(ids, removed) if removed.size else np.ones(ids.size, dtype=bool)
        keys = list(zip(t["uri"], t["document_id"], strict=True))
        for n, key, digest in zip(live.tolist(), keys, t[RECORD_DIGEST], strict=True):
            if not n or digest is None or digest_of.setdefault(key, digest) != digest:
                gone.add(key)
        rows += zip(keys, t[RECORD_DIGEST], ids.tolist(), strict=True)
    out: dict[str, LiveRecords] = {}
    for key, digest, id_ in rows:
        if key not in gone:
            out.setdefault(key[0], {}).setdefault(digest, {}).setdefault(key[1], []).append(id_)
    return out


def live_records(previous: PreviousVersion) -> dict[str, LiveRecords]:
    """uri -> the live version's records that can be kept (see the module docstring);
    loaded once a process, not to be changed by the caller."""
    with _LOCK:
        if previous.folder not in _LOADED:
            gone: set[tuple[str, str]] = set()
            for info in previous.delta_parts:
                t = _columns(previous.folder, info, ["document_id", "uri"])
                gone.update(zip(t["uri"], t["document_id"], strict=True))
            _LOADED[previous.folder] = _base_records(previous, gone)
        return _LOADED[previous.folder]


class _ReadKeepingFn(_ReadDocumentsFn):
    """_ReadDocumentsFn that leaves out the records the live version holds as they are."""

    def __init__(self, previous: PreviousVersion, *args) -> None:
        super().__init__(*args)
        self._previous = previous
        self._unchanged = progress.counter("records_unchanged")
        self._kept_rows = progress.counter("rows_kept_unread")

    def setup(self) -> None:
        self._live = live_records(self._previous)

    def start_bundle(self) -> None:
        self._kept: list[int] = []

    def process(self, element) -> Iterator:
        meta, rel = element
        ext = _extension(meta.path)
        if ext not in RECORD_EXTENSIONS:
            yield from super().process(element)
            return
        self._files.inc()
        try:
            data = _read_bytes(meta, self._max_file_bytes)
        except _TooLarge as exc:  # worded as ReadDocuments words it
            yield _failure(f"{exc} (max_document_bytes)", rel, meta.path, "read")
            return
        except OSError as exc:
            yield _failure(exc, rel, meta.path, "read")
            return
        kept: list[int] = []
        unchanged = 0
        for item in record_items(
            data,
            document_id=rel,
            uri=meta.path,
            extension=ext,
            fields=self._fields,
            max_document_bytes=self._max_document_bytes,
            live=self._live.get(meta.path),
        ):
            if isinstance(item, KeptRecord):
                kept += item.ids
                unchanged += 1
            elif isinstance(item, Failure):
                yield beam.pvalue.TaggedOutput(FAILURES, item)
            else:
                self._read.inc()
                yield item
        self._unchanged.inc(unchanged)  # once a file: a counter costs more than a record
        self._kept_rows.inc(len(kept))
        self._kept += kept

    def finish_bundle(self) -> Iterator:
        ids = np.asarray(self._kept, dtype=np.int64)
        parts = part_of(ids, self._previous.shards)
        for part in np.unique(parts).tolist():
            ref = {"part": part, "kept": ids[parts == part].tolist()}
            yield beam.pvalue.TaggedOutput(KEPT, GlobalWindows.windowed_value(ref))
        self._kept = []


class ReadChangedRecords(ReadDocuments):
    """``ReadDocuments`` for a layered update over ``previous`` (its ``shards``: this run's
    part count): JSONL, CSV and Parquet records the live version holds as they are are
    not read into documents. Returns ``RecordOutputs(main=Document, failures, kept)``,
    ``kept`` the ``{"part", "kept": ids}`` references of their rows (see the module
    docstring)."""

    def __init__(self, patterns, *, previous: PreviousVersion, **options) -> None:
        super().__init__(patterns, **options)
        self._previous = previous

    def expand(self, pbegin: beam.pvalue.PBegin) -> RecordOutputs:
        fn = _ReadKeepingFn(
            self._previous, self._fields, self._max_document_bytes, self._max_file_bytes
        )
        matched = (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "Match"
            >> beam.ParDo(_MatchFn("document", self._unknown, self._skip)).with_outputs(
                FAILURES, main="files"
            )
        )
        read = (
            matched.files
            | "Reshuffle" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(fn).with_outputs(FAILURES, KEPT, main="items")
        )
        failures = (matched.failures, read[FAILURES]) | "Failures" >> beam.Flatten()
        return RecordOutputs(read.items, failures, read[KEPT])
