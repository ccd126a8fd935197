"""A part's vectors as the part writer assembles them: the runs' fresh vectors, the reused
rows' vectors read from the previous version's parts, the rescoring vectors, and the
carried rows merged in. Plain functions over arrays and files; no Beam transform."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusbeam.errors import ConfigError
from indexes.storage.tables import column_array
from transforms.build_index.staging import read_bytes
from transforms.part_layers import concat_metadata
from transforms.previous import PreviousVersion

__all__ = [
    "Old",
    "derived_rescore",
    "fill_reused",
    "fresh_vectors",
    "int8_rescore",
    "merged",
    "previous_vectors",
    "take_vectors",
]


class Old(NamedTuple):
    """The previous version's rows a part reuses: ids ascending, vectors and rescoring
    vectors (None: none read, or no rescoring vectors) row for row."""

    ids: np.ndarray
    xb: np.ndarray | None
    rv: np.ndarray | None


_NONE = Old(np.empty(0, np.int64), None, None)


def previous_vectors(previous: PreviousVersion | None, want: np.ndarray, dtype) -> Old:
    """The previous version's rows among the ids ``want`` (sorted): its delta parts' rows
    first (a delta row wins over the base's of the same id), then its base parts' for the
    ids still missing, each read only in the row groups that hold them."""
    if previous is None or not want.size:
        return _NONE
    ids, xbs, rvs = [], [], []
    missing = want
    for infos in (previous.delta_parts, previous.parts):
        got = []
        for info in infos:
            if not missing.size:
                break
            lo = np.searchsorted(missing, info["id_min"])
            hi = np.searchsorted(missing, info["id_max"], side="right")
            if lo == hi:
                continue
            path = f"{previous.folder}/{info['name']}.vectors.parquet"
            t = pq.read_table(
                pa.BufferReader(read_bytes(path)), filters=[("id", "in", missing[lo:hi].tolist())]
            )
            if not t.num_rows:
                continue
            got.append(t.column("id").to_numpy())
            ids.append(got[-1])
            xbs.append(column_array(t, "vector", dtype))
            if "rescore" in t.column_names:
                rvs.append(column_array(t, "rescore", np.dtype(np.int8)))
        if got:
            missing = np.setdiff1d(missing, np.concatenate(got), assume_unique=True)
    if not ids:
        return _NONE
    rv = np.concatenate(rvs) if rvs and len(rvs) == len(ids) else None
    all_ids = np.concatenate(ids)
    order = np.argsort(all_ids, kind="stable")  # (no id twice: the base is read for the rest)
    return Old(all_ids[order], np.concatenate(xbs)[order], None if rv is None else rv[order])


def take_vectors(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """(``table`` without its vector column, that column's values flat): once the caller
    drops the whole table, the column's Arrow chunks are freed before the part is built
    (a part grows with the corpus)."""
    vectors = table.column("vector")
    rest = table.drop_columns(["vector"])
    values = vectors.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return rest, values


def fresh_vectors(
    values: np.ndarray, reused: np.ndarray, width: int, old: Old, dtype
) -> np.ndarray:
    """The part's vector array (one row a run row), its fresh rows filled from ``values``
    (the runs' flat vector values) and its reused rows still zero. ``width``: the runs'
    (0 when every row is reused: the previous version's)."""
    if width == 0 and old.xb is None:
        raise ConfigError("previous", None, "rows were marked reused, but no version is")
    width = width or old.xb.shape[1]
    xb = np.zeros((reused.size, width), dtype=dtype)
    xb[~reused] = values.astype(dtype, copy=False).reshape(-1, width)
    return xb


def fill_reused(
    xb: np.ndarray, ids: np.ndarray, reused: np.ndarray, old: Old, folder: str | None
) -> np.ndarray | None:
    """Copy the reused rows' vectors from the previous version's into ``xb``; returns each
    reused row's position in ``old`` (None when no row is reused)."""
    if not reused.any():
        return None
    want = ids[reused]
    pos = np.minimum(np.searchsorted(old.ids, want), max(old.ids.size - 1, 0))
    width = xb.shape[1]
    if old.xb is None or old.xb.shape[1] != width or not (old.ids[pos] == want).all():
        raise ConfigError(
            "previous",
            folder,
            "a reused id is missing from the previous version, or its width differs",
        )
    xb[reused] = old.xb[pos]
    return pos


def int8_rescore(xb: np.ndarray, encoding: str) -> np.ndarray:
    """An int8 index's rescoring vectors: its vectors' bytes, as int8."""
    return (xb.astype(np.int16) - 128).astype(np.int8) if encoding == "uint8" else xb


def derived_rescore(
    table: pa.Table, ids: np.ndarray, reused: np.ndarray, old_rv, pos
) -> np.ndarray | None:
    """The part's derived int8 rescoring vectors (binary indexes fed floats): fresh
    rows' from their runs, reused rows' from the previous version; None when no row
    carries one. Either every row carries one or none does."""
    col = table.column("rescore").combine_chunks() if "rescore" in table.column_names else None
    have = np.zeros(ids.size, dtype=bool)
    if col is not None:
        have = col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False) > 0
    from_old = reused & (old_rv is not None)
    if not have.any() and not from_old.any():
        return None
    if not (have | from_old).all():
        raise ConfigError("rescore", None, "some rows have rescoring vectors, others none")
    d = old_rv.shape[1] if old_rv is not None else len(col[int(np.argmax(have))])
    rv = np.zeros((ids.size, d), dtype=np.int8)
    if have.any():
        values = col.flatten().to_numpy(zero_copy_only=False)
        rv[have] = values.astype(np.int8).reshape(-1, d)
    if from_old.any():
        rv[from_old] = old_rv[pos[from_old[reused]]]
    return rv


def merged(meta, xb, rv, digests, c_meta, c_xb, c_rv, c_digests) -> tuple:
    """A part's rows and carried rows as one part's arrays, ids ascending."""
    ids = np.concatenate([meta.column("id").to_numpy(), c_meta.column("id").to_numpy()])
    order = np.argsort(ids, kind="stable")
    meta = concat_metadata(meta, c_meta).take(pa.array(order))
    xb = np.concatenate([xb, c_xb.astype(xb.dtype, copy=False)])[order]
    if (rv is None) != (c_rv is None):
        raise ConfigError("rescore", None, "some rows have rescoring vectors, others none")
    if rv is not None:
        rv = np.concatenate([rv, c_rv.astype(rv.dtype, copy=False)])[order]
    if digests is not None and c_digests is not None:
        digests = np.concatenate([digests, c_digests])[order]
    else:
        digests = None
    return meta, xb, rv, digests
