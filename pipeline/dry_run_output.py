"""The output as a dry run sees it: the live version, read, and nothing taken or written.

``read_only_output(cfg)`` is a ``pipeline.outputs.RunOutput`` naming the live version and
its manifest, as ``open_output`` would, without the local folder's lock (which creates
the folder and its ``.lock``), an object store's lease, a version name or a staging
folder: it cannot publish. ``live_report(run)`` is the live version's ``report.json``.
"""

from __future__ import annotations

import json
import logging

from apache_beam.io.filesystems import FileSystems

from indexes.storage import remote_versions as remote
from indexes.storage import versions
from indexes.storage.objectstore import is_url, open_store, s3_settings_from_args
from pipeline.config import IndexJobConfig
from pipeline.outputs import RunOutput, local_manifest, remote_manifest

__all__ = ["DRY_RUN", "live_report", "read_only_output"]

log = logging.getLogger(__name__)

DRY_RUN = "dry-run"  # the name a dry run's plan gives the version it does not make


def read_only_output(cfg: IndexJobConfig) -> RunOutput:
    """The output's live version and manifest, read only (see the module docstring)."""
    if not is_url(cfg.output):
        live = versions.current_version(cfg.output)
        return RunOutput(
            root=cfg.output,
            name=DRY_RUN,
            folder="",
            staging="",
            local=None,
            previous=str(live) if live else None,
            previous_manifest=local_manifest(live),
        )
    url = cfg.output.rstrip("/")
    store = open_store(url, s3_settings_from_args(cfg.pipeline_args))
    live, _ = remote.read_current(store)
    manifest = remote_manifest(store, live)
    return RunOutput(
        root=url,
        name=DRY_RUN,
        folder="",
        staging="",
        local=None,
        previous=f"{url}/{remote.VERSIONS}/{live}" if live else None,
        previous_manifest=manifest,
    )


def live_report(run: RunOutput) -> dict | None:
    """The live version's ``report.json``, or None when it has none or it cannot be read."""
    if run.previous is None:
        return None
    try:
        with FileSystems.open(f"{run.previous}/report.json") as f:
            return json.loads(f.read())
    except Exception as exc:  # a missing or damaged report: the estimate goes uncalibrated
        log.info("no run report in %s (%s): the estimate is not calibrated", run.previous, exc)
        return None
