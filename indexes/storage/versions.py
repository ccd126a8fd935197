"""Versioned output folders: each run writes a new version; ``CURRENT`` names the live one.

    OUTPUT/
      CURRENT              the live version's name, replaced atomically (temp + os.replace)
      versions/<name>/     one complete index folder per successful run
      versions/<name>.partial/   a run in progress (or killed): never served
      .lock                held (flock) by the run writing this output

A run builds in ``<name>.partial`` and renames it to ``<name>`` only when it is
complete, then switches ``CURRENT``. A killed run leaves a ``.partial`` folder behind
and ``CURRENT`` untouched, so the last good version keeps serving; the next run clears
stale partial folders under the lock. Readers resolve ``OUTPUT`` through ``CURRENT``.

An ``s3://`` or ``gs://`` output has the same ``CURRENT`` and ``versions/`` but no rename
and no lock: ``indexes.storage.remote_versions`` writes versions in place (manifest last), switches
``CURRENT`` with a conditional write and holds a lease instead; readers given such a URL
search a verified local copy of the version (``indexes.storage.remote_versions.cached_version``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from corpusbeam.errors import IndexFolderError, OutputBusyError
from indexes.storage.files import MANIFEST
from indexes.storage.objectstore import is_url, open_store

__all__ = [
    "CURRENT",
    "acquire_lock",
    "current_version",
    "is_url",
    "new_version_name",
    "publish",
    "read_current",
    "resolve_index_folder",
    "write_current",
]

CURRENT = "CURRENT"
VERSIONS = "versions"
PARTIAL = ".partial"
LOCK = ".lock"
KEEP_VERSIONS = 3
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def new_version_name() -> str:
    """A sortable, unique version name: ``vYYYYMMDDTHHMMSSZ-<6 hex>``."""
    return f"v{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def current_version(output: str | os.PathLike) -> Path | None:
    """The live version's folder, or None when the output has none yet. ``CURRENT`` is
    read by ``read_current``, the one reader every caller shares, so a name that is not a
    plain version name (``../x``) is refused here as everywhere."""
    out = Path(output)
    name = read_current(out)
    if name is None:
        return None
    folder = out / VERSIONS / name
    if not folder.is_dir():
        raise IndexFolderError(f"{out}: {CURRENT} names {name!r}, but {folder} is missing")
    return folder


def read_current(output: str | os.PathLike) -> str | None:
    """The version name in ``OUTPUT/CURRENT``, or None when there is no such file.

    A name that is not a plain version name (``v1``, ``v20261122T001500Z-3f2a9c``; no
    path separators, no ``..``) raises IndexFolderError. ``OUTPUT`` may be an object
    store URL.
    """
    if is_url(output):
        from indexes.storage import remote_versions as remote

        return remote.read_current(open_store(output))[0]
    pointer = Path(output) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexFolderError(f"{pointer}: cannot be read ({exc.strerror})") from None
    if not _VERSION_NAME.match(name):
        raise IndexFolderError(f"{pointer}: {name!r} is not a version name")
    return name


def resolve_index_folder(path: str | os.PathLike) -> Path:
    """The index folder to open for ``path``: ``path`` itself when it holds
    ``manifest.json``, else ``path/versions/<CURRENT>``; anything else raises
    IndexFolderError saying what was looked for. For an ``s3://`` or ``gs://`` output, the
    local cached copy of the version ``CURRENT`` names (downloaded once)."""
    if is_url(path):
        from indexes.storage import remote_versions as remote

        return remote.cached_version(path)
    p = Path(path)
    if not p.is_dir():
        raise IndexFolderError(f"{p} is not an index folder or output directory: no such directory")
    if (p / MANIFEST).is_file():
        return p
    folder = current_version(p)
    if folder is None:
        raise IndexFolderError(
            f"{p} is neither an index folder (manifest.json) nor an index output directory "
            f"({CURRENT} naming a folder under {VERSIONS}/)"
        )
    return folder


@contextlib.contextmanager
def held_lock(out: Path, busy: Exception) -> Iterator[IO[str]]:
    """``OUT/.lock`` held with ``flock`` until the block ends (the operating system
    releases it when the process dies); ``busy`` is raised at once while another process
    holds it."""
    with open(out / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield handle


@contextlib.contextmanager
def acquire_lock(output: str | os.PathLike) -> Iterator[Path]:
    """Hold the output's lock for a run (``held_lock``); a second run fails at once with
    a clear error, and a killed run never leaves the output locked."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    busy = OutputBusyError(
        "output", os.fspath(out), "another run is writing this output (it holds .lock)"
    )
    with held_lock(out, busy) as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _clear_partials(out)
        yield out


def partial_folder(output: str | os.PathLike, name: str) -> Path:
    """Where a run builds version ``name`` until it is complete."""
    folder = Path(output) / VERSIONS / f"{name}{PARTIAL}"
    folder.mkdir(parents=True)
    return folder


def publish(
    output: str | os.PathLike,
    partial: Path,
    name: str,
    *,
    keep: int = KEEP_VERSIONS,
    make_live: bool = True,
) -> Path:
    """Make a complete version live: rename it into place, then switch CURRENT atomically.
    ``make_live=False`` (a version its gate rejected) renames it and leaves CURRENT.
    Then prunes to ``keep`` versions (``indexes.storage.version_list``)."""
    from indexes.storage.version_list import prune_local  # it reads this module's names

    out = Path(output)
    final = out / VERSIONS / name
    os.replace(partial, final)
    if make_live:
        write_current(out, name)
    prune_local(out, keep=keep)
    return final


def write_current(output: str | os.PathLike, name: str) -> None:
    """Point ``CURRENT`` at ``name`` atomically (temp file, fsync, rename)."""
    out = Path(output)
    tmp = out / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.write_text(name + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out / CURRENT)


def _clear_partials(out: Path) -> None:
    versions = out / VERSIONS
    if versions.is_dir():
        for p in versions.iterdir():
            if p.name.endswith(PARTIAL):
                shutil.rmtree(p, ignore_errors=True)
