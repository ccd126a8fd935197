"""The two tables of an index folder: their schemas (defined here once) and conversions
(``indexes.storage.part_files`` writes them as id-range parts).

The metadata holds ``METADATA_COLUMNS`` then the user's columns; the vectors table holds
``id``, ``vector`` and optionally ``rescore`` as fixed-size lists (``vectors_schema``,
explicit, never inferred). ``folder_data`` checks a build's inputs and puts them in the one
order every file and index uses: ascending id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.spec import family_of
from indexes.storage.ids import chunk_ids

__all__ = [
    "METADATA_COLUMNS",
    "RECORD_DIGEST",
    "FolderData",
    "column_array",
    "fixed_size_list",
    "folder_data",
    "metadata_table",
    "vectors_schema",
]

METADATA_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.int64(),
    "document_id": pa.string(),
    "chunk": pa.int32(),
    "uri": pa.string(),
    "modality": pa.string(),
    "text": pa.string(),
    "char_start": pa.int64(),
    "char_end": pa.int64(),
    "content_hash": pa.string(),
}

# A record's digest (JSONL, CSV, Parquet): a metadata column of each of its rows, so an
# update can leave out the records the live version holds as they are (transforms.records).
RECORD_DIGEST = "_record_digest"

_ARROW = {
    np.dtype(np.float32): pa.float32(),
    np.dtype(np.int8): pa.int8(),
    np.dtype(np.uint8): pa.uint8(),
}


def metadata_table(metadata: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    """Normalise metadata to the folder's schema: the standard columns (missing ones null)
    with their types, then the user's columns; computes ``id`` from (document_id, chunk)
    when absent, and checks given ids against it."""
    table = metadata if isinstance(metadata, pa.Table) else pa.table(dict(metadata))
    for required in ("document_id", "chunk"):
        if required not in table.column_names:
            raise ConfigError("metadata", table.column_names, f"needs a {required} column")
    docs = table.column("document_id").to_pylist()
    chunks = table.column("chunk").to_pylist()
    ids = chunk_ids(docs, chunks)
    if "id" in table.column_names:
        given = np.asarray(table.column("id").to_numpy(zero_copy_only=False), dtype=np.int64)
        if not np.array_equal(given, ids):
            bad = int(np.flatnonzero(given != ids)[0])
            raise ConfigError("metadata.id", int(given[bad]), f"row {bad}: not chunk_id(doc, n)")
    columns: dict[str, pa.Array] = {}
    n = table.num_rows
    for name, dtype in METADATA_COLUMNS.items():
        if name == "id":
            columns[name] = pa.array(ids, type=dtype)
        elif name in table.column_names:
            try:
                columns[name] = table.column(name).cast(dtype)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ConfigError(
                    f"metadata.{name}", str(table.column(name).type), str(exc)
                ) from None
        else:
            columns[name] = pa.nulls(n, type=dtype)
    for name in table.column_names:
        if name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def fixed_size_list(x: np.ndarray) -> pa.FixedSizeListArray:
    """An (n, w) float32, int8 or uint8 array as a fixed-size list column of width w."""
    flat = pa.array(np.ascontiguousarray(x).reshape(-1), type=_ARROW[x.dtype])
    return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])


def vectors_schema(encoding: str, d: int, rescore_dtype: np.dtype | None) -> pa.Schema:
    """Explicit schema of vectors.parquet (fixed-size lists, never inferred)."""
    width = codec.wire_width(encoding, d)
    fields = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("vector", pa.list_(_ARROW[codec.natural_dtype(encoding)], width)),
    ]
    if rescore_dtype is not None:
        fields.append(pa.field("rescore", pa.list_(_ARROW[np.dtype(rescore_dtype)], d)))
    return pa.schema(fields)


def column_array(table: pa.Table, name: str, dtype: np.dtype) -> np.ndarray:
    """A fixed-size list column as a contiguous (n, width) array of ``dtype``."""
    col = table.column(name).combine_chunks()
    width = col.type.list_size
    values = col.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.astype(dtype, copy=False).reshape(-1, width))


@dataclass(frozen=True, kw_only=True)
class FolderData:
    """A build's checked inputs, every one sorted by ascending id."""

    table: pa.Table
    ids: np.ndarray
    xb: np.ndarray
    rescore_vectors: np.ndarray | None
    encoding: str
    dimensions: int


def folder_data(
    xb: np.ndarray,
    metadata: pa.Table | Mapping[str, Sequence[Any]],
    *,
    encoding: str,
    dimensions: int | None = None,
    rescore_vectors: np.ndarray | None = None,
) -> FolderData:
    """Check ``xb`` (natural dtype, one row a metadata row) and ``rescore_vectors`` ((n, d)
    int8 or float32; int8 indexes rescore against their own bytes when none are given),
    normalise the metadata and sort all of them by id."""
    codec.check_encoding(encoding)
    table = metadata_table(metadata)
    n = table.num_rows
    xb = np.asarray(xb)
    if xb.ndim != 2 or xb.shape[0] != n:
        raise ConfigError("xb", xb.shape, f"expected {n} rows, one per metadata row")
    if dimensions is None:
        dimensions = xb.shape[1] * (8 if encoding in codec.BIT_ENCODINGS else 1)
    width = codec.wire_width(encoding, dimensions)
    if xb.shape[1] != width:
        raise ConfigError("xb", xb.shape, f"{encoding} with {dimensions} dimensions has {width}")
    if rescore_vectors is not None:
        rescore_vectors = np.asarray(rescore_vectors)
        if rescore_vectors.shape != (n, dimensions) or rescore_vectors.dtype not in (
            np.int8,
            np.float32,
        ):
            raise ConfigError(
                "rescore_vectors",
                (rescore_vectors.shape, str(rescore_vectors.dtype)),
                f"expected int8 or float32 of shape ({n}, {dimensions})",
            )
    if rescore_vectors is None and family_of(encoding) == "int8":
        # int8 rescoring: the float query against the stored bytes themselves.
        rescore_vectors = (xb.astype(np.int16) - 128).astype(np.int8) if encoding == "uint8" else xb
    ids = table.column("id").to_numpy()
    order = np.argsort(ids, kind="stable")
    return FolderData(
        table=table.take(pa.array(order)),
        ids=ids[order],
        xb=xb[order],
        rescore_vectors=None if rescore_vectors is None else rescore_vectors[order],
        encoding=encoding,
        dimensions=dimensions,
    )
