"""WriteRuns: embedded rows, buffered by part, into run files under the staging.

In the stage that embeds (nothing is grouped there), every ``RUN_ROWS`` rows and at the
bundle's end each part's buffered rows go into one Parquet run file, and only a small
reference to it (``{"part", "path", "rows", "width"}``) goes on to the part writer.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows

from corpusbeam.inference import codec
from indexes.building.assemble import expand_metadata_json
from indexes.storage.ids import chunk_id
from indexes.storage.part_files import parquet_bytes
from indexes.storage.part_ranges import part_of
from indexes.storage.tables import METADATA_COLUMNS, metadata_table
from transforms.build_index.staging import RUNS, write_bytes
from transforms.elements import Embedded

__all__ = [
    "REUSED_VECTOR",
    "RUN_COLUMNS",
    "RUN_ROWS",
    "WriteRunsFn",
    "metadata_row",
    "row_digest",
    "run_metadata",
]

RUN_ROWS = 4096
# An Embedded whose vector is empty (this marker) is reused: its vector is read from the previous
# version's part when the part is written (``ReuseVectors``).
REUSED_VECTOR = np.empty(0, dtype=np.uint8)
_RUN_ONLY = ("reused", "vector", "rescore", "row_digest")  # run columns a part does not keep

# A run file: the folder's metadata columns, the user's metadata as one JSON object a row
# (``indexes.building.assemble.expand_metadata_json`` turns it into columns), whether the row is
# reused, and its vector (a list column, empty for reused rows).
RUN_COLUMNS = pa.schema(
    [
        *METADATA_COLUMNS.items(),
        ("metadata_json", pa.string()),
        ("reused", pa.bool_()),
        ("row_digest", pa.int64()),
    ]
)


def run_metadata(table: pa.Table) -> pa.Table:
    """Run rows' metadata table, as a part keeps it: the run-only columns dropped, the
    user's metadata JSON expanded into columns."""
    dropped = table.drop_columns([c for c in _RUN_ONLY if c in table.column_names])
    return metadata_table(expand_metadata_json(dropped))


def _is_reused(e: Embedded) -> bool:
    return np.asarray(e.vector).size == 0


def row_digest(row: dict) -> int:
    """A metadata row's digest (signed 64-bit; its id left out): equal digests, equal rows.
    Parts keep them (``.digests.npy``), so an update recognises a row it need not write."""
    body = json.dumps({k: v for k, v in row.items() if k != "id"}, sort_keys=True, default=str)
    return int.from_bytes(
        hashlib.blake2b(body.encode(), digest_size=8).digest(), "little", signed=True
    )


def metadata_row(e: Embedded, id_: int) -> dict:
    """One metadata row for an embedded chunk or image."""
    return {
        "id": id_,
        "document_id": e.document_id,
        "chunk": e.chunk_index,
        "uri": e.uri,
        "modality": e.modality,
        "text": e.text,
        "char_start": e.start,
        "char_end": e.end,
        "content_hash": e.content_hash,
        "metadata_json": json.dumps(e.metadata, sort_keys=True, default=str),
    }


def _list_column(arrays: list[np.ndarray | None], dtype) -> pa.ListArray:
    """A list column, row for row: each array's values, an empty list for None."""
    lengths = [0 if a is None else np.asarray(a).size for a in arrays]
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    present = [np.asarray(a).ravel() for a in arrays if a is not None]
    values = np.concatenate(present).astype(dtype) if present else np.empty(0, dtype)
    return pa.ListArray.from_arrays(offsets, pa.array(values))


def _run_table(items: list[tuple[int, Embedded]], dtype) -> pa.Table:
    """One run's rows: metadata, whether reused, row digest, vector (and rescoring vector)."""
    rows = [metadata_row(e, i) for i, e in items]
    table = pa.Table.from_pylist(
        [
            {**row, "reused": _is_reused(e), "row_digest": row_digest(row)}
            for row, (_, e) in zip(rows, items, strict=True)
        ],
        schema=RUN_COLUMNS,
    )
    # A list column: each fresh row's vector, an empty list for a reused row.
    vectors = [None if _is_reused(e) else e.vector for _, e in items]
    table = table.append_column("vector", _list_column(vectors, dtype))
    # Derived int8 rescoring vectors (binary indexes fed floats), likewise a list column.
    rescores = [None if _is_reused(e) or e.rescore is None else e.rescore for _, e in items]
    if any(r is not None for r in rescores):
        table = table.append_column("rescore", _list_column(rescores, np.dtype(np.int8)))
    return table


class WriteRunsFn(beam.DoFn):
    """Buffer embedded rows by part; every ``RUN_ROWS`` rows (and at the bundle's end)
    write each part's rows to a run file and emit a small reference to it."""

    def __init__(self, staging: str, parts: int, encoding: str) -> None:
        self._staging = staging.rstrip("/")
        self._parts = parts
        self._dtype = codec.natural_dtype(encoding)

    def start_bundle(self) -> None:
        self._rows: dict[int, list[tuple[int, Embedded]]] = {}
        self._count = 0

    def process(self, e: Embedded) -> Iterator[dict]:
        id_ = chunk_id(e.document_id, e.chunk_index)
        self._rows.setdefault(int(part_of(id_, self._parts)), []).append((id_, e))
        self._count += 1
        if self._count >= RUN_ROWS:
            yield from self._flush()

    def finish_bundle(self) -> Iterator:
        for ref in self._flush():
            yield GlobalWindows.windowed_value(ref)

    def _flush(self) -> Iterator[dict]:
        rows, self._rows, self._count = self._rows, {}, 0
        for part, items in sorted(rows.items()):
            yield self._write_run(part, items)

    def _write_run(self, part: int, items: list[tuple[int, Embedded]]) -> dict:
        table = _run_table(items, self._dtype)
        fresh = [e for _, e in items if not _is_reused(e)]
        width = int(np.asarray(fresh[0].vector).size) if fresh else 0
        path = f"{self._staging}/{RUNS}/part-{part:05d}/{uuid.uuid4().hex}.parquet"
        write_bytes(path, parquet_bytes(table, row_group_size=None))
        return {"part": part, "path": path, "rows": len(items), "width": width}
