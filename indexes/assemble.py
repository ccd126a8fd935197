"""Assembling an index folder from shards built elsewhere (by the index job's workers).

Each shard is its metadata and its vectors (Parquet) and, for IVF indexes, a FAISS
shard (a copy of the trained index with that shard's vectors added). ``assemble_folder``
takes the steps ``build_folder`` takes after adding its shards: the inputs checked and
sorted by id (``indexes.tables.folder_data``), the shards combined in memory
(``indexes.shards.combine_shards``: IVF lists merged, or every vector added once to a
flat or graph index) and the folder written (``indexes.writer.write_folder``): same
files, same manifest, same recall measurement.
Files are read through a ``read`` callable (local files by default; the index job passes
one that reads any Beam filesystem), so shards may live anywhere.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexes import build
from indexes.choose import IndexSpec
from indexes.config import BuildConfig
from indexes.manifest import Manifest
from indexes.shards import combine_shards
from indexes.tables import column_array, folder_data
from indexes.writer import new_folder, write_folder
from inference import codec
from inference.errors import IndexFolderError

__all__ = ["assemble_folder", "expand_metadata_json"]


def _read_local(path: str) -> bytes:
    return Path(path).read_bytes()


def expand_metadata_json(table: pa.Table) -> pa.Table:
    """Turn a ``metadata_json`` column (one JSON object a row) into one column a key.

    Values keep their types where a column's values agree, else become strings.
    """
    if "metadata_json" not in table.column_names:
        return table
    rows = [json.loads(s) if s else {} for s in table.column("metadata_json").to_pylist()]
    table = table.drop_columns(["metadata_json"])
    keys = sorted({k for r in rows for k in r} - set(table.column_names))
    for key in keys:
        values = [r.get(key) for r in rows]
        try:
            column = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            column = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        table = table.append_column(key, column)
    return table


def _read_shards(
    shards: Sequence[dict], spec: IndexSpec, read: Callable[[str], bytes]
) -> tuple[list, pa.Table, np.ndarray, np.ndarray | None]:
    """(IVF shard indexes in shard order, the metadata tables joined with their
    ``metadata_json`` expanded, the vectors joined, the rescoring vectors joined or
    None) of ``shards``."""
    dtype = codec.natural_dtype(spec.encoding)
    parts, tables, xbs, rvs = [], [], [], []
    for shard in shards:
        if shard.get("index"):
            parts.append(build.deserialize_index(read(shard["index"]), spec.encoding))
        tables.append(pq.read_table(io.BytesIO(read(shard["metadata"]))))
        vt = pq.read_table(io.BytesIO(read(shard["vectors"])))
        xbs.append(column_array(vt, "vector", dtype))
        if "rescore" in vt.column_names:  # rescoring vectors derived on the workers
            rvs.append(column_array(vt, "rescore", _rescore_dtype(vt)))
        if not np.array_equal(vt.column("id").to_numpy(), tables[-1].column("id").to_numpy()):
            raise IndexFolderError(f"shard {shard['index']}: vectors and metadata ids differ")
    table = expand_metadata_json(pa.concat_tables(tables, promote_options="default"))
    if rvs and len(rvs) != len(xbs):
        raise IndexFolderError("some shards have rescoring vectors and others do not")
    return parts, table, np.concatenate(xbs), np.concatenate(rvs) if rvs else None


def _rescore_dtype(table: pa.Table) -> np.dtype:
    value_type = table.schema.field("rescore").type.value_type
    return np.dtype(np.int8) if value_type == pa.int8() else np.dtype(np.float32)


def assemble_folder(
    path: str | os.PathLike,
    *,
    spec: IndexSpec,
    trained: bytes,
    shards: Sequence[dict],
    model: str,
    endpoint: str | None = None,
    api_version: str | None = None,
    input_type: str | None = None,
    config: BuildConfig | None = None,
    read: Callable[[str], bytes] | None = None,
) -> Manifest:
    """Merge ``shards`` (dicts with ``metadata``, ``vectors`` and, for IVF, ``index`` file
    paths) into an index folder at ``path``. ``trained`` is the serialised empty trained
    index the shards were copied from. The shards are always merged in memory
    (``config.merge`` is not used)."""
    config = config or BuildConfig()
    read = read or _read_local
    if not shards:
        raise IndexFolderError("no shards to assemble")
    parts, table, xb, rescore = _read_shards(shards, spec, read)
    if spec.nlist and sum(p.ntotal for p in parts) != table.num_rows:
        raise IndexFolderError(
            f"the shard indexes hold {sum(p.ntotal for p in parts)} vectors, "
            f"their tables {table.num_rows}"
        )
    config.apply_threads()
    data = folder_data(
        xb, table, encoding=spec.encoding, dimensions=spec.dimensions, rescore_vectors=rescore
    )
    out = new_folder(path)
    combined = combine_shards(
        out, spec=spec, trained=trained, parts=parts, xb=data.xb, ids=data.ids
    )
    del parts
    return write_folder(
        out,
        combined,
        spec,
        data,
        config=config,
        model=model,
        endpoint=endpoint,
        api_version=api_version,
        input_type=input_type,
    )
