"""The quality gate inside a run (``pipeline.index_job``): two calls, each a no-op when
the run asks for no gate.

- ``gate_queries(plan, run)``, while the run's endpoint is up: the labelled queries
  embedded (``pipeline.gate_measure``);
- ``judge(plan, run, queries, manifest)``, once the version is finished and before it is
  published: the new version measured (in its folder, or a temporary copy of an
  object-store version), the live one's figures recorded or measured, the verdict
  (``pipeline.gate``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from indexes.storage import remote_versions as remote
from indexes.storage.manifest import Manifest
from indexes.storage.objectstore import ObjectStore, open_store, s3_settings_from_args
from indexes.storage.version_list import GATE_FILE
from pipeline.gate import GateVerdict, decide, download_version, gate_wanted, recorded
from pipeline.gate_measure import (
    GateQueries,
    embed_gate_queries,
    measure_folder,
    wanted_encodings,
)

__all__ = ["gate_queries", "judge"]


def gate_queries(plan, run) -> GateQueries | None:
    """The labelled queries embedded for the new version's settings and the live one's."""
    cfg = plan.config
    if cfg.gate_queries is None:
        return None
    folders = [(cfg.encoding_format, cfg.dimensions, plan.encodings.rescored)]
    live = run.previous_manifest
    if live is not None:
        folders.append((live.encoding, live.dimensions, live.rescore is not None))
    return embed_gate_queries(
        cfg.gate_queries, cfg.gate_qrels, plan.settings, wanted_encodings(folders)
    )


def _store(run, args: tuple[str, ...]) -> ObjectStore | None:
    if not run.remote:
        return None
    # the pipeline options carry the settings the run reached the store with
    return open_store(run.root, s3_settings_from_args(args))


@contextlib.contextmanager
def _new_folder(run, store: ObjectStore | None, manifest: Manifest) -> Iterator[Path]:
    if store is None:
        yield Path(run.local)
        return
    folder = download_version(store, f"{remote.VERSIONS}/{run.name}", manifest)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _live_gate_file(run, store: ObjectStore | None, live: str) -> bytes | None:
    if store is None:
        path = Path(run.previous) / GATE_FILE
        return path.read_bytes() if path.is_file() else None
    return store.get(f"{remote.VERSIONS}/{live}/{GATE_FILE}")[0]


def _live_folder(run, store: ObjectStore | None, live: str) -> Path:
    if store is None:
        return Path(run.previous)
    return remote.cached_version(run.root, version=live, store=store)


def _live_figures(
    plan, run, store: ObjectStore | None, queries: GateQueries | None
) -> tuple[str | None, dict | None, str]:
    """(the live version, its figures, where they come from)."""
    live = plan.live_version
    if live is None:
        return None, None, "no live version: figures recorded, nothing compared"
    if queries is None:
        return live, None, "no labelled queries: --min-recall only"
    figures = recorded(_live_gate_file(run, store, live), queries.digest)
    if figures is not None:
        return live, figures, f"recorded by {live}'s own gate when it was published"
    dims = run.previous_manifest.dimensions if run.previous_manifest else None
    figures = measure_folder(_live_folder(run, store, live), queries, dims)
    return live, figures, "measured now, the queries embedded through this run's endpoint"


def judge(plan, run, queries: GateQueries | None, manifest: Manifest) -> GateVerdict | None:
    """The gate's verdict on the finished version, or None when no gate is asked for."""
    cfg = plan.config
    if not gate_wanted(cfg):
        return None
    started = time.monotonic()
    store = _store(run, cfg.pipeline_args)
    with _new_folder(run, store, manifest) as folder:
        new = measure_folder(folder, queries, cfg.dimensions)
    live = _live_figures(plan, run, store, queries)
    verdict = decide(cfg, run.name, new, live, queries.digest if queries else None)
    return replace(verdict, seconds=round(time.monotonic() - started, 3))
