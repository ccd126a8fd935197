"""WritePart: all run files of one part -> the part's files in the version's folder.

Each worker writes its parts one at a time: it reads the part's runs, sorts the rows by
id and drops duplicate ids (to failures), fills the reused rows' vectors from the
previous version's part, and writes the part's Parquet files (and BM25 segment). In
layered mode (``indexes.storage.layers``) the rows the previous version's base part holds
as they are stay there, and only the rest is written, as a delta part
(``transforms.build_index.layered``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusbeam.inference import codec
from indexes.ann.spec import family_of
from indexes.lexical.index import column_texts
from indexes.lexical.segment import encode_segment
from indexes.memory import trim
from indexes.storage.layers import DELTA_PREFIX
from indexes.storage.part_files import encode_part, file_entry
from transforms import counters as progress
from transforms.build_index import layered
from transforms.build_index.runs import run_metadata
from transforms.build_index.staging import read_bytes, write_bytes
from transforms.build_index.vectors import (
    derived_rescore,
    fill_reused,
    fresh_vectors,
    int8_rescore,
    merged,
    previous_vectors,
    take_vectors,
)
from transforms.elements import Failure
from transforms.part_layers import Carried, carried_rows
from transforms.previous import PreviousVersion
from transforms.read import FAILURES

__all__ = ["WritePartFn"]

_WHO = ["document_id", "chunk", "uri"]


def _duplicate(e: dict, first: dict):
    """A failure: a run row whose id an earlier run row (by URI) holds (that one kept)."""
    return beam.pvalue.TaggedOutput(
        FAILURES,
        Failure.of(
            f"duplicate id: chunk {e['chunk']} of {e['document_id']!r} also comes "
            f"from {first['uri']}; ids must be unique (kept the first)",
            source_id=f"{e['document_id']}#{e['chunk']}",
            uri=e["uri"],
            stage="index",
        ),
    )


def duplicate_of_live(e: dict):
    """A failure: a run row whose id a live row of another document holds (kept)."""
    return beam.pvalue.TaggedOutput(
        FAILURES,
        Failure.of(
            f"duplicate id: chunk {e['chunk']} of {e['document_id']!r} is also in "
            "a document the live version holds; ids must be unique (kept that one)",
            source_id=f"{e['document_id']}#{e['chunk']}",
            uri=e["uri"],
            stage="index",
        ),
    )


def _kept_and_runs(refs: Iterable[dict]) -> tuple[np.ndarray, list[dict]]:
    """(the ids ``ReuseVectors`` found unchanged in the base part: no run row, layered;
    the part's run refs, by path)."""
    refs = list(refs)
    kept = [np.asarray(r["kept"], dtype=np.int64) for r in refs if "kept" in r]
    pre_kept = np.unique(np.concatenate(kept)) if kept else np.empty(0, np.int64)
    return pre_kept, sorted((r for r in refs if "path" in r), key=lambda r: r["path"])


def _read_runs(runs: list[dict]) -> tuple[pa.Table, int]:
    """(the runs' rows as one table, by id then URI; their vectors' width)."""
    tables = [pq.read_table(io.BytesIO(read_bytes(r["path"]))) for r in runs]
    width = max(r["width"] for r in runs)
    table = pa.concat_tables(tables, promote_options="permissive")
    del tables
    # Sort by id, then by URI: of the same id twice, the first by URI is kept.
    return table.sort_by([("id", "ascending"), ("uri", "ascending")]), width


def _first_of_each_id(table: pa.Table) -> tuple[pa.Table, list]:
    """(the sorted rows with each id once: the first by URI; a failure for each other)."""
    ids = table.column("id").to_numpy()
    dup = np.zeros(ids.size, dtype=bool)
    dup[1:] = ids[1:] == ids[:-1]
    failures = [
        _duplicate(
            table.slice(int(row), 1).to_pylist()[0], table.slice(int(row) - 1, 1).to_pylist()[0]
        )
        for row in np.flatnonzero(dup)
    ]
    return (table.filter(pa.array(~dup)) if dup.any() else table), failures


def _not_carried(table: pa.Table, carry: Carried | None) -> tuple[pa.Table, list]:
    """(the rows whose id no carried row holds; a failure for each other): an id also in
    a file not read again stays that file's live row."""
    if carry is None:
        return table, []
    twice = np.isin(table.column("id").to_numpy(), carry.ids)
    failures = [
        duplicate_of_live(e) for e in table.filter(pa.array(twice)).select(_WHO).to_pylist()
    ]
    return table.filter(pa.array(~twice)), failures


def _metadata(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """(the part's metadata table, its rows' digests) from its run rows."""
    return run_metadata(table), table.column("row_digest").to_numpy()


class WritePartFn(beam.DoFn):
    """All runs of one part -> the part's files in the version's folder."""

    def __init__(
        self,
        folder: str,
        parts: int,
        encoding: str,
        previous: PreviousVersion | None,
        lexical: bool,
    ) -> None:
        self._lexical = lexical
        self._folder = folder.rstrip("/")
        self._parts = parts
        self._encoding = encoding
        self._previous = previous
        self._unread_rows = progress.counter("rows_kept_unread")

    @property
    def _layered(self) -> bool:
        return self._previous is not None and self._previous.layered

    def process(self, element: tuple[int, Iterable[dict]]) -> Iterator:
        part, refs = element
        pre_kept, runs = _kept_and_runs(refs)
        carry = self._carried(part)
        if not runs:  # every row of the part is the base's, as it was (or the live delta's)
            yield from self._unwritten_part(part, pre_kept, carry)
            return
        table, width = _read_runs(runs)
        table, failures = _first_of_each_id(table)
        yield from failures
        table, failures = _not_carried(table, carry)
        yield from failures
        layer = None
        if self._layered:
            table, layer, failures = self._split_layer(part, table, pre_kept)
            yield from failures
            if not table.num_rows:  # every row of the part is the base's, as it was
                yield self._layer_only(part, layer, carry)
                return
        dtype = codec.natural_dtype(self._encoding)
        ids = table.column("id").to_numpy()
        reused = table.column("reused").to_numpy(zero_copy_only=False)
        table, values = take_vectors(table)
        old = previous_vectors(self._previous, ids[reused], dtype)
        xb = fresh_vectors(values, reused, width, old, dtype)
        del values
        folder = None if self._previous is None else self._previous.folder
        pos = fill_reused(xb, ids, reused, old, folder)
        if family_of(self._encoding) == "int8":  # int8 indexes rescore against their bytes
            rv = int8_rescore(xb, self._encoding)
        else:  # (the live version's rescore column of an int8 index is those bytes too)
            rv = derived_rescore(table, ids, reused, old.rv, pos)
        del old
        meta, digests = _metadata(table)
        del table
        if carry is not None:
            meta, xb, rv, digests = merged(meta, xb, rv, digests, *self._carried_arrays(carry))
        yield self._encode(part, meta, xb, rv, digests, layer)

    def _unwritten_part(self, part: int, pre_kept: np.ndarray, carry: Carried | None) -> Iterator:
        """A part no run row falls in: its base part's rows as they were, less those gone,
        and the live delta's carried rows; nothing when there is neither."""
        layer = self._kept_only(part, pre_kept)
        if layer["base"] is None and carry is None:  # a live delta part alone: all gone
            return
        yield self._layer_only(part, layer, carry)

    def _layer_only(self, part: int, layer: dict, carry: Carried | None) -> dict:
        """A layered part none of whose run rows it writes: its delta part holds the
        carried rows alone, or there is none."""
        if carry is None:
            return self._layer_ref(part, layer, None, {}, None, None)
        return self._encode(part, *self._carried_arrays(carry), layer)

    def _carried(self, part: int) -> Carried | None:
        """The live delta's rows of part ``part`` from files not read again (layered)."""
        if not self._layered:
            return None
        carry = carried_rows(self._previous, part, self._encoding)
        if carry is not None:
            self._unread_rows.inc(int(carry.ids.size))
        return carry

    def _carried_arrays(self, carry: Carried) -> tuple:
        """(meta, xb, rv, digests) of carried rows, as ``_encode`` takes them."""
        int8 = family_of(self._encoding) == "int8"
        rv = int8_rescore(carry.xb, self._encoding) if int8 else carry.rv
        return carry.meta, carry.xb, rv, carry.digests

    def _split_layer(self, part: int, table: pa.Table, pre_kept: np.ndarray):
        """Layered mode: (the rows the delta part holds, the layer's facts, a failure for
        each row whose id is kept from elsewhere)."""
        table, layer, duplicates = layered.split_layer(
            self._previous, self._folder, part, table, pre_kept, self._unread_rows
        )
        return table, layer, [duplicate_of_live(e) for e in duplicates]

    def _kept_only(self, part: int, pre_kept: np.ndarray) -> dict:
        return layered.kept_only(self._previous, self._folder, part, pre_kept, self._unread_rows)

    def _layer_ref(self, part, layer, info, files, width, rdtype) -> dict:
        return layered.layer_ref(self._previous, part, layer, info, files, width, rdtype)

    def _encode(self, part, meta, xb, rv, digests, layer) -> dict:
        """Write a part's (or a layered part's delta part's) files; returns its ref."""
        d = xb.shape[1] * (8 if self._encoding in codec.BIT_ENCODINGS else 1)
        prefix = "part" if layer is None else DELTA_PREFIX
        info, blobs = encode_part(
            part,
            meta,
            xb,
            rv,
            encoding=self._encoding,
            dimensions=d,
            prefix=prefix,
            digests=digests,
        )
        segment = None
        if self._lexical:  # the part's BM25 segment, from its texts (indexes.lexical.segment)
            segment, more = encode_segment(
                f"{prefix}-{part:05d}", meta.column("id").to_numpy(), column_texts(meta)
            )
            blobs = {**blobs, **more}
        files = {}
        for name, blob in blobs.items():
            write_bytes(f"{self._folder}/{name}", blob)
            files[name] = file_entry(blob)
        rdtype = None if rv is None else str(rv.dtype)
        if layer is None:
            ref = {
                "part": part,
                "info": info.as_dict(),
                "rows": info.rows,
                "id_min": info.id_min,
                "files": files,
                "width": xb.shape[1],
                "rescore_dtype": rdtype,
            }
        else:
            ref = self._layer_ref(part, layer, info.as_dict(), files, xb.shape[1], rdtype)
        if segment is not None:
            ref["lexical"] = segment
        del meta, blobs, xb, rv
        trim()  # one part at a time, really
        return ref
