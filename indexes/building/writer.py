"""Writing an index folder around its index file(s): the tables, ``rescore.npy``, the tuned
search parameters and measured recall, the checksums, and the manifest last.

``new_folder`` makes the (empty) folder; ``indexes.building.steps.combine_shards`` writes the index
file(s) into it; ``write_folder`` writes everything else. The manifest is written last, so
a folder without one is an unfinished build that ``open_index`` refuses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from corpusbeam.errors import ConfigError
from indexes.ann.search import RescoreStore
from indexes.ann.spec import IndexSpec
from indexes.ann.train import prepare_vectors
from indexes.building.evaluate import tune_build
from indexes.building.steps import Combined
from indexes.config import BuildConfig
from indexes.lexical.index import build_lexical, column_texts
from indexes.storage.files import MANIFEST, checksums
from indexes.storage.manifest import Manifest, sanitize_endpoint
from indexes.storage.part_files import RESCORE_SUFFIX, write_parts
from indexes.storage.tables import FolderData

__all__ = ["new_folder", "rescore_entry", "write_folder"]


def new_folder(path: str | os.PathLike) -> Path:
    """Make the folder at ``path``, which must not exist or be empty."""
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("path", os.fspath(out), "exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    return out


def rescore_entry(
    dtype: np.dtype | str | None,
    spec: IndexSpec,
    config: BuildConfig,
    *,
    from_vector: bool = False,
) -> dict | None:
    """The manifest's ``rescore`` entry for rescoring vectors of ``dtype`` (None: none).
    ``from_vector``: they are a compressed float index's full, normalised vectors, kept in
    each part's ``rescore.npy`` only (no second column) and read by row, never mapped."""
    if dtype is None:
        return None
    factor = config.rescore_factor or (20 if spec.family == "binary" else 4)
    entry = {"file": RESCORE_SUFFIX, "dtype": str(np.dtype(dtype)), "factor": factor}
    return {**entry, "from": "vector"} if from_vector else entry


def write_folder(
    out: Path,
    combined: Combined,
    spec: IndexSpec,
    data: FolderData,
    *,
    config: BuildConfig,
    model: str,
    endpoint: str | None = None,
    api_version: str | None = None,
    input_type: str | None = None,
    xq_eval: np.ndarray | None = None,
) -> Manifest:
    """Finish the folder ``out`` that holds ``combined``'s index file(s): write the tables
    as ``config.shards`` id-range parts (with their rescoring vectors) and the lexical
    index, tune and measure recall, then the manifest with every checksum."""
    rv, from_vector = data.rescore_vectors, False
    if rv is None and spec.rescore:  # a compressed float index: rescored from full vectors
        rv, from_vector = prepare_vectors(data.xb, data.encoding, data.dimensions), True
    parts, _ = write_parts(
        out, data, config.shards, rescore_vectors=rv, rescore_column=not from_vector
    )
    lexical = build_lexical(out, data.ids, column_texts(data.table)) if config.lexical else None
    rescore_info = rescore_entry(
        None if rv is None else rv.dtype, spec, config, from_vector=from_vector
    )
    store = None if rv is None else RescoreStore(data.ids, rv, dimensions=data.dimensions)
    recall, latency, params = tune_build(
        combined.index,
        spec,
        data,
        config=config,
        xq_eval=xq_eval,
        store=store,
        rescore_factor=rescore_info["factor"] if rescore_info else 1,
    )
    if rescore_info is not None and "rescore_factor" in params:
        # Tuned with the search parameter: stored with the rescoring vectors it is about.
        rescore_info["factor"] = params.pop("rescore_factor")
    manifest = Manifest(
        model=model,
        dimensions=data.dimensions,
        encoding=data.encoding,
        index_factory=spec.factory,
        count=data.ids.shape[0],
        metric=spec.metric,
        endpoint=sanitize_endpoint(endpoint),
        api_version=api_version,
        input_type=input_type,
        normalized=spec.family == "float",
        search_params=params,
        layout=combined.layout,
        index_files=combined.index_files,
        rescore=rescore_info,
        parts=[p.as_dict() for p in parts],
        recall=recall,
        latency_ms=latency,
        lexical=lexical,
        files=checksums(out),
    )
    (out / MANIFEST).write_text(manifest.to_json())
    return manifest
