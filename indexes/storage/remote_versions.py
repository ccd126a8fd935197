"""Versioned outputs on an object store, and the local cache readers search from.

    s3://bucket/index/
      CURRENT               the live version's name; switched with a conditional write
      versions/<name>/      one version: its files never change once written; the
                            manifest is written last, so a version without one is
                            unfinished (a killed run) and never named by CURRENT
      staging/<name>/       a run's scratch files (runs, shards), deleted when it ends
      .lease                the running job's lease: created only if absent, renewed
                            while the run lives, expired (and taken over) if it dies

Object stores have no rename and no lock, so the job never moves a version: workers
write it in place (the parts, then the index and the rest, ``pipeline.finish_remote``),
the launcher its small files and the manifest last, and only then does ``switch_current``
replace ``CURRENT`` on the condition that it still holds what the run read at its
start (S3 ``If-Match`` on the ETag, GCS ``ifGenerationMatch``). ``hold_lease`` creates
``.lease`` with ``If-None-Match: *``: a second run is refused while the lease is live;
a killed run stops renewing it and the next run takes it over once it has expired.

Readers cannot memory-map an object (faiss#1082): ``cached_version`` downloads a
version into ``CACHE/<output>/<version>/`` once, checks every file's size against the
manifest (``open_index`` then checks every sha256), reuses it across restarts and evicts
the older versions it cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from corpusbeam.errors import ConfigError, IndexFolderError, JobError
from indexes.storage.files import MANIFEST
from indexes.storage.manifest import Manifest
from indexes.storage.objectstore import ObjectStore, PreconditionFailed, open_store

__all__ = [
    "CACHE_ENV",
    "DEFAULT_LEASE_SECONDS",
    "LEASE",
    "cache_folder",
    "cached_version",
    "clear_unfinished",
    "hold_lease",
    "read_current",
    "switch_current",
    "upload_folder",
]

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
VERSIONS = "versions"
STAGING = "staging"
LEASE = ".lease"
DEFAULT_LEASE_SECONDS = 600.0
CACHE_ENV = "CORPUSBEAM_CACHE"
EXTRA_FILES = ("failures.parquet", "report.json")
KEEP_CACHED = 2
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def read_current(store: ObjectStore) -> tuple[str | None, str | None]:
    """(the version CURRENT names, CURRENT's version tag); (None, None) if absent."""
    data, tag = store.get(CURRENT)
    if data is None:
        return None, None
    name = data.decode("utf-8", "replace").strip()
    if not _VERSION_NAME.match(name):
        raise IndexFolderError(f"{store.url}/{CURRENT}: {name!r} is not a version name")
    return name, tag


def switch_current(store: ObjectStore, name: str, expected_tag: str | None) -> str:
    """Point CURRENT at ``name`` only if it still has ``expected_tag`` (or is still
    absent when that is None); JobError when another writer moved it."""
    try:
        if expected_tag is None:
            return store.put(CURRENT, f"{name}\n".encode(), if_none_match=True)
        return store.put(CURRENT, f"{name}\n".encode(), if_match=expected_tag)
    except PreconditionFailed:
        raise JobError(
            f"{store.url}/{CURRENT} changed during the run; {name} was written but not made live"
        ) from None


class _Lease:
    def __init__(self, store: ObjectStore, seconds: float, clock: Callable[[], float]) -> None:
        self.store, self.seconds, self.clock = store, seconds, clock
        self.owner = secrets.token_hex(8)
        self.tag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": self.clock() + self.seconds}).encode()

    def take(self) -> None:
        try:
            self.tag = self.store.put(LEASE, self._body(), if_none_match=True)
            return
        except PreconditionFailed:
            pass
        data, tag = self.store.get(LEASE)
        held = _parse(data)
        if data is not None and held.get("expires", 0) > self.clock():
            left = held["expires"] - self.clock()
            raise ConfigError(
                "output",
                self.store.url,
                f"another run is writing this output (its lease expires in {left:.0f} s)",
            )
        try:  # the lease expired (its run died): take it over, if nobody else did first
            if data is None:
                self.tag = self.store.put(LEASE, self._body(), if_none_match=True)
            else:
                self.tag = self.store.put(LEASE, self._body(), if_match=tag)
        except PreconditionFailed:
            raise ConfigError(
                "output", self.store.url, "another run took over the expired lease first"
            ) from None
        log.info("took over the expired lease of %s", self.store.url)

    def renew(self) -> None:
        if self.lost:
            return
        try:
            self.tag = self.store.put(LEASE, self._body(), if_match=self.tag)
        except (PreconditionFailed, IndexFolderError) as exc:
            self.lost = str(exc)

    def keep_renewing(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            self.renew()

    def check(self) -> None:
        """Renew now; JobError if the lease was lost (another run took it over)."""
        self.renew()
        if self.lost:
            raise JobError(f"lost the lease on {self.store.url}: {self.lost}")

    def release(self) -> None:
        self._stop.set()
        data, _ = self.store.get(LEASE)
        if _parse(data).get("owner") == self.owner:
            self.store.delete(LEASE)


def _parse(data: bytes | None) -> dict:
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}


@contextlib.contextmanager
def hold_lease(
    store: ObjectStore,
    *,
    seconds: float = DEFAULT_LEASE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> Iterator[_Lease]:
    """Hold the output's lease for a run (renewed every ``seconds / 3``); a second run is
    refused with ConfigError while it is live. ``lease.check()`` before publishing."""
    if seconds <= 0:
        raise ConfigError("lease_seconds", seconds, "must be positive")
    lease = _Lease(store, seconds, clock)
    lease.take()
    renewer = threading.Thread(target=lease.keep_renewing, daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        lease.release()
        renewer.join()


def clear_unfinished(store: ObjectStore, live: str | None) -> None:
    """Delete what killed runs left: staging and versions without a manifest."""
    store.delete_prefix(f"{STAGING}/")
    names: dict[str, bool] = {}
    for key, _ in store.list(f"{VERSIONS}/"):
        parts = key.split("/")
        if len(parts) >= 3:
            names[parts[1]] = names.get(parts[1], False) or parts[2] == MANIFEST
    for name, finished in names.items():
        if not finished and name != live:
            store.delete_prefix(f"{VERSIONS}/{name}/")


def upload_folder(store: ObjectStore, folder: Path, prefix: str, names) -> None:
    """Upload ``names`` (relative to ``folder``) under ``prefix``, in the order given, each
    streamed from its file."""
    for name in names:
        store.upload(f"{prefix}/{name}", folder / name)


def _cache_root(cache: str | os.PathLike | None) -> Path:
    if cache is not None:
        return Path(cache)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "corpusbeam"


def cache_folder(url: str, cache: str | os.PathLike | None = None) -> Path:
    """The cache folder of the output ``url``: one folder a version inside it."""
    url = url.rstrip("/")
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[-1])[-60:]
    return _cache_root(cache) / f"{tail}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _complete(folder: Path, manifest_bytes: bytes) -> bool:
    """Whether ``folder`` holds this manifest and every file it lists at its size."""
    try:
        if (folder / MANIFEST).read_bytes() != manifest_bytes:
            return False
    except OSError:
        return False
    manifest = Manifest.from_json(manifest_bytes.decode())
    for name, info in manifest.files.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != info.get("bytes"):
            return False
    return True


def cached_version(
    url: str,
    *,
    version: str | None = None,
    cache: str | os.PathLike | None = None,
    store: ObjectStore | None = None,
    keep: int = KEEP_CACHED,
) -> Path:
    """A local, complete copy of ``version`` (default: the one CURRENT names) of the
    object-store output ``url``, downloaded once and reused; older cached versions of the
    same output beyond ``keep`` are evicted."""
    store = store or open_store(url)
    if version is None:
        version, _ = read_current(store)
        if version is None:
            raise IndexFolderError(f"{url} has no {CURRENT}: no version was published yet")
    if not _VERSION_NAME.match(version):
        raise IndexFolderError(f"{url}: {version!r} is not a version name")
    prefix = f"{VERSIONS}/{version}"
    manifest_bytes, _ = store.get(f"{prefix}/{MANIFEST}")
    if manifest_bytes is None:
        raise IndexFolderError(f"{url}/{prefix} has no {MANIFEST}: not a finished version")
    root = cache_folder(url, cache)
    folder = root / version
    if not _complete(folder, manifest_bytes):
        _download(store, f"{url}/{prefix}", prefix, manifest_bytes, folder)
    os.utime(folder)
    _evict(root, keep=keep, live=version)
    return folder


def _download(
    store: ObjectStore, where: str, prefix: str, manifest_bytes: bytes, folder: Path
) -> None:
    """Download the version under ``prefix`` into a folder of its own, then move it into
    place (``_put_in_place``): a reader never sees a half-written copy."""
    manifest = Manifest.from_json(manifest_bytes.decode())
    tmp = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir(parents=True)
    try:
        for name, info in manifest.files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            store.download(f"{prefix}/{name}", tmp / name)
            if (tmp / name).stat().st_size != info.get("bytes"):
                raise IndexFolderError(f"{where}/{name} has the wrong size")
        for name in EXTRA_FILES:
            data, _ = store.get(f"{prefix}/{name}")
            if data is not None:
                (tmp / name).write_bytes(data)
        (tmp / MANIFEST).write_bytes(manifest_bytes)
        _put_in_place(tmp, folder, manifest_bytes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _put_in_place(tmp: Path, folder: Path, manifest_bytes: bytes) -> None:
    """Rename the finished download ``tmp`` to ``folder``. Several readers may download the
    same version at once: a complete copy another one put there first is kept (its
    readers may have its files open) and ``tmp`` is left for the caller to remove; only an
    incomplete copy (a crash's leftover) is moved aside, then removed."""
    for _ in range(3):
        if _complete(folder, manifest_bytes):
            return
        if folder.exists():
            aside = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.old")
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, folder)  # fails if another reader's copy arrived just now
            return
        except OSError:
            continue
    raise IndexFolderError(f"{folder}: could not put the downloaded version in place")


def _evict(root: Path, *, keep: int, live: str) -> None:
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    for p in folders[:-keep]:
        if p.name != live:
            shutil.rmtree(p, ignore_errors=True)
