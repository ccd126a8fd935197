"""Metadata rows by id at memory speed: a version's metadata as one memory-mapped Arrow file.

A hit's row used to be read from its part's Parquet file: the row group holding it was
decompressed and decoded whole (1,024 rows) for the one row, 0.6 to 1.5 ms a hit. A
version's metadata is also kept as one uncompressed Arrow IPC file, in id order, which is
memory-mapped: finding a row is a binary search in the mapped ``id`` column, and reading
it touches only that row's bytes in each column (microseconds a hit, at any corpus size
and part count: one file, so the same few column views serve every hit). Nothing is
loaded whole: the kernel pages in what is read, and can drop it again.

The file is derived from the parts' Parquet files (a layered version's live rows: base
minus removed plus delta) the first time a reader opens the version (``RowFile.open``),
streamed part by part, and kept beside the version's files::

    <version>/.rows/rows.<first 16 hex of the manifest's digest>.arrow

so that it lives and dies with its version (and a cached copy of an object-store version,
``indexes.storage.remote_versions``); it is not listed in the manifest, which describes
what the job wrote. A folder that cannot be written to keeps it under the cache
(``CORPUSBEAM_CACHE``, default ``~/.cache/corpusbeam``) in ``rows/``, named by the whole
digest. It is written under a temporary name and renamed into place, so readers racing
to derive it each see a whole file; one whose recorded digest or row count disagrees is
derived again.
"""

from __future__ import annotations

import bisect
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from corpusbeam.errors import IndexFolderError

__all__ = ["ROWS_DIR", "RowFile", "derive_rows", "rows_path"]

log = logging.getLogger(__name__)

ROWS_DIR = ".rows"
_BATCH_ROWS = 65_536  # record batches this long keep every string column's offsets int32
_DIGEST = b"corpusbeam.manifest_digest"
_CACHE_ENV = "CORPUSBEAM_CACHE"  # indexes.storage.remote_versions.CACHE_ENV


def rows_path(folder: Path, digest: str) -> Path:
    """Where the version ``folder`` (manifest ``digest``) keeps its Arrow rows file."""
    return folder / ROWS_DIR / f"rows.{digest[:16]}.arrow"


def _cache_path(digest: str) -> Path:
    env = os.environ.get(_CACHE_ENV)
    root = Path(env) if env else Path.home() / ".cache" / "corpusbeam"
    return root / "rows" / f"{digest}.arrow"


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns (null where it has none), types and order."""
    n = table.num_rows
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def derive_rows(
    tables: Iterable[pa.Table], schemas: Sequence[pa.Schema], target: Path, digest: str
) -> None:
    """Write ``tables`` (a version's metadata part by part, in id order, with these
    ``schemas``) as the Arrow file ``target``, one part in memory at a time, under a
    temporary name first."""
    schema = pa.unify_schemas(
        [s.remove_metadata() for s in schemas], promote_options="permissive"
    ).with_metadata({_DIGEST: digest.encode()})
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for table in tables:
                writer.write_table(_conform(table, schema), max_chunksize=_BATCH_ROWS)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# Arrow's fixed-width types as ``memoryview.cast`` formats: indexing such a view gives a
# Python int or float directly, with no numpy scalar in between.
_FORMATS = {
    pa.int8(): "b",
    pa.int16(): "h",
    pa.int32(): "i",
    pa.int64(): "q",
    pa.uint8(): "B",
    pa.uint16(): "H",
    pa.uint32(): "I",
    pa.uint64(): "Q",
    pa.float32(): "f",
    pa.float64(): "d",
}


def _getter(col: pa.Array):
    """A function of a row number to ``col``'s value there, as ``to_pylist`` gives it,
    reading the mapped buffers directly: well under a microsecond a value, where a
    pyarrow call costs tens (``Scalar.as_py``, which serves the other types)."""
    bufs, off = col.buffers(), col.offset
    t = col.type
    if t in _FORMATS:
        values = memoryview(bufs[1]).cast("B").cast(_FORMATS[t])
        get = lambda i: values[off + i]  # noqa: E731
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        ends = memoryview(bufs[1]).cast("B").cast("q" if pa.types.is_large_string(t) else "i")
        data = memoryview(bufs[2] if bufs[2] is not None else b"")
        get = lambda i: str(data[ends[off + i] : ends[off + i + 1]], "utf-8")  # noqa: E731
    else:
        return lambda i: col[i].as_py()
    if col.null_count == 0:
        return get
    bits = memoryview(bufs[0])
    return lambda i: get(i) if bits[(off + i) >> 3] >> ((off + i) & 7) & 1 else None


class RowFile:
    """A version's metadata rows, memory-mapped, found by id. Thread-safe (read-only)."""

    def __init__(self, path: Path, batches: Sequence[pa.RecordBatch]) -> None:
        self.path = path
        self._batches = [b for b in batches if b.num_rows]
        # The mapped id column of each batch (no copy) and each batch's first id.
        self._ids = [b.column("id").to_numpy() for b in self._batches]
        self._firsts = [int(a[0]) for a in self._ids]
        self._names = self._batches[0].schema.names if self._batches else []
        self._getters = [[_getter(c) for c in b.columns] for b in self._batches]

    @property
    def rows(self) -> int:
        return sum(b.num_rows for b in self._batches)

    @classmethod
    def open(cls, folder: Path, parts, *, digest: str) -> RowFile | None:
        """The Arrow rows file of the version ``folder`` whose tables are ``parts``
        (``Parts`` or ``LayeredParts``), derived first when there is none (or a stale
        one); None when it can be neither read nor written (the caller reads the parts)."""
        for target in (rows_path(folder, digest), _cache_path(digest)):
            got = cls._read(target, digest, parts.count)
            if got is not None:
                return got
            try:
                derive_rows(parts.iter_tables(), parts.schemas(), target, digest)
            except OSError as exc:
                log.info("%s: cannot write %s (%s)", folder, target, exc)
                continue
            got = cls._read(target, digest, parts.count)
            if got is not None:
                return got
        return None

    @classmethod
    def _read(cls, target: Path, digest: str, rows: int) -> RowFile | None:
        """The mapped file at ``target`` if it is whole and of this version."""
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(target), "r"))
            if (reader.schema.metadata or {}).get(_DIGEST) != digest.encode():
                return None
            got = cls(target, [reader.get_batch(i) for i in range(reader.num_record_batches)])
        except (OSError, ValueError, pa.ArrowInvalid):
            return None
        return got if got.rows == rows else None

    def row(self, id_: int) -> dict:
        """The row of ``id_``: two binary searches (the batch, the row in it) and one
        read of each value; IndexFolderError when the part does not hold it."""
        b = bisect.bisect_right(self._firsts, id_) - 1 if len(self._ids) > 1 else 0
        have = self._ids[max(b, 0)] if self._ids else np.empty(0, np.int64)
        p = int(np.searchsorted(have, id_))
        if p >= have.size or have[p] != id_:
            raise IndexFolderError(f"{self.path}: id {id_} is not in this version")
        return dict(zip(self._names, [get(p) for get in self._getters[b]], strict=True))

    def lookup(self, ids: np.ndarray) -> list[dict]:
        """The row of each id (in the order given), as ``row`` finds it."""
        return [self.row(i) for i in np.asarray(ids, dtype=np.int64).ravel().tolist()]
