"""Writing an index folder around its index file(s): the tables, ``rescore.npy``, the tuned
search parameters and measured recall, the checksums, and the manifest last.

``new_folder`` makes the (empty) folder; ``indexes.shards.combine_shards`` writes the index
file(s) into it; ``write_folder`` writes everything else. The manifest is written last, so
a folder without one is an unfinished build that ``open_index`` refuses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexes.build import prepare_vectors
from indexes.choose import IndexSpec
from indexes.config import BuildConfig
from indexes.evaluate import tune_build
from indexes.files import MANIFEST, RESCORE, checksums
from indexes.manifest import Manifest, sanitize_endpoint
from indexes.search import RescoreStore
from indexes.shards import Combined
from indexes.tables import FolderData, write_tables
from inference.errors import ConfigError

__all__ = ["new_folder", "write_folder"]


def new_folder(path: str | os.PathLike) -> Path:
    """Make the folder at ``path``, which must not exist or be empty."""
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("path", os.fspath(out), "exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_rescore(
    out: Path, data: FolderData, spec: IndexSpec, config: BuildConfig
) -> tuple[RescoreStore | None, dict | None]:
    """rescore.npy and the store that reads it back memory-mapped, with the manifest's
    ``rescore`` entry; (None, None) when the build has no rescoring vectors.

    Binary and int8 folders rescore against the vectors given (or the int8 bytes); a
    compressed float index (``spec.rescore``) against the full, normalised float vectors,
    which are then the vectors column itself (``"from": "vector"``: no second column)."""
    rv, info = data.rescore_vectors, {}
    if rv is None and spec.rescore:
        rv, info = prepare_vectors(data.xb, data.encoding, data.dimensions), {"from": "vector"}
    if rv is None:
        return None, None
    np.save(out / RESCORE, rv, allow_pickle=False)
    vectors = np.load(out / RESCORE, mmap_mode="r")
    store = RescoreStore(data.ids, vectors, dimensions=data.dimensions)
    factor = config.rescore_factor or (20 if spec.family == "binary" else 4)
    return store, {"file": RESCORE, "dtype": str(rv.dtype), "factor": factor, **info}


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
    and rescoring vectors, tune and measure recall, then the manifest with every checksum."""
    write_tables(out, data)
    store, rescore_info = _write_rescore(out, data, spec, config)
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
        recall=recall,
        latency_ms=latency,
        files=checksums(out),
    )
    (out / MANIFEST).write_text(manifest.to_json())
    return manifest
