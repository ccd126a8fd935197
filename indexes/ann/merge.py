"""Combining shards built from the same trained index.

``merge_indexes`` merges them in memory, ``merge_ondisk`` merges IVF shards too big for RAM
with their inverted lists on disk (``indexes.ann.ondisk``), and ``shard_group`` searches
them together without merging. ``packed_lists`` says whether an index's lists can be
merged at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import ConfigError
from indexes.ann.serialize import ONDISK_SUFFIX, _is_ivf, _last_line, _quiet_stdout, write_index
from indexes.ann.spec import IndexSpec, make_index

__all__ = ["merge_indexes", "merge_ondisk", "packed_lists", "shard_group"]


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
