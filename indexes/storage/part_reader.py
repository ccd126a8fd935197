"""Reading a folder's parts back: ``Parts``, by id, by position or streamed part by part.

``lookup`` finds rows by id by picking the part from the manifest's id ranges
(``indexes.storage.part_ranges``) and the row group from the Parquet statistics, then
reading that row group only; ``iter_vectors`` streams part by part. The files read are
the ones ``indexes.storage.part_files`` writes; a folder written in layers (base, delta,
removed ids) is read as one ``Parts`` by ``indexes.storage.layer_reader``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference import codec
from indexes.memory import trim
from indexes.storage.npy_rows import RowFile
from indexes.storage.part_files import METADATA_SUFFIX, RESCORE_SUFFIX, VECTORS_SUFFIX
from indexes.storage.part_ranges import PartInfo
from indexes.storage.tables import column_array

__all__ = ["Parts"]

_CACHED_GROUPS = 64


class _Rows:
    """Rows of several (n_i, d) arrays (memory-mapped parts) as one (sum n_i, d) array that
    ``RescoreStore`` indexes with sorted row numbers."""

    def __init__(self, arrays: Sequence[np.ndarray], dimensions: int, dtype: np.dtype) -> None:
        self._arrays = list(arrays)
        self._offsets = np.cumsum([0, *(a.shape[0] for a in self._arrays)])
        self.shape = (int(self._offsets[-1]), dimensions)
        self.ndim = 2
        self.dtype = np.dtype(dtype)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.shape[1]), dtype=self.dtype)
        which = np.searchsorted(self._offsets, rows, side="right") - 1
        for p in np.unique(which):
            sel = which == p
            out[sel] = self._arrays[p][rows[sel] - self._offsets[p]]
        return out


class Parts:
    """Read-only access to a folder's parts, by id or streamed part by part."""

    def __init__(
        self,
        folder: Path,
        infos: Sequence[PartInfo],
        *,
        encoding: str,
        dimensions: int,
        rescore_dtype: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.infos = list(infos)
        self.encoding = encoding
        self.dimensions = dimensions
        self.rescore_dtype = rescore_dtype
        mins = [p.id_min for p in self.infos]
        if mins != sorted(mins) or any(
            a.id_max >= b.id_min for a, b in zip(self.infos, self.infos[1:], strict=False)
        ):
            raise IndexFolderError(f"{self.folder}: parts overlap or are out of id order")
        self._mins = np.array(mins, dtype=np.int64)
        self._files: dict[int, pq.ParquetFile] = {}
        self._group_mins: dict[int, np.ndarray] = {}
        self._groups: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self._filter_tables: dict[tuple[str, ...], pa.Table] = {}
        # A service searches from several threads: pyarrow's ParquetFile readers and the
        # row-group cache are not safe to share without it.
        self._lock = threading.RLock()

    @property
    def count(self) -> int:
        return sum(p.rows for p in self.infos)

    def path(self, number: int, suffix: str) -> Path:
        return self.folder / (self.infos[number].name + suffix)

    # ---- metadata ---------------------------------------------------------------------

    def metadata(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The metadata of every part, sorted by id (whole columns: for small folders,
        filters and rebuilds; a lookup reads only its rows' row groups)."""
        tables = []
        with self._lock:
            for i in range(len(self.infos)):
                pf = self._open(i)
                names = pf.schema_arrow.names
                cols = None if columns is None else [c for c in columns if c in names]
                tables.append(pf.read(columns=cols))
        if not tables:
            return pa.table({"id": pa.array([], type=pa.int64())})
        return pa.concat_tables(tables, promote_options="permissive")

    def schemas(self) -> list[pa.Schema]:
        """Each part's metadata schema (user columns may differ between parts)."""
        return [self._file(i).schema_arrow for i in range(len(self.infos))]

    def iter_tables(self) -> Iterator[pa.Table]:
        """Each part's whole metadata table, in id order (one part in memory at a time)."""
        for i in range(len(self.infos)):
            yield self._file(i).read()

    def iter_column(self, column: str) -> Iterator:
        """One metadata column's values in id order, streamed part by part and row group by
        row group (None for every row of a part without it): bounded memory."""
        for i in range(len(self.infos)):
            pf = self._file(i)
            if column not in pf.schema_arrow.names:
                yield from (None for _ in range(self.infos[i].rows))
                continue
            for g in range(pf.num_row_groups):
                yield from pf.read_row_group(g, columns=[column]).column(column).to_pylist()

    def filter_table(self, columns: Sequence[str]) -> pa.Table:
        """``id`` and ``columns`` of every part (cached): what a filter is evaluated on."""
        key = tuple(sorted({"id", *columns}))
        with self._lock:
            if key not in self._filter_tables:
                self._filter_tables[key] = self.metadata(key).combine_chunks()
            return self._filter_tables[key]

    def _file(self, i: int) -> pq.ParquetFile:
        with self._lock:
            return self._open(i)

    def _open(self, i: int) -> pq.ParquetFile:
        if i not in self._files:
            path = self.path(i, METADATA_SUFFIX)
            try:
                self._files[i] = pq.ParquetFile(path)
            except (OSError, pa.ArrowInvalid) as exc:
                raise IndexFolderError(f"{path}: cannot be read ({exc})") from None
        return self._files[i]

    def open_all(self) -> None:
        """Open every part's metadata file now (an open file outlives its deletion)."""
        for i in range(len(self.infos)):
            self._file(i)

    def _group_starts(self, i: int) -> np.ndarray:
        """The smallest id of each row group of part ``i`` (from the Parquet statistics)."""
        with self._lock:
            return self._starts(i)

    def _starts(self, i: int) -> np.ndarray:
        if i not in self._group_mins:
            meta = self._file(i).metadata
            col = meta.schema.to_arrow_schema().get_field_index("id")
            mins = []
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(col).statistics
                if stats is None or not stats.has_min_max:
                    mins = None
                    break
                mins.append(stats.min)
            if mins is None:  # no statistics: the id column tells the same
                ids = self._file(i).read(columns=["id"]).column("id").to_numpy()
                sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
                mins = ids[np.cumsum([0, *sizes[:-1]])].tolist()
            self._group_mins[i] = np.array(mins, dtype=np.int64)
        return self._group_mins[i]

    def _group(self, i: int, g: int) -> pa.Table:
        with self._lock:
            return self._cached_group(i, g)

    def _cached_group(self, i: int, g: int) -> pa.Table:
        key = (i, g)
        table = self._groups.get(key)
        if table is None:
            table = self._file(i).read_row_group(g)
            self._groups[key] = table
            if len(self._groups) > _CACHED_GROUPS:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(key)
        return table

    def lookup(self, ids: np.ndarray) -> list[dict]:
        """The metadata row of each id, in the order given; an id no part holds raises
        IndexFolderError."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        out: list[dict | None] = [None] * ids.size
        part = np.searchsorted(self._mins, ids, side="right") - 1
        for i in np.unique(part):
            sel = np.flatnonzero(part == i)
            if i < 0:
                raise IndexFolderError(f"{self.folder}: id {int(ids[sel[0]])} is in no part")
            groups = np.searchsorted(self._group_starts(int(i)), ids[sel], side="right") - 1
            for g in np.unique(groups):
                rows = sel[groups == g]
                table = self._group(int(i), int(max(g, 0)))
                have = table.column("id").to_numpy()
                pos = np.minimum(np.searchsorted(have, ids[rows]), max(have.size - 1, 0))
                found = have[pos] == ids[rows] if have.size else np.zeros(rows.size, bool)
                if not found.all():
                    missing = int(ids[rows][~found][0])
                    raise IndexFolderError(f"{self.folder}: id {missing} is in no part")
                for r, row in zip(rows, table.take(pa.array(pos)).to_pylist(), strict=True):
                    out[r] = row
        return out  # type: ignore[return-value]

    # ---- vectors ----------------------------------------------------------------------

    def iter_vectors(
        self, *, rescore: bool = True, batch_rows: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(ids, vectors, rescore vectors or None) of each part in id order; with
        ``batch_rows``, in pieces of at most that many rows (memory bounded by the piece,
        not by the part, which grows with the corpus)."""
        dtype = codec.natural_dtype(self.encoding)
        if batch_rows is not None and batch_rows < 1:
            raise ConfigError("batch_rows", batch_rows, "must be at least 1")
        for i in range(len(self.infos)):
            cols = ["id", "vector"]
            path = self.path(i, VECTORS_SUFFIX)
            # A compressed float index's rescoring vectors are its vectors: no column.
            if (
                rescore
                and self.rescore_dtype is not None
                and "rescore" in pq.read_schema(path).names
            ):
                cols.append("rescore")
            if batch_rows is None:
                tables = iter([pq.read_table(path, columns=cols)])
            else:
                pieces = pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=cols)
                tables = (pa.Table.from_batches([b]) for b in pieces)
            for t in tables:
                rv = None
                if "rescore" in cols:
                    rv = column_array(t, "rescore", np.dtype(self.rescore_dtype))
                yield t.column("id").to_numpy(), column_array(t, "vector", dtype), rv
                del t
            trim()  # hand the part's memory back, so streaming stays bounded

    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Every part's (ids, vectors, rescore vectors or None) joined: the whole folder in
        memory (rebuilds, evaluation); streaming readers use ``iter_vectors``."""
        got = list(self.iter_vectors())
        width = codec.wire_width(self.encoding, self.dimensions)
        if not got:
            empty = np.empty((0, width), dtype=codec.natural_dtype(self.encoding))
            return np.empty(0, np.int64), empty, None
        ids = np.concatenate([g[0] for g in got])
        xb = np.concatenate([g[1] for g in got])
        rv = None if got[0][2] is None else np.concatenate([g[2] for g in got])
        return ids, xb, rv

    def ids(self) -> np.ndarray:
        """Every id, ascending (8 bytes a row)."""
        cols = [
            pq.read_table(self.path(i, VECTORS_SUFFIX), columns=["id"]).column("id").to_numpy()
            for i in range(len(self.infos))
        ]
        return np.concatenate(cols) if cols else np.empty(0, np.int64)

    def rows(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(ids, vectors, rescore vectors) of the rows at ascending global ``positions``
        (row numbers in id order across parts), reading only the row groups they fall in."""
        positions = np.asarray(positions, dtype=np.int64)
        offsets = np.cumsum([0, *(p.rows for p in self.infos)])
        which = np.searchsorted(offsets, positions, side="right") - 1
        dtype = codec.natural_dtype(self.encoding)
        ids, xbs, rvs = [], [], []
        for i in np.unique(which):
            sel = positions[which == i] - offsets[i]
            path = self.path(int(i), VECTORS_SUFFIX)
            pf = pq.ParquetFile(path)
            cols = ["id", "vector"]
            if self.rescore_dtype is not None and "rescore" in pf.schema_arrow.names:
                cols.append("rescore")
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            starts = np.cumsum([0, *sizes])
            groups = np.unique(np.searchsorted(starts, sel, side="right") - 1)
            t = pf.read_row_groups([int(g) for g in groups], columns=cols)
            # Row numbers within the groups read, which are contiguous in the file's order.
            within = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups])
            t = t.take(pa.array(np.searchsorted(within, sel)))
            ids.append(t.column("id").to_numpy())
            xbs.append(column_array(t, "vector", dtype))
            if "rescore" in cols:
                rvs.append(column_array(t, "rescore", np.dtype(self.rescore_dtype)))
        width = codec.wire_width(self.encoding, self.dimensions)
        if not ids:
            empty = np.empty((0, width), dtype=dtype)
            return np.empty(0, np.int64), empty, None
        return np.concatenate(ids), np.concatenate(xbs), np.concatenate(rvs) if rvs else None

    def rescore_rows(self, *, mapped: bool = True) -> _Rows:
        """Every part's ``rescore.npy`` as one array of rows in id order: memory-mapped, or
        (``mapped=False``) read a row at a time with ``pread`` (``indexes.storage.npy_rows``)."""
        if self.rescore_dtype is None:
            raise ConfigError("rescore", None, "this folder holds no rescoring vectors")
        paths = [self.path(i, RESCORE_SUFFIX) for i in range(len(self.infos))]
        arrays = [np.load(f, mmap_mode="r") if mapped else RowFile(f) for f in paths]
        return _Rows(arrays, self.dimensions, np.dtype(self.rescore_dtype))
