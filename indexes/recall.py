"""Exact ground truth over a folder's parts, one part in memory at a time.

``streaming_reference`` gives the same answer as ``indexes.tune.reference_neighbours``
over the whole folder (the true k nearest by the most precise vectors the folder holds:
float rescoring vectors, else int8 ones, else the index's own encoding), but searches
part after part, a bounded batch of rows at a time, and keeps a running top k, so
measuring recall at build time needs the memory of one batch, not of a part or of N
vectors.
"""

from __future__ import annotations

import numpy as np

from indexes.build import prepare_queries, prepare_vectors
from indexes.choose import family_of
from indexes.parts import Parts
from indexes.tune import drop_ids, exact_search

__all__ = ["REFERENCE_BATCH_ROWS", "streaming_reference"]

# Rows searched at a time: 200 queries x 32,768 rows of distances (26 MB) and the rows'
# vectors (32 MB at d = 256 float), whatever the size of a part.
REFERENCE_BATCH_ROWS = 32_768


def _prepared(parts: Parts, xq: np.ndarray):
    """(prepared queries, family, description, function preparing one part's vectors)."""
    d, encoding = parts.dimensions, parts.encoding
    if parts.rescore_dtype == "float32":
        qr = prepare_queries(np.asarray(xq, dtype=np.float32), "float", d)
        return (
            qr,
            "float",
            "exact inner product, float vectors",
            (lambda xb, rv: prepare_vectors(rv, "float", d)),
        )
    if parts.rescore_dtype == "int8":
        q = np.asarray(xq)
        qr = q.astype(np.float32) if q.dtype == np.int8 else prepare_queries(q, "int8", d)
        return (
            qr,
            "int8",
            "exact inner product, int8 vectors",
            (lambda xb, rv: rv.astype(np.float32)),
        )
    family = family_of(encoding)
    ref = {
        "float": "exact inner product, float vectors",
        "int8": "exact inner product, int8 vectors",
        "binary": "exact Hamming distance",
    }[family]
    return (
        prepare_queries(xq, encoding, d),
        family,
        ref,
        (lambda xb, rv: prepare_vectors(xb, encoding, d)),
    )


def streaming_reference(
    parts: Parts,
    xq: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    batch_rows: int = REFERENCE_BATCH_ROWS,
) -> tuple[np.ndarray, str]:
    """True k nearest ids of ``xq`` among every part's vectors, ids in ``exclude`` (one a
    query) left out, searching ``batch_rows`` rows at a time. Returns (I_gt (nq, k), a
    description of the reference)."""
    qr, family, ref, prepare = _prepared(parts, xq)
    want = k + (0 if exclude is None else 1)
    nq = qr.shape[0]
    best_d = np.empty((nq, 0), dtype=np.float32)
    best_i = np.empty((nq, 0), dtype=np.int64)
    for ids, xb, rv in parts.iter_vectors(batch_rows=batch_rows):
        D, I = exact_search(prepare(xb, rv), ids, qr, want, family=family)  # noqa: E741
        best_d = np.hstack([best_d, D.astype(np.float32)])
        best_i = np.hstack([best_i, I])
        # Higher inner product first, lower Hamming distance first; ties by id, as one
        # flat index over the folder (ids ascending) would order them.
        key = best_d if family == "binary" else -best_d
        order = np.lexsort((best_i, key), axis=1)[:, :want]
        best_d = np.take_along_axis(best_d, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
    return drop_ids(best_i, exclude, k), ref
