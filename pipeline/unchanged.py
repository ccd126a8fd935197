"""An unchanged rerun costs a file listing: the inputs' fingerprint against the live version's.

Each version the index job publishes on a local output records ``inputs.json``: every
input file's path, size and modification time as the job's matching saw them before it
read anything, and a digest of the run's settings. A later run whose inputs and settings
give the same fingerprint has nothing to do: ``unchanged_result`` answers with the live
version (no pipeline, no endpoint, no new version; its exit status is the live
version's). A file rewritten with the same size within the filesystem's time
resolution is not seen as changed: ``--rebuild`` or ``--no-reuse`` always run the job.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from pipeline.config import IndexJobConfig
from transforms.read import _expand_pattern

__all__ = [
    "FINGERPRINT",
    "carried_failures",
    "input_fingerprint",
    "same_settings",
    "unchanged_files",
    "unchanged_result",
    "write_fingerprint",
]

FINGERPRINT = "inputs.json"
# Settings that do not change what a run writes into the index.
_NOT_SETTINGS = ("output", "lease_seconds", "reuse", "rebuild", "pipeline_args")


def input_fingerprint(cfg: IndexJobConfig) -> dict | None:
    """``{"settings", "files"}`` of a run, or None when an input cannot be listed."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _NOT_SETTINGS}
    settings["inputs"] = list(cfg.inputs)
    files = []
    for pattern in cfg.inputs:
        try:
            (result,) = FileSystems.match([_expand_pattern(pattern)])
        except Exception:
            return None
        files += [
            [m.path, int(m.size_in_bytes), float(getattr(m, "last_updated_in_seconds", 0) or 0)]
            for m in result.metadata_list
        ]
    canon = json.dumps(settings, sort_keys=True, default=str).encode()
    return {"settings": hashlib.sha256(canon).hexdigest(), "files": sorted(files)}


def write_fingerprint(folder: Path, fingerprint: dict | None) -> None:
    if fingerprint is not None:
        (folder / FINGERPRINT).write_text(json.dumps(fingerprint, sort_keys=True) + "\n")


def unchanged_result(cfg: IndexJobConfig, fingerprint: dict | None) -> tuple[Path, dict] | None:
    """(the live version's folder, its report) when this run's fingerprint is the live
    version's: a local output, reuse on, no ``--rebuild``; else None."""
    if fingerprint is None or not cfg.reuse or cfg.rebuild or "://" in cfg.output:
        return None
    from indexes.storage import versions

    live = versions.current_version(cfg.output)
    if live is None or not (live / FINGERPRINT).is_file() or not (live / "report.json").is_file():
        return None
    try:
        recorded = json.loads((live / FINGERPRINT).read_text())
        report = json.loads((live / "report.json").read_text())
    except (OSError, ValueError):
        return None
    if recorded != json.loads(json.dumps(fingerprint)):
        return None
    return live, report


def same_settings(live: Path, fingerprint: dict | None) -> bool:
    """Whether the live version was written with this run's settings and inputs (its
    fingerprint's settings digest is this run's): its records' rows are what reading
    them again would give (``transforms.record_reuse``)."""
    if fingerprint is None or not (live / FINGERPRINT).is_file():
        return False
    try:
        recorded = json.loads((live / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("settings") == fingerprint["settings"]


def unchanged_files(live: Path, fingerprint: dict | None) -> dict:
    """The input files a layered update need not read: path -> [size, mtime] of those the
    live version read with the same size and modification time, under the same settings.
    Their rows stay as they are: those in its base parts are kept there, those in its
    delta parts are carried into the new delta parts (``transforms.part_layers
    .carried_rows``). Empty when nothing can be skipped."""
    if fingerprint is None or not (live / FINGERPRINT).is_file():
        return {}
    try:
        recorded = json.loads((live / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return {}
    if recorded.get("settings") != fingerprint["settings"]:
        return {}
    before = {f[0]: [f[1], f[2]] for f in recorded.get("files", [])}
    from transforms.formats import DOCUMENT_EXTENSIONS

    # Documents only: images are read again (their reader does not skip), so their rows
    # come through the pipeline and must not also count as kept unread.
    return {
        f[0]: [f[1], f[2]]
        for f in fingerprint["files"]
        if before.get(f[0]) == [f[1], f[2]]
        and posixpath.splitext(f[0])[1].lower() in DOCUMENT_EXTENSIONS
    }


def carried_failures(live: Path, skipped: dict):
    """The live version's failures from the files this run did not read again (they
    still fail): a Table like the job's failures, possibly empty."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = live / "failures.parquet"
    if not skipped or not path.is_file():
        return None
    table = pq.read_table(path)
    keep = pc.is_in(table.column("uri"), value_set=pa.array(sorted(skipped), type=pa.string()))
    return table.filter(pc.fill_null(keep, False))
