"""Move ``CURRENT`` back: to the previous complete version, or to a named one.

    rollback("out/")                  the newest complete version older than the live one
    rollback("s3://bucket/idx", "v20261205T010000Z-3f2a9c")
    rollback("out/", "v...", force=True)   a rejected version (its gate refused it)

The switch is the one the index job makes: locally under the output's lock (refused
while a run holds it) with the atomic ``CURRENT`` replace; on ``s3://`` / ``gs://``
holding the output's lease (refused while a live run holds it) with the conditional
write on ``CURRENT``'s tag, so a run that publishes meanwhile makes the rollback fail
rather than be overwritten. Services that follow ``CURRENT`` (``corpusbeam serve``)
swap to the target as they do after a run.

Refused, with the reason: an unknown version, the live one, a partial version (a killed
run's, unfinished: it cannot be served, even with ``force``), a rejected version without
``force``, and an output with no earlier complete version.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corpusbeam.errors import ConfigError
from indexes.storage import remote_versions as remote
from indexes.storage import versions as local
from indexes.storage.objectstore import ObjectStore, is_url, open_store
from indexes.storage.version_list import VersionInfo, list_versions, rollback_target

__all__ = ["RollbackResult", "choose_target", "rollback"]

# How long a rollback's own lease on an object-store output lasts if it dies holding it.
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class RollbackResult:
    output: str
    previous: str | None  # the version CURRENT named before
    current: str  # the version it names now


def choose_target(
    infos: list[VersionInfo], live: str | None, version: str | None, *, force: bool, where: str
) -> str:
    """The version to make live, or ConfigError saying why none can be."""
    if version is None:
        target = rollback_target(infos, live)
        if target is None:
            raise ConfigError(
                "version", None, f"{where} has no complete version older than the live one {live}"
            )
        return target
    info = next((v for v in infos if v.name == version), None)
    if info is None:
        known = ", ".join(v.name for v in infos) or "none"
        raise ConfigError("version", version, f"{where} has no such version (it has: {known})")
    if info.state == "live":
        raise ConfigError("version", version, "is already the live version")
    if info.state == "partial":
        raise ConfigError(
            "version", version, "is partial (an unfinished run's): it cannot be served"
        )
    if info.state == "rejected" and not force:
        reasons = "; ".join((info.gate or {}).get("reasons", [])) or "its gate rejected it"
        raise ConfigError("version", version, f"was rejected ({reasons}); pass --force to use it")
    return version


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """The output's lock (``indexes.storage.versions``), without clearing partial
    folders: a rollback leaves a killed run's work for the next run to resume."""
    if not out.is_dir():
        raise ConfigError("dir", os.fspath(out), "no such folder")
    busy = ConfigError(
        "dir", os.fspath(out), "a run is writing this output (it holds .lock); try later"
    )
    with local.held_lock(out, busy):
        yield


def rollback(
    output: str | os.PathLike,
    version: str | None = None,
    *,
    force: bool = False,
    store: ObjectStore | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> RollbackResult:
    """Make ``version`` (default: the previous complete one) live; see the module doc."""
    if is_url(output):
        return _remote(store or open_store(os.fspath(output)), version, force, lease_seconds)
    out = Path(output)
    with _locked(out):
        live = local.read_current(out)
        target = choose_target(list_versions(out), live, version, force=force, where=str(out))
        local.write_current(out, target)
    return RollbackResult(output=str(out), previous=live, current=target)


def _remote(
    store: ObjectStore, version: str | None, force: bool, lease_seconds: float
) -> RollbackResult:
    with remote.hold_lease(store, seconds=lease_seconds):
        live, tag = remote.read_current(store)
        infos = list_versions(store.url, store=store)
        target = choose_target(infos, live, version, force=force, where=store.url)
        remote.switch_current(store, target, tag)
    return RollbackResult(output=store.url, previous=live, current=target)
