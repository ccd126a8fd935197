"""The index job's last step: update the live version's index, or build the index in full.

``finish_index`` is what ``pipeline.index_job`` calls once the workers have written the new
version's parts. With a live version whose vectors this run reused (same model and
settings) on a local output, the index is updated from it (``indexes.updates.folder``: the main
index shared by hard links, a delta segment and tombstones, the retraining policy);
otherwise, or when the policy asks for a rebuild (``--rebuild`` forces one), the folder
is assembled in full from the parts and the workers' shards (``indexes.building.assemble``).
On an object store this runs on a worker (``pipeline.finish_remote``): the update starts
from the live version's copy in that machine's cache
(``indexes.storage.remote_versions.cached_version``), and the files it shares are copied
inside the store, not uploaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from corpusbeam.errors import IndexFolderError
from indexes.ann.spec import IndexSpec
from indexes.building.assemble import assemble_folder
from indexes.config import BuildConfig
from indexes.storage.layers import tables_from_refs
from indexes.storage.manifest import Manifest
from indexes.storage.objectstore import is_url
from indexes.updates.folder import UpdatePolicy, discard_update, link_file, update_folder

__all__ = ["finish_index"]

log = logging.getLogger(__name__)


def finish_index(
    local: Path,
    *,
    previous: str | None,
    previous_manifest: Manifest | None,
    factory: str | None,
    rebuild: bool,
    spec: IndexSpec,
    trained: bytes | None,
    parts: list[dict],
    model: str,
    endpoint: str | None,
    api_version: str | None,
    input_type: str | None,
    config: BuildConfig,
    read: Callable[[str], bytes],
    train: Callable[[], tuple[IndexSpec, bytes, list[dict]]] | None = None,
) -> tuple[Manifest, dict]:
    """(the new folder's manifest, the report's ``update`` entry: ``mode`` ``update`` or
    ``rebuild``, ``reason``, the change's counts, the update's seconds and ``training``:
    where the index was trained, ``pipeline``, ``finish`` or ``none``).

    ``trained`` is the empty index the pipeline trained (and ``parts`` carry its IVF
    shards), or None when it trained none because an update was expected
    (``pipeline.training``); then ``train`` (spec, trained index, parts with their shards)
    is called only if the folder must be built in full after all."""
    started = time.monotonic()
    layered = _share_base(local, previous, previous_manifest, parts)
    entry: dict = {"mode": "rebuild", "reason": "no live version to update from"}
    if previous is not None and previous_manifest is not None:
        if is_url(previous):
            entry["reason"] = "the live version has no local copy to update from"
        elif factory is not None and spec.factory != previous_manifest.index_factory:
            entry["reason"] = f"--index {factory} differs from the live version's index"
        else:
            outcome = update_folder(
                local,
                previous,
                spec=spec,
                parts=parts,
                model=model,
                endpoint=endpoint,
                api_version=api_version,
                input_type=input_type,
                config=config,
                policy=UpdatePolicy(rebuild=rebuild),
            )
            entry = {"stats": outcome.stats, "seconds": outcome.seconds}
            if outcome.manifest is not None:
                entry |= {"mode": "update", "reason": "", "training": _training(trained)}
                return outcome.manifest, entry
            entry |= {"mode": "rebuild", "reason": outcome.reason}
            discard_update(local)
    log.info("building the index in full: %s", entry["reason"])
    entry["training"] = _training(trained)
    if trained is None:  # the pipeline trained none: an update was expected
        if train is None:
            raise IndexFolderError(
                f"the index must be built in full ({entry['reason']}), but nothing was trained"
            )
        t = time.monotonic()
        spec, trained, parts = train()
        entry["training"] = "finish"
        entry["seconds_training"] = round(time.monotonic() - t, 3)
    manifest = assemble_folder(
        local,
        spec=spec,
        trained=trained,
        parts=parts,
        model=model,
        endpoint=endpoint,
        api_version=api_version,
        input_type=input_type,
        config=config,
        read=read,
        previous=previous_manifest if layered else None,
        base_version=Path(previous).name if layered else None,
    )
    entry["seconds_rebuild"] = round(time.monotonic() - started, 3)
    return manifest, entry


def _training(trained: bytes | None) -> str:
    return "none" if trained is None else "pipeline"


def _share_base(
    local: Path, previous: str | None, manifest: Manifest | None, parts: list[dict]
) -> bool:
    """Layered parts (``indexes.storage.layers``): hard-link the base parts' files from the live
    version's local folder into the new one, before anything reads them. Returns whether
    the parts are layered."""
    if not any(p.get("layered") for p in parts):
        return False
    if previous is None or manifest is None or is_url(previous):
        raise IndexFolderError(
            "the parts were written as layers over the live version, which has no local copy"
        )
    tables = tables_from_refs(parts, manifest.files, Path(previous).name, manifest.lexical)
    for name in tables.shared:
        link_file(Path(previous) / name, local / name)
    return True
