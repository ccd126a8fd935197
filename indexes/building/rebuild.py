"""rebuild_folder: a new index folder from the vectors and metadata another one stores."""

from __future__ import annotations

import os

from indexes.ann.spec import family_of
from indexes.building.folder import build_folder
from indexes.config import BuildConfig
from indexes.reader import open_index
from indexes.storage.manifest import Manifest

__all__ = ["rebuild_folder"]


def rebuild_folder(
    src: str | os.PathLike, dst: str | os.PathLike, *, config: BuildConfig | None = None
) -> Manifest:
    """A new folder at ``dst`` from the vectors and metadata stored in ``src`` (verified
    first): another index type, budget or sharding, without embedding anything again."""
    old = open_index(src)
    m = old.manifest
    _, xb, rv = old.vectors()
    if rv is not None and family_of(m.encoding) == "int8":
        rv = None  # the int8 twin is made again from the vectors
    return build_folder(
        dst,
        xb,
        old.metadata(),
        encoding=m.encoding,
        model=m.model,
        dimensions=m.dimensions,
        endpoint=m.endpoint,
        api_version=m.api_version,
        input_type=m.input_type,
        rescore_vectors=rv,
        config=config,
    )
