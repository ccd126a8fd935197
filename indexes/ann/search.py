"""Search an index: k nearest, filters inside the search, int8 / float rescoring.

``search(index, xq, k, encoding=..., d=...)`` returns a ``SearchResult`` with ``D`` and
``I`` (ids, -1 where fewer than k results exist). Scores: inner product (higher is
better) for float and int8 indexes, Hamming distance (lower is better) for binary ones,
and inner product with the float query once rescored.

Filtering: ``allowed_ids`` (from ``indexes.filters``) becomes an ``IDSelectorBatch``
inside the search for every index type that takes one (shard groups included); binary
IVF and HNSW indexes refuse selectors, so there the search oversamples and drops
disallowed ids, and the result says ``filter_mode="oversample"``.

Rescoring: ``rescore`` (a ``RescoreStore``: int8 or float32 vectors by id) fetches
``rescore_factor * k`` candidates from the compact index and ranks them by the dot
product of the float query with the stored vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.segments import SegmentedIndex
from indexes.ann.spec import family_of
from indexes.ann.train import prepare_queries

__all__ = [
    "RescoreStore",
    "SearchResult",
    "index_id_view",
    "ivf_ids",
    "search",
    "set_search_params",
]


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """``D``, ``I`` of shape (nq, k); how filtering was done; whether rescored."""

    D: np.ndarray
    I: np.ndarray  # noqa: E741 - FAISS's name for the result ids
    metric: str
    filter_mode: str = "none"
    rescored: bool = False
    candidates: int = 0


class RescoreStore:
    """Vectors for rescoring, looked up by id: ``ids`` sorted ascending, ``vectors`` (n, d)
    int8 or float32 in the same order (a memory-mapped array works: only the candidates'
    rows are read)."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, *, dimensions: int) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ConfigError("vectors", vectors.shape, f"expected ({ids.shape[0]}, d) rows")
        if vectors.shape[1] != dimensions:
            raise ConfigError("vectors", vectors.shape, f"expected {dimensions} columns")
        if vectors.dtype not in (np.int8, np.float32):
            raise ConfigError("vectors", vectors.dtype, "rescoring vectors are int8 or float32")
        if ids.shape[0] > 1 and not (ids[1:] > ids[:-1]).all():
            raise ConfigError("ids", "unsorted", "rescoring ids must be sorted and unique")
        self.ids = ids
        self.vectors = vectors
        self.dimensions = dimensions
        # int8 values are the reference endpoint's: x * 127 / int8_range(d).
        self.scale = codec.int8_range(dimensions) / 127.0 if vectors.dtype == np.int8 else 1.0

    def rows(self, I: np.ndarray) -> np.ndarray:  # noqa: E741
        """Row of each id in ``I`` (-1 where absent)."""
        pos = np.searchsorted(self.ids, I)
        pos = np.minimum(pos, max(self.ids.shape[0] - 1, 0))
        found = (I >= 0) & (self.ids[pos] == I) if self.ids.shape[0] else np.zeros_like(I, bool)
        return np.where(found, pos, -1)

    def score(self, xq: np.ndarray, I: np.ndarray) -> np.ndarray:  # noqa: E741
        """Dot products of float queries (nq, d) with the stored vectors of ids I (nq, c)."""
        rows = self.rows(I)
        flat = rows.ravel()
        ok = flat >= 0
        # Read the candidates' rows in ascending order (friendly to a memory map).
        order = np.unique(flat[ok])
        block = np.asarray(self.vectors[order], dtype=np.float32)
        where = np.searchsorted(order, flat[ok])
        vec = np.zeros((flat.shape[0], self.dimensions), dtype=np.float32)
        vec[ok] = block[where]
        vec = vec.reshape(I.shape[0], I.shape[1], self.dimensions)
        scores = np.einsum("qcd,qd->qc", vec, xq) * self.scale
        return np.where(rows >= 0, scores, -np.inf).astype(np.float32)


def index_id_view(index) -> np.ndarray | None:
    """The ids of an IDMap-wrapped index as a zero-copy int64 view, or None.

    When vectors were added in ascending id order this view is sorted, and a
    ``RescoreStore`` can use it instead of a second copy of the ids (8 bytes a vector).
    """
    if not isinstance(
        index,
        faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexBinaryIDMap | faiss.IndexBinaryIDMap2,
    ):
        return None
    n = index.id_map.size()
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return faiss.rev_swig_ptr(index.id_map.data(), n).view(np.int64)


def ivf_ids(index) -> np.ndarray | None:
    """The ids held by an IVF index's inverted lists, sorted (one copy, 8 bytes a vector),
    or None for another index type: a ``RescoreStore``'s ids without reading a table."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, AttributeError, TypeError):
        return None
    lists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def _inner(index):
    """The index that does the searching, under IDMap / PreTransform / Shards wrappers."""
    if isinstance(index, faiss.IndexShards | faiss.IndexBinaryShards):
        return _inner(index.at(0))
    if isinstance(index, faiss.IndexBinary):
        index = faiss.downcast_IndexBinary(index)
        if isinstance(index, faiss.IndexBinaryIDMap | faiss.IndexBinaryIDMap2):
            index = faiss.downcast_IndexBinary(index.index)
        return index
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def set_search_params(index, params: dict[str, int]) -> None:
    """Set ``nprobe`` / ``efSearch`` on an index (any wrapper, float or binary, shards)."""
    if isinstance(index, SegmentedIndex):  # the delta is exact: only the main index has any
        set_search_params(index.main, params)
        return
    for name, value in params.items():
        if name not in ("nprobe", "efSearch"):
            raise ConfigError("params", name, "known search parameters: nprobe, efSearch")
        if isinstance(index, faiss.IndexBinaryShards):
            for i in range(index.count()):
                set_search_params(index.at(i), params)
            continue
        if isinstance(index, faiss.IndexBinary):
            inner = _inner(index)
            if name == "nprobe" and isinstance(inner, faiss.IndexBinaryIVF):
                inner.nprobe = int(value)
            elif name == "efSearch" and isinstance(inner, faiss.IndexBinaryHNSW):
                inner.hnsw.efSearch = int(value)
            else:
                raise ConfigError("params", name, f"does not apply to {type(inner).__name__}")
            continue
        try:
            faiss.ParameterSpace().set_index_parameter(index, name, int(value))
        except RuntimeError:
            raise ConfigError("params", name, "does not apply to this index") from None


def _search_parameters(index, params: dict[str, int], sel):
    inner = _inner(index)
    if isinstance(inner, faiss.IndexIVF):
        p = faiss.SearchParametersIVF(sel=sel, nprobe=int(params.get("nprobe", inner.nprobe)))
    elif isinstance(inner, faiss.IndexHNSW):
        p = faiss.SearchParametersHNSW(
            sel=sel, efSearch=int(params.get("efSearch", inner.hnsw.efSearch))
        )
    else:
        p = faiss.SearchParameters(sel=sel)
    return p


def _filterable(index) -> bool:
    if isinstance(index, faiss.IndexBinary | faiss.IndexBinaryShards):
        return isinstance(_inner(index), faiss.IndexBinaryFlat)
    return True


def _raw_search(index, x: np.ndarray, k: int, params: dict[str, int], allowed):
    """One FAISS search; returns D, I, filter mode."""
    if isinstance(index, SegmentedIndex):  # main + delta - tombstones, merged by score
        return index.raw_search(x, k, params, allowed, _raw_search)
    k = max(1, min(k, max(index.ntotal, 1)))
    if allowed is None:
        if params:
            set_search_params(index, params)
        D, I = index.search(x, k)  # noqa: E741
        return D, I, "none"
    if _filterable(index):
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if isinstance(index, faiss.IndexBinary | faiss.IndexBinaryShards):
            if params:
                set_search_params(index, params)
            D, I = index.search(x, k, params=faiss.SearchParameters(sel=sel))  # noqa: E741
        else:
            D, I = index.search(x, k, params=_search_parameters(index, params, sel))  # noqa: E741
        return D, I, "selector"
    # Oversample and drop disallowed ids, widening until every query has k or all are seen.
    if params:
        set_search_params(index, params)
    want = k
    fetch = min(index.ntotal, k * 4)
    while True:
        D, I = index.search(x, fetch)  # noqa: E741
        keep = np.isin(I, allowed) & (I >= 0)
        if keep.sum(axis=1).min() >= want or fetch >= index.ntotal:
            break
        fetch = min(index.ntotal, fetch * 4)
    fill = np.iinfo(D.dtype).max if D.dtype.kind == "i" else np.nan
    D2 = np.full((x.shape[0], want), fill, dtype=D.dtype)
    I2 = np.full((x.shape[0], want), -1, dtype=np.int64)
    for q in range(x.shape[0]):
        cols = np.flatnonzero(keep[q])[:want]
        D2[q, : cols.size] = D[q, cols]
        I2[q, : cols.size] = I[q, cols]
    return D2, I2, "oversample"


def search(
    index,
    xq: np.ndarray,
    k: int,
    *,
    encoding: str,
    d: int,
    params: dict[str, int] | None = None,
    allowed_ids: np.ndarray | None = None,
    rescore: RescoreStore | None = None,
    rescore_factor: int = 4,
) -> SearchResult:
    """k nearest neighbours of ``xq`` (see the module docstring)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError("k", k, "must be a positive integer")
    if rescore_factor < 1:
        raise ConfigError("rescore_factor", rescore_factor, "must be >= 1")
    family = family_of(encoding)
    x = prepare_queries(xq, encoding, d)
    params = dict(params or {})
    if allowed_ids is not None:
        allowed_ids = np.unique(np.asarray(allowed_ids, dtype=np.int64))
        if allowed_ids.size == 0:
            shape = (x.shape[0], k)
            return SearchResult(
                D=np.full(shape, np.nan, dtype=np.float32),
                I=np.full(shape, -1, dtype=np.int64),
                metric="inner_product" if family != "binary" else "hamming",
                filter_mode="selector",
            )
    metric = "hamming" if family == "binary" else "inner_product"
    if rescore is None:
        D, I, mode = _raw_search(index, x, k, params, allowed_ids)  # noqa: E741
        D, I = _pad(D, I, k)  # noqa: E741
        return SearchResult(D=D, I=I, metric=metric, filter_mode=mode, candidates=k)
    xf = np.asarray(xq)
    if xf.dtype.kind != "f":
        raise ConfigError("xq", xf.dtype, "rescoring needs float queries")
    xf = np.ascontiguousarray(xf, dtype=np.float32)
    if xf.ndim != 2 or xf.shape[1] != d:
        raise ConfigError("xq", xf.shape, f"expected (nq, {d}) float queries")
    xf = xf / np.maximum(np.linalg.norm(xf, axis=1, keepdims=True), 1e-12)
    c = k * rescore_factor
    _, I, mode = _raw_search(index, x, c, params, allowed_ids)  # noqa: E741
    S = rescore.score(xf, I)
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    D = np.take_along_axis(S, order, axis=1)
    I = np.take_along_axis(I, order, axis=1)  # noqa: E741
    I = np.where(np.isfinite(D), I, -1)  # noqa: E741
    D, I = _pad(D, I, k)  # noqa: E741
    return SearchResult(
        D=D, I=I, metric="inner_product", filter_mode=mode, rescored=True, candidates=c
    )


def _pad(D: np.ndarray, I: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: E741
    if I.shape[1] >= k:
        return D[:, :k], I[:, :k]
    pad = k - I.shape[1]
    fill = np.iinfo(D.dtype).max if D.dtype.kind == "i" else np.nan
    D = np.hstack([D, np.full((D.shape[0], pad), fill, dtype=D.dtype)])
    I = np.hstack([I, np.full((I.shape[0], pad), -1, dtype=np.int64)])  # noqa: E741
    return D, I
