"""Train, add, merge: building an index in one go or in pieces on many workers.

The piecewise build: ``train_index`` once on a random sample, ``serialize_index`` the
empty trained index and ship it, ``add_vectors`` on each worker into its copy (a shard,
written with ``write_index``), then ``merge_indexes`` in memory, ``merge_ondisk`` for
IVF indexes too big for RAM, or ``shard_group`` to search the shards together.

Vectors come in the encoding's natural dtype (``corpusbeam.inference.codec``): float32 ``(n, d)``,
int8 / uint8 ``(n, d)``, packed bits uint8 ``(n, d/8)``. ``prepare_vectors`` turns them
into what FAISS takes: unit-length float32, int8 values as float32 (uint8 shifted to its
int8 twin), or the packed bytes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference import codec
from indexes.ann.choose import IndexSpec, family_of, make_index
from indexes.storage.ids import check_ids

__all__ = [
    "ONDISK_SUFFIX",
    "add_vectors",
    "deserialize_index",
    "merge_indexes",
    "merge_ondisk",
    "packed_lists",
    "prepare_queries",
    "prepare_vectors",
    "read_index",
    "serialize_index",
    "shard_group",
    "train_index",
    "training_sample",
    "write_index",
]

_ADD_BATCH = 65_536
# The inverted lists file of an index merged on disk, named after the index file.
ONDISK_SUFFIX = ".ivfdata"


@contextlib.contextmanager
def _quiet_stdout(*, drop: bool = False) -> Iterator[None]:
    """Keep FAISS's C-level notices (on-disk lists resized or relocated) off stdout, where
    they would corrupt a command's JSON output; they go to stderr instead, or nowhere
    (``drop``: the relocation notice every reader of an on-disk index would print)."""
    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY) if drop else 2
    try:
        os.dup2(sink, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if drop:
            os.close(sink)


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


def serialize_index(index) -> bytes:
    """The index as bytes (FAISS's own format; no pickle)."""
    if isinstance(index, faiss.IndexBinary):
        return faiss.serialize_index_binary(index).tobytes()
    return faiss.serialize_index(index).tobytes()


def deserialize_index(data: bytes, encoding: str):
    """Inverse of ``serialize_index``."""
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        if family_of(encoding) == "binary":
            return faiss.deserialize_index_binary(buf)
        return faiss.deserialize_index(buf)
    except RuntimeError as exc:
        raise IndexFolderError(f"cannot read a {encoding} index: {_last_line(exc)}") from None


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][:200] if text else type(exc).__name__


def write_index(index, path: str | os.PathLike) -> None:
    """Write an index file (binary or float)."""
    path = os.fspath(path)
    if isinstance(index, faiss.IndexBinary):
        faiss.write_index_binary(index, path)
    else:
        faiss.write_index(index, path)


def read_index(path: str | os.PathLike, encoding: str, *, mmap: bool = False):
    """Read an index file; ``mmap`` maps it instead of reading it into memory.

    An IVF index merged on disk (``merge_ondisk``) keeps its inverted lists in
    ``<path>.ivfdata`` beside the index file: ``OnDiskInvertedLists`` maps that file itself,
    read-only, whatever ``mmap`` says, and only the coarse quantizer is read into memory.
    FAISS's ``IO_FLAG_MMAP`` must not be passed for such an index: it includes
    ``IO_FLAG_SKIP_IVF_DATA``, which skips that mapping, and the first search then reads
    through a null pointer (a segfault). Other IVF lists are mapped from the index file
    itself under ``mmap``; flat and graph indexes are read whole either way.
    """
    path = os.fspath(path)
    if not Path(path).is_file():
        raise IndexFolderError(f"index file missing: {path}")
    try:
        if family_of(encoding) == "binary":
            index = faiss.read_index_binary(path, faiss.IO_FLAG_MMAP if mmap else 0)
        elif Path(path + ONDISK_SUFFIX).is_file():
            with _quiet_stdout(drop=True):
                index = faiss.read_index(
                    path, faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
                )
        else:
            flags = faiss.IO_FLAG_MMAP if mmap else 0
            index = faiss.read_index(path, faiss.IO_FLAG_ONDISK_SAME_DIR | flags)
    except RuntimeError as exc:
        raise IndexFolderError(f"cannot read index {path}: {_last_line(exc)}") from None
    if _unmapped_lists(index):
        raise IndexFolderError(
            f"cannot read index {path}: its inverted lists are on disk but were not mapped "
            f"(is {Path(path).name}{ONDISK_SUFFIX} beside it?)"
        )
    return index


def _unmapped_lists(index) -> bool:
    """Whether ``index`` has non-empty on-disk inverted lists that are not mapped: searching
    it would read through a null pointer."""
    if isinstance(index, faiss.IndexBinary) or not _is_ivf(index):
        return False
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    return isinstance(lists, faiss.OnDiskInvertedLists) and lists.totsize > 0 and lists.ptr is None


def packed_lists(index) -> bool:
    """Whether ``index`` is a fast-scan IVF (``IVF...,PQ{m}x4fs``): its lists hold codes
    in packed blocks (``BlockInvertedLists``), which neither FAISS's ``merge_ondisk`` nor
    ``indexes.ann.ondisk`` can read, so its shards cannot be merged: the index job adds each
    part's vectors to the index itself, which the memory budget sized to fit in RAM."""
    try:
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        return isinstance(ivf, faiss.IndexIVFFastScan)
    except (RuntimeError, AttributeError, TypeError):
        return False


def _is_ivf(index) -> bool:
    if isinstance(index, faiss.IndexBinaryIVF):
        return True
    try:
        faiss.extract_index_ivf(index)
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True


def _stored_and_ids(index, spec: IndexSpec) -> tuple[np.ndarray, np.ndarray]:
    """What a non-IVF, IDMap-wrapped index stores (as FAISS takes it back) and its ids."""
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    inner = index.index
    n = inner.ntotal
    if spec.family == "binary":
        inner = faiss.downcast_IndexBinary(inner)
        if isinstance(inner, faiss.IndexBinaryHNSW):
            inner = faiss.downcast_IndexBinary(inner.storage)
        return faiss.vector_to_array(inner.xb).reshape(n, -1), ids
    return inner.reconstruct_n(0, n), ids


def merge_indexes(indexes: Sequence, spec: IndexSpec):
    """Merge shards built from the same trained index into the first one, in order.

    IVF shards merge their inverted lists (the result equals one build that added the
    shards in order). Flat and graph shards are re-added in order into a fresh index.
    """
    if not indexes:
        raise ConfigError("indexes", 0, "nothing to merge")
    first = indexes[0]
    if _is_ivf(first):
        for other in indexes[1:]:
            try:
                first.merge_from(other, 0)
            except RuntimeError as exc:
                raise ConfigError("indexes", spec.factory, _last_line(exc)) from None
        return first
    merged = make_index(spec)
    for index in indexes:
        x, ids = _stored_and_ids(index, spec)
        merged.add_with_ids(x, ids)
    return merged


def merge_ondisk(
    trained,
    shard_paths: Sequence[str | os.PathLike],
    index_path: str | os.PathLike,
    spec: IndexSpec,
) -> str:
    """Merge IVF shard files into ``index_path`` + ``<index_path>.ivfdata``, lists on disk.

    ``trained`` is the empty trained index; memory use stays about one shard at a time
    (``indexes.ann.ondisk``). Returns the inverted lists file's name (beside the index file).
    """
    from indexes.ann.ondisk import merge_shards_ondisk

    if spec.family == "binary" or not _is_ivf(trained):
        raise ConfigError("factory", spec.factory, "on-disk merge needs a float or int8 IVF index")
    index_path = Path(index_path)
    ivfdata = index_path.with_name(index_path.name + ONDISK_SUFFIX)
    with _quiet_stdout():
        merge_shards_ondisk(trained, shard_paths, ivfdata)
    # The index refers to the lists file by name; keep it relative (same directory).
    lists = faiss.extract_index_ivf(trained).invlists
    faiss.downcast_InvertedLists(lists).filename = ivfdata.name
    write_index(trained, index_path)
    return ivfdata.name


def shard_group(indexes: Sequence, spec: IndexSpec):
    """Search shards together without merging (ids stay the shards' own)."""
    if not indexes:
        raise ConfigError("indexes", 0, "no shards")
    if spec.family == "binary":
        group = faiss.IndexBinaryShards(spec.dimensions, False, False)
    else:
        group = faiss.IndexShards(spec.dimensions, False, False)
    for index in indexes:
        group.add_shard(index)
    return group
