"""build_folder: vectors and metadata in memory -> an index folder.

The steps are the ones ``indexes.building.assemble.assemble_folder`` takes for the index job's
shards: check and sort the inputs by id (``indexes.storage.tables.folder_data``), train once,
add the shards from the serialised trained index as workers would and combine them
(``indexes.building.steps``), then write the folder (``indexes.building.writer.write_folder``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from indexes.ann.choose import choose_index
from indexes.ann.serialize import serialize_index
from indexes.ann.train import train_index
from indexes.building.steps import add_shards, check_merge, combine_shards, needs_shards
from indexes.building.writer import new_folder, write_folder
from indexes.config import BuildConfig
from indexes.storage.manifest import Manifest
from indexes.storage.tables import folder_data

__all__ = ["build_folder"]


def build_folder(
    path: str | os.PathLike,
    xb: np.ndarray,
    metadata: pa.Table | Mapping[str, Sequence[Any]],
    *,
    encoding: str,
    model: str,
    dimensions: int | None = None,
    endpoint: str | None = None,
    api_version: str | None = None,
    input_type: str | None = None,
    rescore_vectors: np.ndarray | None = None,
    xq_eval: np.ndarray | None = None,
    config: BuildConfig | None = None,
) -> Manifest:
    """Build an index folder at ``path`` (which must not exist or be empty).

    ``xb``: vectors in ``encoding``'s natural dtype, one row per metadata row.
    ``rescore_vectors``: optional (n, d) int8 or float32 copy for rescoring (for binary
    encodings the int8 or float answer for the same inputs). ``xq_eval``: held-out float
    (or natural dtype) queries for measuring recall; else ``config.eval_queries`` indexed
    vectors are sampled.
    """
    config = config or BuildConfig()
    config.apply_threads()
    data = folder_data(
        xb, metadata, encoding=encoding, dimensions=dimensions, rescore_vectors=rescore_vectors
    )
    out = new_folder(path)
    spec = choose_index(
        data.ids.shape[0],
        data.dimensions,
        encoding,
        memory_budget=config.memory_budget,
        factory=config.factory,
        train_per_centroid=config.train_per_centroid,
    )
    check_merge(spec, config.merge)
    trained = serialize_index(train_index(spec, data.xb, seed=config.seed))
    parts = []
    if needs_shards(spec, config.merge):
        parts = add_shards(trained, data.xb, data.ids, spec, config.shards)
    combined = combine_shards(
        out, spec=spec, trained=trained, parts=parts, xb=data.xb, ids=data.ids, merge=config.merge
    )
    del parts
    return write_folder(
        out,
        combined,
        spec,
        data,
        config=config,
        model=model,
        endpoint=endpoint,
        api_version=api_version,
        input_type=input_type,
        xq_eval=xq_eval,
    )
