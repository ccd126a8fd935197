"""Exact ground truth over a folder's parts, one part in memory at a time.

``streaming_reference`` gives the same answer as ``indexes.building.tune.reference_neighbours``
over the whole folder (the true k nearest by the most precise vectors the folder holds:
float rescoring vectors, else int8 ones, else the index's own encoding), but searches
part after part, a bounded batch of rows at a time, and keeps a running top k, so
measuring recall at build time needs the memory of one batch, not of a part or of N
vectors.
"""

from __future__ import annotations

import numpy as np

from indexes.ann.spec import family_of
from indexes.ann.train import prepare_queries, prepare_vectors
from indexes.building.tune import exact_search
from indexes.storage.part_reader import Parts

__all__ = ["REFERENCE_BATCH_ROWS", "best_first", "streaming_reference", "streaming_topk"]

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
            # a compressed float index keeps no rescore column: its vectors are the floats
            (lambda xb, rv: prepare_vectors(xb if rv is None else rv, "float", d)),
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
    _, I, ref = streaming_topk(parts, xq, k, exclude=exclude, batch_rows=batch_rows)  # noqa: E741
    return I, ref


def streaming_topk(
    parts,
    xq: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    batch_rows: int = REFERENCE_BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``streaming_reference`` with the scores: (D, I, description), (nq, k) each, best
    first (-1 ids pad rows with fewer than k vectors). ``parts``: anything with
    ``dimensions``, ``encoding``, ``rescore_dtype`` and ``iter_vectors(batch_rows=)``."""
    qr, family, ref, prepare = _prepared(parts, xq)
    want = k + (0 if exclude is None else 1)
    nq = qr.shape[0]
    best_d = np.empty((nq, 0), dtype=np.float32)
    best_i = np.empty((nq, 0), dtype=np.int64)
    for ids, xb, rv in parts.iter_vectors(batch_rows=batch_rows):
        D, I = exact_search(prepare(xb, rv), ids, qr, want, family=family)  # noqa: E741
        best_d = np.hstack([best_d, D.astype(np.float32)])
        best_i = np.hstack([best_i, I])
        best_d, best_i = best_first(best_d, best_i, want, binary=family == "binary")
    if exclude is not None:
        own = best_i == np.asarray(exclude, dtype=np.int64)[:, None]
        best_i = np.where(own, -1, best_i)
        best_d, best_i = best_first(best_d, best_i, want, binary=family == "binary")
    return best_d[:, :k], best_i[:, :k], ref


def best_first(
    scores: np.ndarray, ids: np.ndarray, k: int, *, binary: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best (higher inner product, lower Hamming distance first; ties by id,
    as one flat index over the folder, ids ascending, orders them; -1 ids last)."""
    key = scores if binary else -scores
    order = np.lexsort((ids, key, ids < 0), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
