"""Every version of an index job's output, its state and its bytes; which ones pruning keeps.

``list_versions(output)`` answers one ``VersionInfo`` a version, oldest first, for a local
folder or an ``s3://`` / ``gs://`` output. A version is in one state:

- ``live``: the one ``CURRENT`` names;
- ``complete``: finished, not live (a rollback target);
- ``rejected``: finished, but its quality gate refused it (``gate.json`` beside its
  manifest says ``"status": "rejected"``; ``pipeline.gate``); never made live;
- ``partial``: unfinished (a ``<name>.partial`` folder locally, a version without a
  manifest on an object store): a killed run's, which the next run may resume from.

Bytes: locally versions share files by hard links, so a file counts as *shared* when its
inode is also under another version, else as the version's *own*. An object store holds
every version's files as its own objects (an update copies the live version's files
server-side): there ``bytes_own`` is what the version's objects hold, and
``bytes_shared`` the part of it whose content (the manifest's sha256) another version
holds too: the same bytes, stored again.

Pruning (``prune_local``, ``prune_remote``) keeps the newest ``keep`` finished versions
of any state, rejected ones included, and always the live version and its rollback
target (``rollback_target``: the newest complete version older than the live one).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from corpusbeam.errors import IndexFolderError
from indexes.storage import remote_versions as remote
from indexes.storage import versions as local
from indexes.storage.files import MANIFEST
from indexes.storage.objectstore import ObjectStore, is_url, open_store

__all__ = [
    "GATE_FILE",
    "STATES",
    "VersionInfo",
    "list_versions",
    "prune_local",
    "prune_remote",
    "rollback_target",
]

GATE_FILE = "gate.json"
REPORT = "report.json"
STATES = ("live", "complete", "rejected", "partial")


@dataclass(frozen=True)
class VersionInfo:
    """One version as ``corpusbeam versions`` shows it."""

    name: str
    state: str  # one of STATES
    created: str | None = None
    documents: int | None = None  # documents and images read by its run
    chunks: int | None = None  # vectors indexed
    index: str | None = None  # the FAISS factory
    recall: float | None = None  # recall@k against exact search, measured by the build
    gate: dict | None = None  # gate.json: the figures, the verdict, what against what
    bytes_own: int = 0
    bytes_shared: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _recall(manifest: dict) -> float | None:
    recall = manifest.get("recall")
    if isinstance(recall, dict) and isinstance(recall.get("recall"), int | float):
        return float(recall["recall"])
    return None


def _info(
    name: str, state: str, docs: dict[str, bytes | None], sizes: tuple[int, int]
) -> VersionInfo:
    """A VersionInfo from a version's small files (raw bytes, None when absent)."""
    manifest = _json(docs.get(MANIFEST))
    report = _json(docs.get(REPORT))
    gate = _json(docs.get(GATE_FILE)) or None
    if state == "complete" and gate and gate.get("status") == "rejected":
        state = "rejected"
    counts = report.get("counts", {})
    documents = None
    if counts:
        documents = int(counts.get("documents_read", 0)) + int(counts.get("images_read", 0))
    return VersionInfo(
        name=name,
        state=state,
        created=manifest.get("created"),
        documents=documents,
        chunks=manifest.get("count"),
        index=manifest.get("index_factory"),
        recall=_recall(manifest),
        gate=gate,
        bytes_own=sizes[0],
        bytes_shared=sizes[1],
    )


def _json(data: bytes | None) -> dict:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def list_versions(
    output: str | os.PathLike, *, store: ObjectStore | None = None
) -> list[VersionInfo]:
    """Every version of ``output`` (a folder or an object-store URL), oldest first."""
    if is_url(output):
        return _remote(store or open_store(os.fspath(output)))
    if not Path(output).is_dir():
        raise IndexFolderError(f"{output}: no such folder")
    return _local(Path(output))


# ---- local folders -----------------------------------------------------------------------


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _local_folders(out: Path) -> list[tuple[str, Path, bool]]:
    """(name, folder, partial) of every version folder; a run's staging is not a version."""
    root = out / local.VERSIONS
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.iterdir()):
        if not p.is_dir():
            continue
        partial = p.name.endswith(local.PARTIAL)
        name = p.name[: -len(local.PARTIAL)] if partial else p.name
        if partial and name.endswith("-staging"):
            continue
        found.append((name, p, partial))
    return found


def _local_sizes(folders: list[tuple[str, Path, bool]]) -> dict[str, tuple[int, int]]:
    """(own, shared) bytes of each version: a file is shared when its inode (a hard link)
    is also under another version."""
    files: dict[str, list[os.stat_result]] = {}
    owners: dict[tuple[int, int], set[str]] = {}
    for name, folder, _ in folders:
        stats = [f.stat() for f in folder.rglob("*") if f.is_file()]
        files[name] = stats
        for st in stats:
            owners.setdefault((st.st_dev, st.st_ino), set()).add(name)
    sizes = {}
    for name, stats in files.items():
        shared = sum(st.st_size for st in stats if len(owners[(st.st_dev, st.st_ino)]) > 1)
        sizes[name] = (sum(st.st_size for st in stats) - shared, shared)
    return sizes


def _local(out: Path) -> list[VersionInfo]:
    live = local.read_current(out)
    folders = _local_folders(out)
    sizes = _local_sizes(folders)
    infos = []
    for name, folder, partial in folders:
        state = "partial" if partial else "live" if name == live else "complete"
        docs = {f: _read(folder / f) for f in (MANIFEST, REPORT, GATE_FILE)}
        infos.append(_info(name, state, docs, sizes[name]))
    return infos


# ---- object stores -----------------------------------------------------------------------


def _remote(store: ObjectStore) -> list[VersionInfo]:
    live, _ = remote.read_current(store)
    keys: dict[str, dict[str, int]] = {}
    for key, size in store.list(f"{remote.VERSIONS}/"):
        parts = key.split("/", 2)
        if len(parts) == 3:
            keys.setdefault(parts[1], {})[parts[2]] = size
    docs = {
        name: {
            f: (store.get(f"{remote.VERSIONS}/{name}/{f}")[0] if f in files else None)
            for f in (MANIFEST, REPORT, GATE_FILE)
        }
        for name, files in keys.items()
    }
    digests = {name: _digests(d.get(MANIFEST)) for name, d in docs.items()}
    infos = []
    for name in sorted(keys):
        files = keys[name]
        state = "partial" if MANIFEST not in files else "live" if name == live else "complete"
        others = {h for n, ds in digests.items() if n != name for h in ds.values()}
        shared = sum(files.get(f, 0) for f, h in digests[name].items() if h in others)
        infos.append(_info(name, state, docs[name], (sum(files.values()), shared)))
    return infos


def _digests(manifest: bytes | None) -> dict[str, str]:
    files = _json(manifest).get("files", {})
    return {f: i["sha256"] for f, i in files.items() if isinstance(i, dict) and i.get("sha256")}


# ---- which versions stay -----------------------------------------------------------------


def rollback_target(infos: Iterable[VersionInfo], live: str | None) -> str | None:
    """The version a rollback without a name goes to: the newest complete (neither
    rejected nor partial) version older than ``live``."""
    older = [v.name for v in infos if v.state == "complete" and (live is None or v.name < live)]
    return older[-1] if older else None


def _doomed(infos: list[VersionInfo], keep: int) -> list[str]:
    """The finished versions beyond the newest ``keep``, except the live one and the
    rollback target."""
    if keep < 1:
        raise ValueError(f"keep={keep}: must be at least 1")
    live = next((v.name for v in infos if v.state == "live"), None)
    protected = {live, rollback_target(infos, live)}
    finished = [v.name for v in infos if v.state != "partial"]
    return [n for n in finished[:-keep] if n not in protected]


def prune_local(out: str | os.PathLike, *, keep: int) -> list[str]:
    """Delete the versions of the folder ``out`` that pruning does not keep; their names."""
    infos = _local(Path(out))
    doomed = _doomed(infos, keep)
    for name in doomed:
        shutil.rmtree(Path(out) / local.VERSIONS / name, ignore_errors=True)
    return doomed


def prune_remote(store: ObjectStore, *, keep: int) -> list[str]:
    """Delete the versions of the object-store output that pruning does not keep."""
    doomed = _doomed(_remote(store), keep)
    for name in doomed:
        store.delete_prefix(f"{remote.VERSIONS}/{name}/")
    return doomed
