"""Where an index job's run writes: a local folder, or an ``s3://`` / ``gs://`` output.

``open_output(cfg)`` takes the output for one run (the lock of a local folder, the lease
of an object-store output), names the new version and yields a ``RunOutput``:

- ``folder``: where the workers write the version's parts (a path or a URL);
- ``staging``: the run's scratch files (under the output, or ``--temp_location``);
- ``local``: where the launcher finishes the version (the ``.partial`` folder itself
  locally; for an object store, the version's folder in the readers' cache, which the
  launcher fills with the parts' files only as ``assemble_folder`` streams them);
- ``publish()``: the version made live: renamed and ``CURRENT`` replaced locally;
  uploaded (manifest last) and ``CURRENT`` switched with a conditional write remotely.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from indexes import remote, versions
from indexes.files import MANIFEST
from indexes.manifest import Manifest
from indexes.objectstore import ObjectStore, is_url, open_store, s3_settings_from_args
from inference.errors import CorpusbeamError
from pipeline.config import IndexJobConfig

__all__ = ["RunOutput", "open_output", "redact_args", "temp_location"]

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
    local: Path
    previous: str | None  # the live version's folder (path or URL), if any
    previous_manifest: Manifest | None
    _publish: object = field(repr=False, default=None)

    def fetch(self, names: Sequence[str]) -> None:
        """Bring the workers' files ``names`` (relative to the version) to ``local``."""
        fetch = getattr(self._publish, "fetch", None)
        if fetch is not None:
            fetch(names)

    def previous_folder(self) -> Path | None:
        """The live version as a local folder, for an update to start from: itself locally;
        for an object store, its copy in the readers' cache (the previous run left it there,
        else it is downloaded once)."""
        if self.previous is None:
            return None
        local = getattr(self._publish, "previous_folder", None)
        return local() if local is not None else Path(self.previous)

    def publish(self) -> Path:
        return self._publish.publish()  # type: ignore[union-attr]


def _remove_staging(staging: str) -> None:
    try:
        if FileSystems.exists(staging):
            FileSystems.delete([staging])
    except Exception as exc:
        log.warning("could not delete the staging files %s: %s", staging, exc)


class _LocalPublish:
    def __init__(self, out: Path, work: Path, name: str, staging: str) -> None:
        self.out, self.work, self.name, self.staging = out, work, name, staging

    def publish(self) -> Path:
        if Path(self.staging).is_dir():
            shutil.rmtree(self.staging)
        else:
            _remove_staging(self.staging)
        return versions.publish(self.out, self.work, self.name)


class _RemotePublish:
    def __init__(self, store: ObjectStore, run: RunOutput, tag: str | None, lease) -> None:
        self.store, self.run, self.tag, self.lease = store, run, tag, lease
        self.prefix = f"{remote.VERSIONS}/{run.name}"

    def fetch(self, names: Sequence[str]) -> None:
        for name in names:
            target = self.run.local / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.download(f"{self.prefix}/{name}", target)

    def _live_name(self) -> str | None:
        return self.run.previous.rstrip("/").rsplit("/", 1)[-1] if self.run.previous else None

    def previous_folder(self) -> Path:
        return remote.cached_version(self.run.root, version=self._live_name(), store=self.store)

    def _shared(self, names: Sequence[str]) -> dict[str, str]:
        """The files among ``names`` that the live version holds with the same bytes (an
        update shares its index files): copied inside the store, not uploaded."""
        live, previous = self._live_name(), self.run.previous_manifest
        if live is None or previous is None:
            return {}
        mine = Manifest.from_json((self.run.local / MANIFEST).read_text()).files
        return {
            n: f"{remote.VERSIONS}/{live}/{n}"
            for n in names
            if n in mine and mine[n].get("sha256") == previous.files.get(n, {}).get("sha256")
        }

    def publish(self) -> Path:
        local = self.run.local
        written = {k.split("/", 2)[2] for k, _ in self.store.list(f"{self.prefix}/")}
        names = sorted(
            p.relative_to(local).as_posix()
            for p in local.rglob("*")
            if p.is_file() and p.name != MANIFEST and p.relative_to(local).as_posix() not in written
        )
        shared = self._shared(names)
        for name, source in shared.items():
            self.store.copy(source, f"{self.prefix}/{name}")
        if shared:
            log.info("%d files shared with the live version: copied inside the store", len(shared))
        remote.upload_folder(self.store, local, self.prefix, [n for n in names if n not in shared])
        self.lease.check()
        remote.upload_folder(self.store, local, self.prefix, [MANIFEST])  # last
        remote.switch_current(self.store, self.run.name, self.tag)
        inside = f"{self.store.url}/"
        if self.run.staging.startswith(inside):  # delete what the run listed, by prefix
            self.store.delete_prefix(self.run.staging[len(inside) :].rstrip("/") + "/")
        else:
            _remove_staging(self.run.staging)
        remote.prune_versions(self.store, live=self.run.name)
        return local


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
        manifest = _local_manifest(previous)
        run = RunOutput(
            root=str(out),
            name=name,
            folder=str(work),
            staging=staging,
            local=work,
            previous=str(previous) if previous else None,
            previous_manifest=manifest,
        )
        run._publish = _LocalPublish(out, work, name, staging)
        yield run


def _local_manifest(previous: Path | None) -> Manifest | None:
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
        local = remote.cache_folder(url) / name
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        manifest = None
        if live is not None:
            try:
                data = store.read(f"{remote.VERSIONS}/{live}/{MANIFEST}")
                manifest = Manifest.from_json(data.decode())
            except CorpusbeamError as exc:
                log.warning("the live version %s cannot be read: %s", live, exc)
        run = RunOutput(
            root=url,
            name=name,
            folder=f"{url}/{remote.VERSIONS}/{name}",
            staging=staging,
            local=local,
            previous=f"{url}/{remote.VERSIONS}/{live}" if live else None,
            previous_manifest=manifest,
        )
        run._publish = _RemotePublish(store, run, tag, lease)
        try:
            yield run
        except BaseException:
            shutil.rmtree(local, ignore_errors=True)
            raise
