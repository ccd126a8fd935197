"""Checkpoints: what a run embedded survives the run, so the next one goes on from there.

The workers persist every batch the endpoint embedded as soon as it is done, keyed by
chunk id, content hash and a digest of the embedding settings; the next run with the same
settings takes those vectors instead of embedding them again (``transforms.resume``).

Layout, under the run's output (a local folder, ``s3://`` or ``gs://``; outside
``versions/`` and the staging, which a new run clears)::

    <output>/checkpoints/<settings digest>/
        <ms>-<uuid>.vectors.npz   the batch's vectors (``vectors``; ``rescore`` too when
                                  the index derives int8 rescoring vectors)
        <ms>-<uuid>.keys.npy      (n, 2) int64: chunk id, content-hash digest
                                  (``transforms.reuse.hash_digest``); written last

``<ms>`` is the batch's time (Unix milliseconds): its age. A batch counts once its keys
file exists; each file is written whole (a temporary name renamed locally; an object
store's put is atomic), so a run killed while writing leaves at most a stray vectors
file. The settings digest (``settings_digest``) covers the model, endpoint, deployment,
dimensions, encodings, input type and chunking options: other settings read another
folder and ignore these. The job clears its digest's folder once a version is published
(the version holds every vector), and at the start of a run deletes batches older than
its maximum age (``expire``; 7 days by default).

The reader a dry run uses: ``read_checkpointed(checkpoint_location(output, digest))``
gives the (chunk id, content-hash digest) pairs checkpointed there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
from apache_beam.io.filesystems import FileSystems

from indexes.storage.ids import chunk_id
from transforms.elements import Embedded
from transforms.reuse import hash_digest

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_MAX_AGE_DAYS",
    "CheckpointIndex",
    "checkpoint_location",
    "clear",
    "expire",
    "load_index",
    "read_checkpointed",
    "read_vectors",
    "settings_digest",
    "write_batch",
]

CHECKPOINTS = "checkpoints"
DEFAULT_MAX_AGE_DAYS = 7.0
KEYS = ".keys.npy"
VECTORS = ".vectors.npz"


def settings_digest(settings: Mapping[str, object]) -> str:
    """16 hex digits naming the embedding settings (model, endpoint, dimensions, encodings,
    input type, chunking: any JSON-able mapping; ``pipeline.job.resume`` builds the
    job's). Equal settings, equal digest; the order of the keys does not matter."""
    body = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def checkpoint_location(output_root: str, digest: str) -> str:
    """The folder (path or URL) of ``digest``'s checkpoints under an output."""
    return f"{str(output_root).rstrip('/')}/{CHECKPOINTS}/{digest}"


def _batch_name(now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:013d}-{uuid.uuid4().hex[:12]}"


def _write_whole(path: str, data: bytes) -> None:
    """Write ``path`` so that no reader sees it half written."""
    if "://" in path:  # an object store's object appears whole when its upload ends
        with FileSystems.create(path) as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{os.path.dirname(path)}/.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def write_batch(location: str, embedded: Sequence[Embedded]) -> str | None:
    """Persist one embedded batch under ``location``; returns its name (None: nothing
    to write). Vectors first, the keys last: the keys file is the batch's commit."""
    fresh = [e for e in embedded if np.asarray(e.vector).size]
    if not fresh:
        return None
    name = _batch_name()
    keys = np.array(
        [(chunk_id(e.document_id, e.chunk_index), hash_digest(e.content_hash)) for e in fresh],
        dtype=np.int64,
    ).reshape(-1, 2)
    arrays = {"vectors": np.stack([np.asarray(e.vector) for e in fresh])}
    if all(e.rescore is not None for e in fresh):
        arrays["rescore"] = np.stack([np.asarray(e.rescore) for e in fresh])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    base = location.rstrip("/")
    _write_whole(f"{base}/{name}{VECTORS}", buf.getvalue())
    out = io.BytesIO()
    np.save(out, keys, allow_pickle=False)
    _write_whole(f"{base}/{name}{KEYS}", out.getvalue())
    return name


def _batches(location: str) -> list[str]:
    """The committed batches' names under ``location``, oldest first."""
    base = location.rstrip("/")
    try:
        found = FileSystems.match([f"{base}/*{KEYS}"])[0].metadata_list
    except Exception:  # no folder yet: nothing checkpointed
        return []
    names = [m.path.rsplit("/", 1)[-1][: -len(KEYS)] for m in found]
    return sorted(n for n in names if not n.startswith("."))


class CheckpointIndex:
    """Every committed batch's keys under one location, sorted by (id, digest), each pair
    once: ``find(id, digest)`` gives (batch number, row) or None. 24 bytes a row."""

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/")
        self.batches = _batches(location)
        keys, batch, row = [], [], []
        for number, name in enumerate(self.batches):
            k = np.load(io.BytesIO(_read(f"{self.location}/{name}{KEYS}")), allow_pickle=False)
            keys.append(k.reshape(-1, 2))
            batch.append(np.full(len(k), number, dtype=np.int32))
            row.append(np.arange(len(k), dtype=np.int32))
        if keys:
            k, b, r = np.concatenate(keys), np.concatenate(batch), np.concatenate(row)
        else:
            k = np.empty((0, 2), np.int64)
            b = r = np.empty(0, np.int32)
        order = np.lexsort((k[:, 1], k[:, 0]))
        k, b, r = k[order], b[order], r[order]
        first = np.ones(len(k), dtype=bool)
        first[1:] = np.any(k[1:] != k[:-1], axis=1)
        self.ids, self.digests = k[first, 0].copy(), k[first, 1].copy()
        self.batch, self.row = b[first], r[first]

    def __len__(self) -> int:
        return int(self.ids.size)

    def find(self, id_: int, digest: int) -> tuple[int, int] | None:
        lo = int(np.searchsorted(self.ids, id_, side="left"))
        hi = int(np.searchsorted(self.ids, id_, side="right"))
        for pos in range(lo, hi):
            if self.digests[pos] == digest:
                return int(self.batch[pos]), int(self.row[pos])
        return None


_INDEXES: dict[tuple[str, str], CheckpointIndex] = {}
_LOCK = threading.Lock()


def load_index(location: str, run: str) -> CheckpointIndex:
    """``location``'s ``CheckpointIndex`` as run ``run`` (a token of the pipeline) found
    it: loaded once a process and run (the last run's only is kept)."""
    with _LOCK:
        key = (location, run)
        if key not in _INDEXES:
            _INDEXES.clear()
            _INDEXES[key] = CheckpointIndex(location)
        return _INDEXES[key]


def read_checkpointed(location: str) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids, content-hash digests) checkpointed under ``location``, sorted, each
    pair once: what a run with these settings would not embed again (a chunk counts when
    its id and ``transforms.reuse.hash_digest(content_hash)`` are both here)."""
    index = CheckpointIndex(location)
    return index.ids, index.digests


def read_vectors(location: str, name: str) -> dict[str, np.ndarray]:
    """One batch's arrays: ``vectors`` and, when kept, ``rescore``."""
    data = _read(f"{location.rstrip('/')}/{name}{VECTORS}")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def clear(location: str) -> None:
    """Delete every checkpoint under ``location`` (a published version holds them)."""
    base = location.rstrip("/")
    if "://" not in base:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        return
    found = FileSystems.match([f"{base}/**"])[0].metadata_list
    if found:
        FileSystems.delete([m.path for m in found])


def expire(root: str, max_age_days: float, now: float | None = None) -> int:
    """Delete batches under ``<root>/checkpoints/`` older than ``max_age_days`` (any
    settings digest; their age is in their name); returns how many were deleted."""
    base = f"{str(root).rstrip('/')}/{CHECKPOINTS}"
    cutoff_ms = ((time.time() if now is None else now) - max_age_days * 86400) * 1000
    try:
        found = FileSystems.match([f"{base}/*/*"])[0].metadata_list
    except Exception:
        return 0
    old, batches = [], set()
    for m in found:
        name = m.path.rsplit("/", 1)[-1]
        stamp = name.lstrip(".").split("-", 1)[0]
        if (stamp.isdigit() and int(stamp) < cutoff_ms) or name.startswith(".tmp-"):
            old.append(m.path)
            batches.add(name.split(".", 1)[0])
    keys_first = sorted(old, key=lambda p: not p.endswith(KEYS))  # uncommit, then delete
    if keys_first:
        FileSystems.delete(keys_first)
    return len(batches)
