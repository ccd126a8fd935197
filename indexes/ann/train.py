"""Train and add: an empty index for a spec, trained on a random sample, vectors added.

The piecewise build: ``train_index`` once on a random sample, ``serialize_index`` the
empty trained index and ship it (``indexes.ann.serialize``), ``add_vectors`` on each worker
into its copy (a shard, written with ``write_index``), then ``merge_indexes`` in memory,
``merge_ondisk`` for IVF indexes too big for RAM, or ``shard_group`` to search the shards
together (``indexes.ann.merge``).

Vectors come in the encoding's natural dtype (``corpusbeam.inference.codec``): float32
``(n, d)``, int8 / uint8 ``(n, d)``, packed bits uint8 ``(n, d/8)``. ``prepare_vectors``
turns them into what FAISS takes: unit-length float32, int8 values as float32 (uint8
shifted to its int8 twin), or the packed bytes.
"""

from __future__ import annotations

import faiss
import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.spec import IndexSpec, family_of, make_index
from indexes.storage.ids import check_ids

__all__ = [
    "add_vectors",
    "prepare_queries",
    "prepare_vectors",
    "train_index",
    "training_sample",
]

_ADD_BATCH = 65_536


def _check_2d(x: np.ndarray, name: str, width: int | None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ConfigError(name, x.shape, "expected a 2-D array (n, width)")
    if width is not None and x.shape[1] != width:
        raise ConfigError(name, x.shape, f"expected {width} columns")
    return x


def prepare_vectors(xb: np.ndarray, encoding: str, d: int) -> np.ndarray:
    """Vectors in ``encoding``'s natural dtype -> the contiguous array FAISS indexes take."""
    family = family_of(encoding)
    width = codec.wire_width(encoding, d)
    xb = _check_2d(xb, "xb", width)
    if family == "float":
        if xb.dtype.kind != "f":
            raise ConfigError("xb", xb.dtype, f"{encoding} vectors must be floating point")
        x = np.array(xb, dtype=np.float32, order="C")
        if not np.isfinite(x).all():
            raise ConfigError("xb", "NaN/inf", "vectors must be finite")
        faiss.normalize_L2(x)
        return x
    want = codec.natural_dtype(encoding)
    if xb.dtype != want:
        raise ConfigError("xb", xb.dtype, f"{encoding} vectors must have dtype {want}")
    if family == "binary":
        return np.ascontiguousarray(xb)
    x = xb.astype(np.float32)
    if encoding == "uint8":
        x -= 128.0  # the exact int8 twin, see indexes.ann.choose
    return x


def prepare_queries(xq: np.ndarray, encoding: str, d: int) -> np.ndarray:
    """Queries -> what the index for ``encoding`` searches with.

    Float indexes: float queries, normalised. int8 / uint8 indexes: queries in the same
    encoding, or float queries, normalised and quantised to int8 like the endpoint does.
    Binary indexes: packed bits, or float queries (bits = x > 0).
    """
    family = family_of(encoding)
    xq = np.asarray(xq)
    if family == "binary":
        if xq.dtype.kind == "f":
            xq = _check_2d(xq, "xq", d)
            return np.packbits(xq > 0, axis=1)
        return prepare_vectors(xq, encoding, d)
    if family == "int8" and xq.dtype.kind == "f":
        # SQ8_direct indexes quantise the query to codes themselves (clipping at +-127):
        # quantise it explicitly, the way the endpoint does, so results equal exact int8
        # search. Rescoring then restores float precision on the candidates.
        xq = prepare_vectors(_check_2d(xq, "xq", d), "float", d)
        return codec.quantize(xq, "int8").astype(np.float32)
    if family == "int8":
        xq = _check_2d(xq, "xq", d)
        if xq.dtype == np.int8:
            return xq.astype(np.float32)
        if xq.dtype == np.uint8:
            return xq.astype(np.float32) - 128.0
        raise ConfigError("xq", xq.dtype, "expected float32, int8 or uint8 queries")
    return prepare_vectors(_check_2d(xq, "xq", d), encoding, d)


def training_sample(n: int, size: int, *, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of a seeded random sample of ``size`` out of ``n`` (never the first
    rows: shards written in order would bias the centroids)."""
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False))


def train_index(spec: IndexSpec, xb: np.ndarray, *, seed: int = 0, overwrite: bool = False):
    """An empty index for ``spec``, trained on a random sample of ``xb`` when it needs it.

    ``xb`` may be the whole collection or any random sample of it (natural dtype).
    ``overwrite``: the caller no longer needs ``xb``, so float vectors may be normalised
    in place instead of in a copy (a large training sample is held once, not twice).
    """
    index = make_index(spec)
    if index.is_trained:
        return index
    xb = _check_2d(xb, "xb", codec.wire_width(spec.encoding, spec.dimensions))
    need = max(spec.train_size, 1)
    if spec.nlist and xb.shape[0] < spec.nlist * 30:
        raise ConfigError(
            "xb", xb.shape[0], f"{spec.factory} needs at least {spec.nlist * 30} training vectors"
        )
    rows = training_sample(xb.shape[0], need, seed=seed)
    # A sample that is the whole of xb needs no copy before prepare_vectors makes its own.
    xs = xb if rows.shape[0] == xb.shape[0] else xb[rows]
    in_place = (
        overwrite
        and xs is xb
        and spec.family == "float"
        and xb.dtype == np.float32
        and xb.flags.c_contiguous
        and np.isfinite(xb).all()
    )
    if in_place:
        faiss.normalize_L2(xb)
        xt = xb
    else:
        xt = prepare_vectors(xs, spec.encoding, spec.dimensions)
    del xs
    _seed_clustering(index, seed)
    index.train(xt)
    return index


def _seed_clustering(index, seed: int) -> None:
    """Seed the k-means inside IVF training so two trainings give the same centroids."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, AttributeError, TypeError):
        ivf = None
    if ivf is not None:
        ivf.cp.seed = seed
        return
    inner = index
    if isinstance(inner, faiss.IndexBinaryIVF):
        inner.cp.seed = seed


def add_vectors(index, xb: np.ndarray, ids: np.ndarray, spec: IndexSpec) -> None:
    """Add ``xb`` (natural dtype) with explicit int64 ``ids``, in batches."""
    width = codec.wire_width(spec.encoding, spec.dimensions)
    xb = _check_2d(xb, "xb", width)
    ids = check_ids(ids, xb.shape[0])
    if not index.is_trained:
        raise ConfigError("index", spec.factory, "is not trained: call train_index first")
    for start in range(0, xb.shape[0], _ADD_BATCH):
        stop = start + _ADD_BATCH
        x = prepare_vectors(xb[start:stop], spec.encoding, spec.dimensions)
        index.add_with_ids(x, np.ascontiguousarray(ids[start:stop]))
