"""ReadChangedRecords: an update reads its record files and leaves out the unchanged records.

A layered update (``indexes.storage.layers``) of a JSONL, CSV or Parquet file skips what
the live version holds as it is, record by record, before anything is chunked, embedded
or hashed again: each worker process loads once the live version's records from its base
parts (``id``, ``document_id``, ``uri`` and ``RECORD_DIGEST`` columns, as arrays), and a
record whose digest and document id are the live one's becomes a reference to its rows'
ids (``{"part", "kept": ids}``, as ``ReuseVectors`` makes them), which the part writer
keeps in the base part. A document with a removed row, a row in the live version's delta
parts (changed in an earlier update) or two digests is read again as usual, as are
changed, new and failed records. A record gone from its file has no reference and no
row: its rows are removed. Rows kept this way count as ``rows_kept_unread``, records as
``records_unchanged``. Records of one row with an id field are looked up all at once
(``transforms.records.LiveRecords``); the rest one by one.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from indexes.storage.part_files import METADATA_SUFFIX
from indexes.storage.part_ranges import part_of
from indexes.storage.tables import RECORD_DIGEST
from transforms import counters as progress
from transforms.formats import RECORD_EXTENSIONS
from transforms.part_layers import read_removed
from transforms.previous import PreviousVersion
from transforms.read import (
    FAILURES,
    ReadDocuments,
    _MatchFn,
    _ReadDocumentsFn,
)
from transforms.records import KeptRecords, LiveRecords, Records, record_items

__all__ = ["KEPT", "ReadChangedRecords", "RecordOutputs", "live_records"]

KEPT = "kept"
_LOADED: dict[str, dict[str, LiveRecords]] = {}
_LOCK = threading.Lock()


class RecordOutputs(NamedTuple):
    """ReadChangedRecords' outputs: documents, failures, and the kept rows' references."""

    main: beam.PCollection
    failures: beam.PCollection
    kept: beam.PCollection


def _table(folder: str, info: dict, columns: list[str]) -> pa.Table | None:
    """A part's metadata columns; None when it has no record digests (written before)."""
    with FileSystems.open(f"{folder}/{info['name']}{METADATA_SUFFIX}") as f:
        data = pq.ParquetFile(io.BytesIO(f.read()))
    if not set(columns) <= set(data.schema_arrow.names):
        return None
    return data.read(columns=columns)


def _base_rows(previous: PreviousVersion) -> pa.Table | None:
    """(uri, document_id, digest, id, one: the record's only row) of the base parts' rows
    whose record can be kept: none of its rows removed, no row in a delta part, one
    digest. A document id is the key: ids are unique, so it has one file."""
    columns = ["id", "document_id", "uri", RECORD_DIGEST]
    parts = [_table(previous.folder, i, columns) for i in previous.parts]
    parts = [t for t in parts if t is not None]
    if not parts:
        return None
    t = pa.concat_tables(parts).combine_chunks()
    if t.num_rows == 0:
        return None
    docs = pc.dictionary_encode(t.column("document_id").chunk(0))
    codes, n = docs.indices.to_numpy(), len(docs.dictionary)
    digest = t.column(RECORD_DIGEST).chunk(0)
    digests = pc.fill_null(digest, 0).to_numpy()
    removed = read_removed(previous.folder, previous.removed)
    dead = np.isin(t.column("id").to_numpy(), removed) | digest.is_null().to_numpy(False)
    bad = np.zeros(n, dtype=bool)
    bad[codes[dead]] = True
    for info in previous.delta_parts:  # read again: their rows are not the base's
        delta = _table(previous.folder, info, ["document_id"]).column("document_id")
        bad |= pc.is_in(docs.dictionary, value_set=delta.combine_chunks()).to_numpy(False)
    low, high = np.full(n, np.iinfo(np.int64).max), np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(low, codes, digests)
    np.maximum.at(high, codes, digests)
    bad |= low != high
    one = np.bincount(codes, minlength=n)[codes] == 1
    t = t.append_column("one", pa.array(one))
    return t.filter(pa.array(~bad[codes]))


def _other(t: pa.Table, out: dict[str, Records]) -> None:
    """Add ``t``'s rows to uri -> digest -> {document id: ids}."""
    for uri, doc, digest, id_ in zip(
        t.column("uri").to_pylist(),
        t.column("document_id").to_pylist(),
        t.column(RECORD_DIGEST).to_pylist(),
        t.column("id").to_pylist(),
        strict=True,
    ):
        out.setdefault(uri, {}).setdefault(digest, {}).setdefault(doc, []).append(id_)


def _by_file(t: pa.Table) -> dict[str, LiveRecords]:
    """uri -> its LiveRecords: records of one row with an id field in arrays, looked up
    at once; the rest (several rows, a position as id, a digest twice) one by one."""
    positional = pc.match_substring_regex(t.column("document_id"), r"#[LR][0-9]+$")
    fast = pc.and_(t.column("one"), pc.invert(positional))
    other: dict[str, Records] = {}
    _other(t.filter(pc.invert(fast)), other)
    f = t.filter(fast).sort_by([("uri", "ascending"), (RECORD_DIGEST, "ascending")])
    uris = f.column("uri").to_numpy(zero_copy_only=False)
    digests, ids = f.column(RECORD_DIGEST).to_numpy(), f.column("id").to_numpy()
    new_uri = np.r_[True, uris[1:] != uris[:-1]] if uris.size else np.empty(0, bool)
    twice = _twice(uris, digests)  # the same content twice in a file: one by one
    _other(f.filter(pa.array(twice)), other)
    empty = np.empty(0, np.int64)
    out = {uri: LiveRecords(empty, empty, records) for uri, records in other.items()}
    for a, b in itertools.pairwise([*np.flatnonzero(new_uri).tolist(), uris.size]):
        keep = ~twice[a:b]
        uri = uris[a]
        out[uri] = LiveRecords(digests[a:b][keep], ids[a:b][keep], other.get(uri, {}))
    return out


def _twice(uris: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """Rows (sorted by uri, digest) whose digest another row of the same file has."""
    if uris.size < 2:
        return np.zeros(uris.size, dtype=bool)
    pair = (digests[1:] == digests[:-1]) & (uris[1:] == uris[:-1])
    return np.r_[pair, False] | np.r_[False, pair]


def live_records(previous: PreviousVersion) -> dict[str, LiveRecords]:
    """uri -> the live version's records that can be kept (see the module docstring);
    loaded once a process, not to be changed by the caller."""
    with _LOCK:
        if previous.folder not in _LOADED:
            t = _base_rows(previous)
            _LOADED[previous.folder] = {} if t is None else _by_file(t)
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

    def _parsed(self, data: bytes, rel: str, uri: str, ext: str) -> Iterator:
        if ext not in RECORD_EXTENSIONS:
            yield from super()._parsed(data, rel, uri, ext)
            return
        kept: list[int] = []
        unchanged = 0
        for item in record_items(
            data,
            document_id=rel,
            uri=uri,
            extension=ext,
            fields=self._fields,
            max_document_bytes=self._max_document_bytes,
            live=self._live.get(uri),
        ):
            if isinstance(item, KeptRecords):
                kept += item.ids
                unchanged += item.records
            else:
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
