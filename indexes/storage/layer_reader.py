"""Reading a folder's layered tables: ``LayeredParts``, base minus removed plus delta as one.

``open_parts`` opens a folder's tables as ``Parts`` (``indexes.storage.part_reader``), or,
when its manifest has an ``overlay`` (``indexes.storage.layers``: what the layers are,
how their files are named and how the manifest lists them), as ``LayeredParts``: ids
ascending, the same methods, so the index, recall, the lexical index and the readers see
one table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from corpusbeam.errors import IndexFolderError
from indexes.memory import trim
from indexes.storage.layers import part_number
from indexes.storage.part_ranges import PartInfo
from indexes.storage.part_reader import Parts

__all__ = ["LayeredParts", "open_parts"]


def _removed(folder: Path, overlay: dict) -> np.ndarray:
    arrays = []
    for r in overlay.get("removed", []):
        path = folder / r["file"]
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"{path}: cannot be read ({exc})") from None
        if a.dtype != np.int64 or a.ndim != 1 or a.size != int(r["count"]):
            raise IndexFolderError(f"{path}: expected {r['count']} int64 ids")
        arrays.append(a)
    return np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.int64)


def open_parts(
    folder: Path,
    infos: Sequence[PartInfo],
    overlay: dict | None,
    *,
    encoding: str,
    dimensions: int,
    rescore_dtype: str | None = None,
) -> Parts | LayeredParts:
    """The folder's tables: ``Parts``, or ``LayeredParts`` when it has an ``overlay``."""
    base = Parts(
        folder, infos, encoding=encoding, dimensions=dimensions, rescore_dtype=rescore_dtype
    )
    if not overlay:
        return base
    delta = Parts(
        folder,
        [PartInfo.from_dict(p) for p in overlay["parts"]],
        encoding=encoding,
        dimensions=dimensions,
        rescore_dtype=rescore_dtype,
    )
    return LayeredParts(base, delta, _removed(Path(folder), overlay))


def _in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether each of ``ids`` is in ``sorted_ids`` (ascending)."""
    if sorted_ids.size == 0:
        return np.zeros(np.shape(ids), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return sorted_ids[pos] == ids


class _LayeredRows:
    """Rows by logical position, from the base's and the delta's row arrays."""

    def __init__(self, base, delta, from_base: np.ndarray, row: np.ndarray) -> None:
        self._base, self._delta = base, delta
        self._from_base, self._row = from_base, row
        self.shape = (int(row.size), base.shape[1])
        self.ndim = 2
        self.dtype = base.dtype

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.shape[1]), dtype=self.dtype)
        fb = self._from_base[rows]
        for mask, src in ((fb, self._base), (~fb, self._delta)):
            if mask.any():
                want = self._row[rows[mask]]
                order = np.argsort(want, kind="stable")
                got = src[want[order]]
                sel = np.flatnonzero(mask)[order]
                out[sel] = got
        return out


class LayeredParts:
    """Base parts minus removed ids plus delta parts, read as one ``Parts`` (ids ascending)."""

    def __init__(self, base: Parts, delta: Parts, removed: np.ndarray) -> None:
        self.base, self.delta = base, delta
        self.removed = np.asarray(removed, dtype=np.int64)
        self.folder = base.folder
        self.encoding = base.encoding
        self.dimensions = base.dimensions
        self.rescore_dtype = base.rescore_dtype
        self._order: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._delta_ids: np.ndarray | None = None
        self._filter_tables: dict[tuple[str, ...], pa.Table] = {}

    @property
    def infos(self) -> list[PartInfo]:
        return self.base.infos + self.delta.infos

    @property
    def count(self) -> int:
        return self.base.count - int(self.removed.size) + self.delta.count

    def open_all(self) -> None:
        self.base.open_all()
        self.delta.open_all()

    # ---- the logical order ------------------------------------------------------------

    def _layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids ascending, whether each comes from the base, its row there)."""
        if self._order is None:
            base_ids = self.base.ids()
            keep = np.flatnonzero(~_in(self.removed, base_ids))
            delta_ids = self.delta.ids()
            ids = np.concatenate([base_ids[keep], delta_ids])
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
                raise IndexFolderError(f"{self.folder}: a delta id is also a live base id")
            from_base = order < keep.size
            if keep.size:  # (every base row removed: all rows are the delta's)
                row = np.where(from_base, keep[np.minimum(order, keep.size - 1)], 0)
            else:
                row = np.zeros(order.size, dtype=np.int64)
            row[~from_base] = order[~from_base] - keep.size
            self._order = (ids, from_base, row.astype(np.int64))
        return self._order

    def ids(self) -> np.ndarray:
        return self._layout()[0]

    def rows(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        positions = np.asarray(positions, dtype=np.int64)
        _, from_base, row = self._layout()
        fb = from_base[positions]
        got = []
        for mask, src in ((fb, self.base), (~fb, self.delta)):
            want = row[positions[mask]]
            order = np.argsort(want, kind="stable")
            got.append((np.flatnonzero(mask)[order], src.rows(want[order])))
        n = positions.size
        (sel_a, (ia, xa, ra)), (sel_b, (ib, xb, rb)) = got
        ids = np.empty(n, np.int64)
        xs = np.empty((n, xa.shape[1] if xa.size else xb.shape[1]), dtype=xa.dtype)
        ids[sel_a], ids[sel_b] = ia, ib
        xs[sel_a], xs[sel_b] = xa, xb
        rv = None
        if ra is not None or rb is not None:
            ref = ra if ra is not None else rb
            rv = np.empty((n, ref.shape[1]), dtype=ref.dtype)
            if ra is not None:
                rv[sel_a] = ra
            if rb is not None:
                rv[sel_b] = rb
        return ids, xs, rv

    def rescore_rows(self, *, mapped: bool = True) -> _LayeredRows:
        _, from_base, row = self._layout()
        return _LayeredRows(
            self.base.rescore_rows(mapped=mapped),
            self.delta.rescore_rows(mapped=mapped),
            from_base,
            row,
        )

    # ---- streamed, part by part -------------------------------------------------------

    def _numbers(self) -> list[tuple[int | None, int | None]]:
        """(base index, delta index) of each part number, in id order."""
        base = {part_number(p.name): i for i, p in enumerate(self.base.infos)}
        delta = {part_number(p.name): i for i, p in enumerate(self.delta.infos)}
        return [(base.get(n), delta.get(n)) for n in sorted(set(base) | set(delta))]

    def iter_vectors(
        self, *, rescore: bool = True, batch_rows: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(ids, vectors, rescore vectors or None) in id order, part by part: a base part's
        rows without the removed ones, the delta part's merged in."""
        for b, d in self._numbers():
            pending = None
            if d is not None:
                pending = next(_one_part(self.delta, d, rescore))
            if b is not None:
                for ids, xb, rv in _one_part(self.base, b, rescore, batch_rows):
                    keep = ~_in(self.removed, ids)
                    ids, xb = ids[keep], xb[keep]
                    rv = None if rv is None else rv[keep]
                    if pending is not None and ids.size:
                        take = pending[0] <= ids[-1]
                        now = tuple(None if a is None else a[take] for a in pending)
                        pending = tuple(None if a is None else a[~take] for a in pending)
                        ids, xb, rv = _merge((ids, xb, rv), now)
                    if ids.size:
                        yield ids, xb, rv
            if pending is not None and pending[0].size:
                yield pending
            trim()

    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        got = list(self.iter_vectors())
        ids = np.concatenate([g[0] for g in got])
        xb = np.concatenate([g[1] for g in got])
        rv = None if got[0][2] is None else np.concatenate([g[2] for g in got])
        return ids, xb, rv

    # ---- metadata ---------------------------------------------------------------------

    def _part_table(self, b: int | None, d: int | None, columns) -> pa.Table:
        tables = []
        if b is not None:
            t = _read_part(self.base, b, columns)
            keep = ~_in(self.removed, t.column("id").to_numpy())
            tables.append(t.filter(pa.array(keep)))
        if d is not None:
            tables.append(_read_part(self.delta, d, columns))
        t = pa.concat_tables(tables, promote_options="permissive")
        return t.sort_by("id")

    def metadata(self, columns: Sequence[str] | None = None) -> pa.Table:
        cols = None if columns is None else ["id", *(c for c in columns if c != "id")]
        tables = [self._part_table(b, d, cols) for b, d in self._numbers()]
        if not tables:
            return pa.table({"id": pa.array([], type=pa.int64())})
        t = pa.concat_tables(tables, promote_options="permissive")
        if columns is not None and "id" not in columns:
            t = t.drop_columns(["id"])
        return t

    def filter_table(self, columns: Sequence[str]) -> pa.Table:
        key = tuple(sorted({"id", *columns}))
        if key not in self._filter_tables:
            self._filter_tables[key] = self.metadata(key).combine_chunks()
        return self._filter_tables[key]

    def schemas(self) -> list[pa.Schema]:
        return self.base.schemas() + self.delta.schemas()

    def iter_tables(self) -> Iterator[pa.Table]:
        """Each part number's live rows (the base's not removed, the delta's), id order."""
        for b, d in self._numbers():
            yield self._part_table(b, d, None)

    def iter_column(self, column: str) -> Iterator:
        for b, d in self._numbers():
            t = self._part_table(b, d, ["id", column])
            if column not in t.column_names:
                yield from (None for _ in range(t.num_rows))
            else:
                yield from t.column(column).to_pylist()
            del t

    def lookup(self, ids: np.ndarray) -> list[dict]:
        """The metadata row of each id: the delta's when it has it, else the base's; a
        removed id raises IndexFolderError like an unknown one."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if self._delta_ids is None:
            self._delta_ids = self.delta.ids()
        in_delta = _in(self._delta_ids, ids)
        gone = ~in_delta & _in(self.removed, ids)
        if gone.any():
            raise IndexFolderError(f"{self.folder}: id {int(ids[gone][0])} was removed")
        out: list[dict | None] = [None] * ids.size
        for mask, src in ((in_delta, self.delta), (~in_delta, self.base)):
            sel = np.flatnonzero(mask)
            if sel.size:
                for i, row in zip(sel, src.lookup(ids[sel]), strict=True):
                    out[i] = row
        return out  # type: ignore[return-value]


def _read_part(parts: Parts, i: int, columns) -> pa.Table:
    pf = parts._file(i)
    names = pf.schema_arrow.names
    cols = None if columns is None else [c for c in columns if c in names]
    return pf.read(columns=cols)


def _one_part(parts: Parts, i: int, rescore: bool, batch_rows: int | None = None):
    """``parts.iter_vectors`` of its part ``i`` only."""
    single = Parts(
        parts.folder,
        [parts.infos[i]],
        encoding=parts.encoding,
        dimensions=parts.dimensions,
        rescore_dtype=parts.rescore_dtype,
    )
    return single.iter_vectors(rescore=rescore, batch_rows=batch_rows)


def _merge(a: tuple, b: tuple) -> tuple:
    """Two (ids, vectors, rescore) batches as one, in id order."""
    ids = np.concatenate([a[0], b[0]])
    order = np.argsort(ids, kind="stable")
    xb = np.concatenate([a[1], b[1]])[order]
    rv = None
    if a[2] is not None and b[2] is not None:
        rv = np.concatenate([a[2], b[2]])[order]
    return ids[order], xb, rv
