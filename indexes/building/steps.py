"""The build steps every index folder goes through, from a trained index to the folder's
index file(s): add shards, then combine them.

``build_folder`` (everything in memory) and ``assemble_folder`` (shards added on the index
job's workers) both take the serialised trained index and call ``combine_shards``:

- ``memory``: IVF shards merge their inverted lists into one index; a flat or graph index
  gets one add of every vector in id order (merging them would re-add every vector anyway);
- ``ondisk``: IVF shards merge into ``index.faiss`` with the lists in a file beside it;
- ``none``: the shards are kept as files and searched together.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpusbeam.errors import ConfigError
from indexes.ann.merge import merge_indexes, merge_ondisk, shard_group
from indexes.ann.serialize import deserialize_index, read_index, write_index
from indexes.ann.spec import IndexSpec
from indexes.ann.train import add_vectors
from indexes.storage.files import INDEX, SHARDS, shard_file

__all__ = ["Combined", "add_shards", "check_merge", "combine_shards", "needs_shards"]


@dataclass(frozen=True)
class Combined:
    """The folder's index (for measuring recall), its layout and its files."""

    index: object
    layout: str
    index_files: tuple[str, ...]


def check_merge(spec: IndexSpec, merge: str) -> None:
    """Refuse an on-disk merge of an index that has no inverted lists to put on disk, or
    whose lists are fast-scan blocks (FAISS's on-disk lists hold plain codes only)."""
    if merge == "ondisk" and (spec.family == "binary" or not spec.nlist):
        raise ConfigError("merge", "ondisk", f"needs a float or int8 IVF index, not {spec.factory}")
    if merge == "ondisk" and spec.factory.endswith("fs"):
        raise ConfigError(
            "merge",
            "ondisk",
            f"{spec.factory} keeps its lists in fast-scan blocks, which cannot go on disk: "
            "merge in memory (its codes are what the budget allows) or keep the shards",
        )


def needs_shards(spec: IndexSpec, merge: str) -> bool:
    """Whether ``combine_shards`` needs shard indexes: IVF indexes merge their lists and kept
    shards are searched; a flat or graph index merged in memory gets one add instead."""
    return bool(spec.nlist) or merge != "memory"


def add_shards(
    trained: bytes, xb: np.ndarray, ids: np.ndarray, spec: IndexSpec, shards: int
) -> list:
    """``shards`` copies of the serialised ``trained`` index, each given the next contiguous
    piece of ``xb`` (natural dtype, id order) with its ``ids``, as a worker would."""
    bounds = np.linspace(0, xb.shape[0], shards + 1).astype(int)
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        part = deserialize_index(trained, spec.encoding)
        add_vectors(part, xb[lo:hi], ids[lo:hi], spec)
        parts.append(part)
    return parts


def combine_shards(
    out: Path,
    *,
    spec: IndexSpec,
    trained: bytes,
    parts: list,
    xb: np.ndarray,
    ids: np.ndarray,
    merge: str = "memory",
) -> Combined:
    """Write the folder's index file(s) under ``out`` from the shard indexes ``parts`` (in
    shard order) or, for a flat or graph index merged in memory, from ``xb`` and ``ids``
    (id order) added once to the ``trained`` index. An on-disk merge empties ``parts`` once
    their files are written, so their memory is freed before the merge."""
    check_merge(spec, merge)
    if merge == "memory":
        if needs_shards(spec, merge):
            index = merge_indexes(parts, spec) if len(parts) > 1 else parts[0]
        else:
            index = deserialize_index(trained, spec.encoding)
            add_vectors(index, xb, ids, spec)
        write_index(index, out / INDEX)
        return Combined(index, "single", (INDEX,))
    (out / SHARDS).mkdir()
    names = tuple(shard_file(s) for s in range(len(parts)))
    for name, part in zip(names, parts, strict=True):
        write_index(part, out / name)
    if merge == "none":
        index = shard_group(parts, spec) if len(parts) > 1 else parts[0]
        return Combined(index, "shards", names)
    parts.clear()
    ivfdata = merge_ondisk(
        deserialize_index(trained, spec.encoding), [out / n for n in names], out / INDEX, spec
    )
    shutil.rmtree(out / SHARDS)
    return Combined(read_index(out / INDEX, spec.encoding), "ondisk", (INDEX, ivfdata))
