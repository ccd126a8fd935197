"""Where an index job's run writes: a local folder, or an ``s3://`` / ``gs://`` output.

``open_output(cfg)`` takes the output for one run (the lock of a local folder, the lease
of an object-store output), names the new version and yields a ``RunOutput``:

- ``folder``: where the workers write the version's parts (a path or a URL);
- ``staging``: the run's scratch files (under the output, or ``--temp_location``);
- ``local``: where the launcher finishes the version: the ``.partial`` folder itself
  locally; None for an object store, whose version a worker finishes in place
  (``pipeline.finish_remote``), so nothing of it touches the launcher's disk;
- ``publish(files)``: the version made live with its small files (failures, report):
  written, renamed and ``CURRENT`` replaced locally; written (the manifest last) and
  ``CURRENT`` switched with a conditional write remotely. ``make_live=False`` (a version
  its quality gate rejected, ``pipeline.gate``) does all but switch ``CURRENT``. Both
  then prune to ``--keep`` versions (``indexes.storage.version_list``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from corpusbeam.errors import CorpusbeamError, JobError
from indexes.storage import remote_versions as remote
from indexes.storage import versions
from indexes.storage.files import MANIFEST
from indexes.storage.manifest import Manifest
from indexes.storage.objectstore import ObjectStore, is_url, open_store, s3_settings_from_args
from indexes.storage.version_list import prune_remote
from pipeline.config import IndexJobConfig

__all__ = [
    "RunOutput",
    "local_manifest",
    "open_output",
    "redact_args",
    "remote_manifest",
    "temp_location",
]

log = logging.getLogger(__name__)

_SECRET_FLAGS = ("--s3_access_key_id", "--s3_secret_access_key", "--s3_session_token")


def redact_args(args: Sequence[str]) -> list[str]:
    """Pipeline arguments as a report may show them: credentials replaced."""
    out, hide_next = [], False
    for arg in args:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in _SECRET_FLAGS:
            out.append(f"{flag}=<redacted>" if eq else flag)
            hide_next = not eq
        else:
            out.append(arg)
    return out


def temp_location(args: Sequence[str]) -> str | None:
    """``--temp_location`` among the pipeline arguments, if given."""
    args = list(args)
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag == "--temp_location":
            return value if eq else (args[i + 1] if i + 1 < len(args) else None)
    return None


@dataclass
class RunOutput:
    """One run's destination (see the module docstring)."""

    root: str
    name: str
    folder: str
    staging: str
    local: Path | None  # None for an object store: a worker finishes the version
    previous: str | None  # the live version's folder (path or URL), if any
    previous_manifest: Manifest | None
    _publish: object = field(repr=False, default=None)

    @property
    def remote(self) -> bool:
        """Whether the output is on an object store."""
        return is_url(self.root)

    def previous_folder(self) -> Path | None:
        """The live version's local folder, for an update to start from (local outputs;
        on an object store the worker that finishes the version gets its own copy)."""
        return None if self.previous is None or self.remote else Path(self.previous)

    def written(self) -> tuple[str, ...]:
        """The new version's files already on the store (the workers' parts), relative to
        the version; () for a local output."""
        listed = getattr(self._publish, "written", None)
        return tuple(listed()) if listed is not None else ()

    def drop_staging(self, name: str) -> None:
        """Delete ``name`` (a folder) in the run's staging, once nothing will read it
        again: the run files after the pipeline has written the parts from them, so the
        finish does not hold them on disk beside the index it writes. A failure only
        warns: publishing deletes the whole staging anyway."""
        try:
            self._publish.drop(name)  # type: ignore[union-attr]
        except Exception as exc:
            log.warning("could not delete %s/%s yet: %s", self.staging, name, exc)

    def publish(self, files: Mapping[str, bytes], *, make_live: bool = True) -> Path | str:
        """Write ``files`` (small: failures, report; remotely also the manifest, written
        last) into the version and make it live (unless ``make_live`` is False). Returns
        its folder (local) or URL."""
        return self._publish.publish(files, make_live=make_live)  # type: ignore[union-attr]


def _remove_staging(staging: str) -> None:
    try:
        if FileSystems.exists(staging):
            FileSystems.delete([staging])
    except Exception as exc:
        log.warning("could not delete the staging files %s: %s", staging, exc)


class _LocalPublish:
    def __init__(self, out: Path, work: Path, name: str, staging: str, keep: int) -> None:
        self.out, self.work, self.name, self.staging = out, work, name, staging
        self.keep = keep

    def drop(self, name: str) -> None:
        folder = Path(self.staging) / name
        if folder.is_dir():
            shutil.rmtree(folder)
        else:  # --temp_location on an object store, or nothing to delete
            _remove_staging(f"{self.staging.rstrip('/')}/{name}/")

    def publish(self, files: Mapping[str, bytes], *, make_live: bool = True) -> Path:
        for name, data in files.items():
            (self.work / name).write_bytes(data)
        if Path(self.staging).is_dir():
            shutil.rmtree(self.staging)
        else:
            _remove_staging(self.staging)
        return versions.publish(self.out, self.work, self.name, keep=self.keep, make_live=make_live)


class _RemotePublish:
    """The launcher's side of an object-store version: small files only. A worker wrote
    the rest in place (``pipeline.finish_remote``); the manifest goes last."""

    def __init__(
        self, store: ObjectStore, run: RunOutput, tag: str | None, lease, keep: int
    ) -> None:
        self.store, self.run, self.tag, self.lease = store, run, tag, lease
        self.keep = keep
        self.prefix = f"{remote.VERSIONS}/{run.name}"

    def written(self) -> list[str]:
        return sorted(k.split("/", 2)[2] for k, _ in self.store.list(f"{self.prefix}/"))

    def drop(self, name: str) -> None:
        inside = f"{self.store.url}/"
        folder = f"{self.run.staging.rstrip('/')}/{name}/"
        if folder.startswith(inside):
            self.store.delete_prefix(folder[len(inside) :])
        else:
            _remove_staging(folder)

    def publish(self, files: Mapping[str, bytes], *, make_live: bool = True) -> str:
        if MANIFEST not in files:
            raise JobError(f"publishing {self.prefix} needs its {MANIFEST}")
        for name, data in files.items():
            if name != MANIFEST:
                self.store.put(f"{self.prefix}/{name}", data)
        self.lease.check()
        self.store.put(f"{self.prefix}/{MANIFEST}", files[MANIFEST])  # last
        if make_live:
            remote.switch_current(self.store, self.run.name, self.tag)
        inside = f"{self.store.url}/"
        if self.run.staging.startswith(inside):  # delete what the run listed, by prefix
            self.store.delete_prefix(self.run.staging[len(inside) :].rstrip("/") + "/")
        else:
            _remove_staging(self.run.staging)
        prune_remote(self.store, keep=self.keep)
        return self.run.folder


@contextlib.contextmanager
def open_output(cfg: IndexJobConfig) -> Iterator[RunOutput]:
    """The output of one run, locked (local) or leased (object store) until it ends."""
    if is_url(cfg.output):
        with _remote_output(cfg) as run:
            yield run
        return
    temp = temp_location(cfg.pipeline_args)
    with versions.acquire_lock(cfg.output) as out:
        previous = versions.current_version(out)
        name = versions.new_version_name()
        work = versions.partial_folder(out, name)
        if temp:
            staging = f"{temp.rstrip('/')}/corpusbeam-{name}"
        else:
            staging = str(versions.partial_folder(out, f"{name}-staging"))
        manifest = local_manifest(previous)
        run = RunOutput(
            root=str(out),
            name=name,
            folder=str(work),
            staging=staging,
            local=work,
            previous=str(previous) if previous else None,
            previous_manifest=manifest,
        )
        run._publish = _LocalPublish(out, work, name, staging, cfg.keep)
        yield run


def remote_manifest(store: ObjectStore, live: str | None) -> Manifest | None:
    """The live version's manifest on an object store (None: none, or unreadable)."""
    if live is None:
        return None
    try:
        return Manifest.from_json(store.read(f"{remote.VERSIONS}/{live}/{MANIFEST}").decode())
    except CorpusbeamError as exc:
        log.warning("the live version %s cannot be read: %s", live, exc)
        return None


def local_manifest(previous: Path | None) -> Manifest | None:
    """The live version's manifest in a local output (None: none, or unreadable)."""
    if previous is None:
        return None
    try:
        return Manifest.from_json((previous / MANIFEST).read_text())
    except (OSError, CorpusbeamError) as exc:
        log.warning("the live version %s cannot be read: %s", previous, exc)
        return None


@contextlib.contextmanager
def _remote_output(cfg: IndexJobConfig) -> Iterator[RunOutput]:
    url = cfg.output.rstrip("/")
    store = open_store(url, s3_settings_from_args(cfg.pipeline_args))
    with remote.hold_lease(store, seconds=cfg.lease_seconds) as lease:
        live, tag = remote.read_current(store)
        remote.clear_unfinished(store, live)
        name = versions.new_version_name()
        temp = temp_location(cfg.pipeline_args)
        staging = f"{temp.rstrip('/')}/corpusbeam-{name}" if temp else f"{url}/staging/{name}"
        manifest = remote_manifest(store, live)
        run = RunOutput(
            root=url,
            name=name,
            folder=f"{url}/{remote.VERSIONS}/{name}",
            staging=staging,
            local=None,
            previous=f"{url}/{remote.VERSIONS}/{live}" if live else None,
            previous_manifest=manifest,
        )
        run._publish = _RemotePublish(store, run, tag, lease, cfg.keep)
        yield run
