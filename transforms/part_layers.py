"""What the part writer needs to write a part as a layer over the previous version's base.

In layered mode (``indexes.storage.layers``) a worker writing part ``s`` keeps the base's rows that
this run reproduces exactly (same id, same content, same metadata) where they are, and
writes only the rest: the delta part (added, changed, moved rows) and the base ids that no
longer count. These helpers read through Beam's filesystems, so they work on any store.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpusbeam.errors import IndexFolderError
from corpusbeam.inference import codec
from indexes.storage.layers import part_number, removed_name
from indexes.storage.part_files import (
    DIGESTS_SUFFIX,
    METADATA_SUFFIX,
    RESCORE_SUFFIX,
    VECTORS_SUFFIX,
    file_entry,
)
from indexes.storage.tables import column_array
from transforms.previous import PreviousVersion

__all__ = [
    "Carried",
    "base_of",
    "base_rows",
    "carried_rows",
    "concat_metadata",
    "kept_in_base",
    "layered_ids",
    "layered_vectors",
    "read_base_metadata",
    "read_removed",
    "removed_entry",
]


def _read(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def base_of(previous: PreviousVersion, part: int) -> dict | None:
    """The previous version's base part ``part`` (its PartInfo dict), if it has one."""
    for info in previous.parts:
        if part_number(info["name"]) == part:
            return info
    return None


def read_base_metadata(previous: PreviousVersion, info: dict) -> pa.Table:
    """A base part's whole metadata table (read once by the worker writing that part)."""
    data = _read(f"{previous.folder}/{info['name']}{METADATA_SUFFIX}")
    return pq.read_table(io.BytesIO(data))


def read_removed(folder: str, entries) -> np.ndarray:
    """The ids of removed-id files (``{"file", ...}`` entries of ``folder``), joined."""
    arrays = [
        np.load(io.BytesIO(_read(f"{folder}/{e['file']}")), allow_pickle=False) for e in entries
    ]
    return np.concatenate(arrays) if arrays else np.empty(0, np.int64)


def base_rows(previous: PreviousVersion, info: dict, part: int) -> tuple[np.ndarray, np.ndarray]:
    """(every id of base part ``info``, ascending; those of its live rows that come from
    the files this run did not read, ``previous.skipped``), from one read of the part's
    ``id`` (and ``uri``) columns."""
    skipped = previous.skipped
    data = _read(f"{previous.folder}/{info['name']}{METADATA_SUFFIX}")
    t = pq.read_table(io.BytesIO(data), columns=["id", "uri"] if skipped else ["id"])
    ids = t.column("id").to_numpy()
    if not skipped:
        return ids, np.empty(0, np.int64)
    mask = pc.is_in(t.column("uri"), value_set=pa.array(list(skipped), type=pa.string()))
    unread = ids[pc.fill_null(mask, False).to_numpy(zero_copy_only=False)]
    mine = [r for r in previous.removed if part_number(r["file"].removesuffix(".npy")) == part]
    return ids, np.setdiff1d(unread, read_removed(previous.folder, mine))


@dataclass(frozen=True)
class Carried:
    """Rows of the live version's delta part that a layered update carries into its own
    delta part as they are: those of the files it did not read again. ``meta`` is their
    metadata (as the part stores it), ``xb`` their vectors, ``rv`` their rescoring
    vectors (or None), ``digests`` their metadata digests (or None), row for row."""

    meta: pa.Table
    xb: np.ndarray
    rv: np.ndarray | None
    digests: np.ndarray | None

    @property
    def ids(self) -> np.ndarray:
        return self.meta.column("id").to_numpy()


def _exists(path: str) -> bool:
    return FileSystems.exists(path)


def carried_rows(previous: PreviousVersion, part: int, encoding: str) -> Carried | None:
    """The live version's delta rows of part ``part`` from the files this run did not read
    (``previous.skipped``), or None when there are none. Those files are unchanged, so
    their rows are what reading them again would give; the delta is written anew each
    version, so they go into this version's delta part."""
    skipped = previous.skipped
    if not skipped:
        return None
    infos = [i for i in previous.delta_parts if part_number(i["name"]) == part]
    if not infos:
        return None
    name = f"{previous.folder}/{infos[0]['name']}"
    meta = pq.read_table(io.BytesIO(_read(name + METADATA_SUFFIX)))
    mask = pc.is_in(meta.column("uri"), value_set=pa.array(list(skipped), type=pa.string()))
    rows = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    if rows.size == 0:
        return None
    vectors = pq.read_table(io.BytesIO(_read(name + VECTORS_SUFFIX)), columns=["id", "vector"])
    if not np.array_equal(vectors.column("id").to_numpy(), meta.column("id").to_numpy()):
        raise IndexFolderError(f"{name}: its vectors and metadata hold other ids")
    xb = column_array(vectors, "vector", codec.natural_dtype(encoding))[rows]
    rv = digests = None
    if _exists(name + RESCORE_SUFFIX):
        rv = np.load(io.BytesIO(_read(name + RESCORE_SUFFIX)), allow_pickle=False)[rows]
    if _exists(name + DIGESTS_SUFFIX):
        digests = np.load(io.BytesIO(_read(name + DIGESTS_SUFFIX)), allow_pickle=False)[rows]
    return Carried(meta.take(pa.array(rows)), xb, rv, digests)


def concat_metadata(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two parts' metadata tables as one (columns of either; a column whose types differ
    between them becomes strings, as ``expand_metadata_json`` makes a mixed column)."""
    try:
        return pa.concat_tables([a, b], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    for name in set(a.column_names) & set(b.column_names):
        if a.schema.field(name).type != b.schema.field(name).type:
            a = a.set_column(a.column_names.index(name), name, a.column(name).cast(pa.string()))
            b = b.set_column(b.column_names.index(name), name, b.column(name).cast(pa.string()))
    return pa.concat_tables([a, b], promote_options="permissive")


def _same(a: pa.ChunkedArray | None, b: pa.ChunkedArray | None, n: int) -> np.ndarray:
    """Row by row: are the two columns' values equal (both null counts as equal; a missing
    column is all null)."""
    if a is None and b is None:
        return np.ones(n, dtype=bool)
    if a is None or b is None:
        present = a if a is not None else b
        return present.is_null().to_numpy(zero_copy_only=False)
    try:
        if a.type != b.type:
            b = b.cast(a.type)
        eq = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(a.is_null(), b.is_null())
        return pc.or_(eq, both_null).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # types that do not compare
        return np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)])


def kept_in_base(meta: pa.Table, reused: np.ndarray, base: pa.Table) -> np.ndarray:
    """Which rows of ``meta`` (this run's rows of a part, metadata columns, sorted by id)
    the base part holds exactly as they are: reused (same id and content hash) and every
    metadata column equal (a document that moved files, or whose metadata changed, is not
    kept: its new row goes to the delta)."""
    ids = meta.column("id").to_numpy()
    base_ids = base.column("id").to_numpy()
    keep = np.zeros(ids.size, dtype=bool)
    if base_ids.size == 0 or not reused.any():
        return keep
    pos = np.minimum(np.searchsorted(base_ids, ids), base_ids.size - 1)
    cand = np.flatnonzero(reused & (base_ids[pos] == ids))
    if cand.size == 0:
        return keep
    mine = meta.take(pa.array(cand))
    theirs = base.take(pa.array(pos[cand]))
    same = np.ones(cand.size, dtype=bool)
    for name in sorted(set(mine.column_names) | set(theirs.column_names)):
        a = mine.column(name) if name in mine.column_names else None
        b = theirs.column(name) if name in theirs.column_names else None
        same &= _same(a, b, cand.size)
    keep[cand[same]] = True
    return keep


def removed_entry(folder: str, part: int, removed: np.ndarray) -> dict | None:
    """Write part ``part``'s removed base ids (sorted int64) into the version's folder;
    returns the manifest's ``{"file", "count"}``, or None when there are none."""
    if removed.size == 0:
        return None
    name = removed_name(part)
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(removed, dtype=np.int64), allow_pickle=False)
    with FileSystems.create(f"{folder}/{name}") as f:
        f.write(out.getvalue())
    return {"file": name, "count": int(removed.size), "entry": file_entry(out.getvalue())}


def _removed(folder: str, ref: dict) -> np.ndarray:
    return read_removed(folder, [ref["removed"]] if ref.get("removed") else [])


def _batches(path: str, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    data = pq.ParquetFile(io.BytesIO(_read(path)))
    for batch in data.iter_batches(batch_size=batch_rows, columns=columns):
        yield pa.Table.from_batches([batch])


def layered_vectors(
    folder: str, ref: dict, encoding: str, batch_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of a layered part: the base's rows not removed, then the delta's
    (each ascending; the two not merged: training and adding need no global order)."""
    dtype = codec.natural_dtype(encoding)
    removed = _removed(folder, ref)
    base = ref.get("base")
    if base is not None:
        path = f"{ref['base_folder']}/{base['name']}{VECTORS_SUFFIX}"
        for t in _batches(path, ["id", "vector"], batch_rows):
            ids = t.column("id").to_numpy()
            keep = ~np.isin(ids, removed, assume_unique=True)
            yield ids[keep], column_array(t, "vector", dtype)[keep]
    if ref.get("info") is not None:
        path = f"{folder}/{ref['info']['name']}{VECTORS_SUFFIX}"
        for t in _batches(path, ["id", "vector"], batch_rows):
            yield t.column("id").to_numpy(), column_array(t, "vector", dtype)


def layered_ids(folder: str, ref: dict) -> np.ndarray:
    """Every id of a layered part (not sorted)."""
    out = []
    removed = _removed(folder, ref)
    base = ref.get("base")
    if base is not None:
        data = _read(f"{ref['base_folder']}/{base['name']}{VECTORS_SUFFIX}")
        ids = pq.read_table(io.BytesIO(data), columns=["id"]).column("id").to_numpy()
        out.append(ids[~np.isin(ids, removed, assume_unique=True)])
    if ref.get("info") is not None:
        data = _read(f"{folder}/{ref['info']['name']}{VECTORS_SUFFIX}")
        out.append(pq.read_table(io.BytesIO(data), columns=["id"]).column("id").to_numpy())
    return np.concatenate(out) if out else np.empty(0, np.int64)
