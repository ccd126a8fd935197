"""A segmented index: the main index, a small delta segment and tombstones, searched as one.

An updated version (``indexes.updates.folder``) keeps the previous version's main index files as
they are (hard links) and adds two small files:

- ``delta.faiss``: the vectors added or changed since the main index was built, in an
  exact index of the same family (``IDMap2,Flat`` for floats, ``IDMap2,SQ8_direct_signed``
  for int8, ``IDMap,BFlat`` for bits), so its scores are comparable with the main index's;
- ``tombstones.npy``: the sorted ids of the main index that no longer count (deleted
  chunks, and changed ones whose new vector is in the delta).

``SegmentedIndex`` searches both and merges by score: the main index is searched with
the tombstones excluded (an ``IDSelectorNot`` inside the search where the index takes a
selector; otherwise it oversamples by the number of tombstones and drops them), the
delta exactly, and each query keeps its k best (highest inner product, lowest Hamming
distance). ``indexes.ann.search.search`` treats it like any index, so filters and rescoring
work unchanged, and every reader (``open_index``, ``Searcher``, the service,
``evaluate``) sees one index.
"""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import IndexFolderError
from indexes.ann.spec import IndexSpec, family_of

__all__ = [
    "DELTA",
    "TOMBSTONES",
    "SegmentedIndex",
    "delta_factory",
    "make_delta",
    "read_tombstones",
    "write_tombstones",
]

DELTA = "delta.faiss"
TOMBSTONES = "tombstones.npy"


def delta_factory(encoding: str) -> str:
    """The exact index a delta segment of ``encoding`` vectors is held in."""
    family = family_of(encoding)
    if family == "binary":
        return "IDMap,BFlat"
    if family == "int8":
        return "IDMap2,SQ8_direct_signed"
    return "IDMap2,Flat"


def make_delta(spec: IndexSpec, xb: np.ndarray, ids: np.ndarray):
    """An exact delta index holding ``xb`` (natural dtype, as the parts store them)."""
    from indexes.ann.spec import make_index
    from indexes.ann.train import add_vectors

    dspec = IndexSpec(
        encoding=spec.encoding,
        dimensions=spec.dimensions,
        count=max(int(ids.size), 1),
        factory=delta_factory(spec.encoding),
    )
    index = make_index(dspec)
    if ids.size:
        add_vectors(index, xb, np.ascontiguousarray(ids, dtype=np.int64), dspec)
    return index


def write_tombstones(ids: np.ndarray, path: str | os.PathLike) -> None:
    np.save(path, np.unique(np.asarray(ids, dtype=np.int64)))


def read_tombstones(path: str | os.PathLike) -> np.ndarray:
    t = np.load(Path(path), allow_pickle=False)
    if t.dtype != np.int64 or t.ndim != 1 or (t.size > 1 and not (t[1:] > t[:-1]).all()):
        raise IndexFolderError(f"{path}: tombstones must be sorted unique int64 ids")
    return t


class SegmentedIndex:
    """``main`` (any FAISS index of the folder's family) minus ``tombstones`` plus
    ``delta``: ``ntotal`` is the live count, ``search`` merges both segments by score."""

    def __init__(self, main, delta, tombstones: np.ndarray, *, metric: str) -> None:
        self.main = main
        self.delta = delta
        self.tombstones = np.asarray(tombstones, dtype=np.int64)
        self.metric = metric
        self.d = main.d
        self.ntotal = int(main.ntotal - self.tombstones.size + delta.ntotal)
        self._not = None
        if self.tombstones.size:
            self._batch = faiss.IDSelectorBatch(self.tombstones)
            self._not = faiss.IDSelectorNot(self._batch)

    @property
    def binary(self) -> bool:
        return self.metric == "hamming"

    def raw_search(self, x: np.ndarray, k: int, params: dict[str, int], allowed, raw):
        """D, I, filter mode: ``raw`` is ``indexes.ann.search._raw_search`` (one segment)."""
        k = max(1, min(k, max(self.ntotal, 1)))
        Dm, Im, mode = self._search_main(x, k, params, allowed, raw)
        if self.delta.ntotal:
            Dd, Id, dmode = raw(self.delta, x, k, {}, allowed)
            mode = mode if mode != "none" else dmode
            D, I = _merge(Dm, Im, Dd, Id, k, self.binary)  # noqa: E741
        else:
            D, I = _merge(Dm, Im, None, None, k, self.binary)  # noqa: E741
        return D, I, mode

    def _search_main(self, x, k, params, allowed, raw):
        if not self.tombstones.size or self.main.ntotal == 0:
            if self.main.ntotal == 0:
                return None, None, "none"
            return raw(self.main, x, k, params, allowed)
        if allowed is not None:  # the tombstones are simply not allowed
            allowed = np.setdiff1d(allowed, self.tombstones, assume_unique=True)
            if allowed.size == 0:
                return None, None, "selector"
            return raw(self.main, x, k, params, allowed)
        from indexes.ann.search import _filterable, _search_parameters, set_search_params

        if _filterable(self.main):
            if isinstance(self.main, faiss.IndexBinary | faiss.IndexBinaryShards):
                if params:
                    set_search_params(self.main, params)
                sp = faiss.SearchParameters(sel=self._not)
            else:
                sp = _search_parameters(self.main, params, self._not)
            D, I = self.main.search(x, k, params=sp)  # noqa: E741
            return D, I, "none"
        # Binary IVF / HNSW take no selector: fetch k more per tombstone and drop them.
        if params:
            set_search_params(self.main, params)
        fetch = min(self.main.ntotal, k + self.tombstones.size)
        while True:
            D, I = self.main.search(x, fetch)  # noqa: E741
            dead = np.isin(I, self.tombstones) | (I < 0)
            if (~dead).sum(axis=1).min() >= k or fetch >= self.main.ntotal:
                break
            fetch = min(self.main.ntotal, fetch * 4)
        worst = np.iinfo(D.dtype).max if D.dtype.kind == "i" else -np.inf
        D = np.where(dead, worst, D)
        I = np.where(dead, -1, I)  # noqa: E741
        return D, I, "none"


def _merge(Dm, Im, Dd, Id, k: int, binary: bool):
    """Each query's k best of both segments (missing rows: id -1 at the worst score)."""
    Ds = [d for d in (Dm, Dd) if d is not None]
    Is = [i for i in (Im, Id) if i is not None]
    if not Ds:
        raise IndexFolderError("a segmented index with no segment to search")
    D = np.hstack(Ds).astype(np.float64 if not binary else np.int64)
    I = np.hstack(Is)  # noqa: E741
    worst = np.iinfo(np.int64).max if binary else -np.inf
    D = np.where(I < 0, worst, D)
    order = np.argsort(D if binary else -D, axis=1, kind="stable")[:, :k]
    D = np.take_along_axis(D, order, axis=1)
    I = np.take_along_axis(I, order, axis=1)  # noqa: E741
    if binary:
        D = np.where(I < 0, np.iinfo(np.int32).max, D).astype(np.int32)
    else:
        D = np.where(I < 0, np.nan, D).astype(np.float32)
    return D, I
