"""Finishing an object-store version on a worker: the launcher handles only small things.

For an ``s3://`` or ``gs://`` output, once the main pipeline has written the new
version's parts and IVF shards, ``finish_on_worker`` runs a second, one-element pipeline
with the job's own options (``Create([task]) | ParDo(_FinishFn)``), so on Dataflow,
Flink or Spark the heavy part of the finish runs on a worker:

    launcher                                   a worker
    ────────                                   ────────
    main pipeline: parts, shards, part list
    FinishTask (names, settings; no secret) ─► in a temporary folder of its own: the
                                               parts' files downloaded; the index updated
                                               from the live version (this machine's
                                               cache: ``remote.cached_version``) or built
                                               (``pipeline.job.finish.finish_index``); the
                                               manifest finished; the version's files
                                               written to the store (those the live
                                               version holds with the same bytes copied
                                               inside the store); the temporary folder
                                               removed
    reads staging/finish.json  ◄────────────── writes the manifest and the report's
                                               update entry to staging/finish.json
    failures.parquet, report.json, the manifest last; CURRENT switched; old versions pruned

Nothing of the new version is written to the launcher's disk. The worker reaches the
store with the options Beam's filesystems have on it (the job's ``--s3_*`` options, or
the store's usual environment), so no key travels in the task. Its temporary folder is
made inside the output's cache folder on its machine (and removed after): an update
hard-links the live version's files from the cached copy, which needs one filesystem.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusbeam.errors import CorpusbeamError, JobError
from corpusbeam.inference.client import ModelInfo
from indexes.config import BuildConfig
from indexes.storage import remote_versions as remote
from indexes.storage.files import MANIFEST
from indexes.storage.manifest import Manifest
from indexes.storage.objectstore import ObjectStore, S3Settings, open_store, s3_settings_from_args
from pipeline.graph import read_part_list
from pipeline.job.finish import finish_index
from pipeline.vectors_note import finish_manifest
from transforms.build_index import load_trained

__all__ = [
    "FINISH_RESULT",
    "FinishTask",
    "finish_on_worker",
    "finish_version",
    "read_result",
    "worker_s3_settings",
]

log = logging.getLogger(__name__)

FINISH_RESULT = "finish.json"  # in the run's staging: the manifest and the update entry


@dataclass(frozen=True, kw_only=True)
class FinishTask:
    """What a worker needs to finish a version: names and settings only (no secret: the
    endpoint without user info or query, the store's keys from the worker's options)."""

    output: str  # the output URL
    version: str
    staging: str
    live: str | None  # the live version's name
    update_from_live: bool  # this run reused the live version's vectors: update it
    written: tuple[str, ...]  # the version's files the main pipeline's workers wrote
    factory: str | None
    rebuild: bool
    model: str
    endpoint: str | None
    api_version: str | None
    input_type: str | None
    config: BuildConfig
    info: ModelInfo
    wire: str
    rescored: bool
    api_key_env: str | None = None  # the variable's name: readers find the key with it
    deployment: str | None = None

    @property
    def prefix(self) -> str:
        return f"{remote.VERSIONS}/{self.version}"


def worker_s3_settings() -> S3Settings:
    """The ``--s3_*`` options Beam's filesystems were given on this machine (the runner
    sets them from the job's options on each worker); boto3's defaults when none."""
    options = getattr(FileSystems, "_pipeline_options", None)
    if options is None:
        return S3Settings()
    given = options.get_all_options(drop_default=True)
    return s3_settings_from_args(
        [f"--{k}={v}" for k, v in given.items() if k.startswith("s3_") and v is not None]
    )


def _read(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def _live_manifest(store: ObjectStore, live: str | None) -> Manifest | None:
    if live is None:
        return None
    try:
        return Manifest.from_json(store.read(f"{remote.VERSIONS}/{live}/{MANIFEST}").decode())
    except CorpusbeamError as exc:
        log.warning("the live version %s cannot be read: %s", live, exc)
        return None


def _update_source(task: FinishTask, store: ObjectStore) -> str | None:
    """The live version's folder in this machine's cache, for the update to start from
    (its URL when it cannot be had, which makes the finish build the index in full)."""
    try:
        return str(remote.cached_version(task.output, version=task.live, store=store))
    except CorpusbeamError as exc:
        log.warning("the live version cannot be read to update from: %s", exc)
        return f"{task.output}/{remote.VERSIONS}/{task.live}"


def write_version_files(
    store: ObjectStore,
    local: Path,
    task: FinishTask,
    manifest: Manifest,
    live_manifest: Manifest | None,
) -> dict[str, int]:
    """Write ``local``'s files but the manifest to the version's prefix, except those the
    main pipeline wrote there: copied inside the store when the live version holds them
    with the same bytes (an update shares its index files), else uploaded. Returns the
    counts ``{"copied", "uploaded"}``."""
    written = set(task.written)
    names = sorted(
        rel
        for rel in (p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        if rel != MANIFEST and rel not in written
    )
    shared = set()
    if task.live is not None and live_manifest is not None:
        shared = {
            n
            for n in names
            if n in manifest.files
            and manifest.files[n].get("sha256") == live_manifest.files.get(n, {}).get("sha256")
        }
    for name in names:
        if name in shared:
            store.copy(f"{remote.VERSIONS}/{task.live}/{name}", f"{task.prefix}/{name}")
        else:
            store.upload(f"{task.prefix}/{name}", local / name)
    return {"copied": len(shared), "uploaded": len(names) - len(shared)}


def finish_version(task: FinishTask, store: ObjectStore | None = None) -> dict:
    """Finish ``task``'s version on this machine, in a temporary folder removed after:
    the result written to the staging's ``finish.json`` is also returned
    (``{"manifest": <its JSON>, "update": <the report's update entry>}``)."""
    store = store or open_store(task.output, worker_s3_settings())
    loaded = load_trained(task.staging)
    if loaded is None:
        raise JobError(f"{task.staging} holds no trained index: the pipeline wrote nothing")
    spec, blob = loaded
    parts = read_part_list(task.staging)
    live_manifest = _live_manifest(store, task.live)
    root = remote.cache_folder(task.output)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".finish-{task.version}-", dir=root) as tmp:
        local = Path(tmp)
        for name in (name for part in parts for name in part["files"]):
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            store.download(f"{task.prefix}/{name}", local / name)
        previous = None
        if task.update_from_live and task.live is not None:
            previous = _update_source(task, store)
        manifest, update = finish_index(  # update the live version's index, or build it
            local,
            previous=previous,
            previous_manifest=live_manifest,
            factory=task.factory,
            rebuild=task.rebuild,
            spec=spec,
            trained=blob,
            parts=parts,
            model=task.model,
            endpoint=task.endpoint,
            api_version=task.api_version,
            input_type=task.input_type,
            config=task.config,
            read=_read,
        )
        manifest = finish_manifest(
            local,
            manifest,
            info=task.info,
            wire=task.wire,
            rescored=task.rescored,
            api_key_env=task.api_key_env,
            deployment=task.deployment,
        )
        counts = write_version_files(store, local, task, manifest, live_manifest)
        log.info(
            "%s: %d files uploaded, %d copied inside the store from the live version",
            task.prefix,
            counts["uploaded"],
            counts["copied"],
        )
    result = {"manifest": manifest.to_json(), "update": update}
    _write(f"{task.staging.rstrip('/')}/{FINISH_RESULT}", json.dumps(result).encode())
    return result


class _FinishFn(beam.DoFn):
    """Finish the version of each ``FinishTask`` (one) on the worker it lands on."""

    def process(self, task: FinishTask):
        finish_version(task)
        yield task.version


def read_result(staging: str) -> tuple[Manifest, dict]:
    """(the finished version's manifest, the report's update entry) a worker left in
    ``staging``."""
    path = f"{staging.rstrip('/')}/{FINISH_RESULT}"
    try:
        result = json.loads(_read(path))
    except (OSError, ValueError) as exc:
        raise JobError(f"{path}: the worker's finish left no readable result: {exc}") from exc
    return Manifest.from_json(result["manifest"]), result["update"]


def finish_on_worker(task: FinishTask, pipeline_args: Collection[str]) -> tuple[Manifest, dict]:
    """Run ``_FinishFn`` on ``task`` as a pipeline of its own with the job's options, then
    read its result (raises what the runner raises when the finish failed)."""
    p = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
    _ = p | "Task" >> beam.Create([task]) | "FinishVersion" >> beam.ParDo(_FinishFn())
    p.run().wait_until_finish()
    return read_result(task.staging)
