"""Metadata rows by id at memory speed: each part's metadata as a memory-mapped Arrow file.

A hit's row used to be read from its part's Parquet file: the row group holding it was
decompressed and decoded whole (1,024 rows) for the one row, about 1.5 ms a hit. A part's
metadata is also kept as an uncompressed Arrow IPC file, which is memory-mapped: finding
a row is a binary search in the mapped ``id`` column, and reading it touches only that
row's bytes in each column (tens of microseconds for the whole row, at any corpus size).
Nothing is loaded whole: the kernel pages in what is read, and can drop it again.

The Arrow file is derived from the Parquet file the first time a reader opens the part
(``RowFile.open``), and kept beside the version's files::

    <version>/.rows/part-00003.<first 16 hex of the Parquet file's sha256>.arrow

so that it lives and dies with its version (and a cached copy of an object-store version,
``indexes.storage.remote_versions``); it is not listed in the manifest, which describes
what the job wrote. A folder that cannot be written to keeps its Arrow files under the
cache (``CORPUSBEAM_CACHE``, default ``~/.cache/corpusbeam``) in ``rows/``, named by the
Parquet file's sha256. A file is written under a temporary name and renamed into place,
so readers racing to derive the same part each see a whole file; a file whose recorded
source size or row count disagrees with the Parquet file is derived again.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusbeam.errors import IndexFolderError

__all__ = ["ROWS_DIR", "RowFile", "derive_rows", "rows_path"]

log = logging.getLogger(__name__)

ROWS_DIR = ".rows"
_BATCH_ROWS = 65_536  # record batches this long keep every string column's offsets int32
_SOURCE_BYTES = b"corpusbeam.source_bytes"
_CACHE_ENV = "CORPUSBEAM_CACHE"  # indexes.storage.remote_versions.CACHE_ENV


def rows_path(folder: Path, part: str, digest: str | None) -> Path:
    """Where part ``part`` (``parts/part-00003``) of ``folder`` keeps its Arrow file."""
    tag = (digest or "nodigest")[:16]
    return folder / ROWS_DIR / f"{Path(part).name}.{tag}.arrow"


def _cache_path(source: Path, digest: str | None) -> Path:
    env = os.environ.get(_CACHE_ENV)
    root = Path(env) if env else Path.home() / ".cache" / "corpusbeam"
    if digest is None:
        st = source.stat()
        digest = f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
    return root / "rows" / f"{digest}.arrow"


def derive_rows(source: Path, target: Path) -> None:
    """Write the Parquet metadata file ``source`` as the Arrow file ``target``, streamed
    in record batches (memory bounded by one batch), under a temporary name first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        pf = pq.ParquetFile(source)
        meta = {_SOURCE_BYTES: str(source.stat().st_size).encode()}
        schema = pf.schema_arrow.with_metadata(meta)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS):
                writer.write_batch(pa.record_batch(batch.columns, schema=schema))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class RowFile:
    """One part's metadata rows, memory-mapped, found by id. Thread-safe (read-only)."""

    def __init__(self, path: Path, batches: Sequence[pa.RecordBatch]) -> None:
        self.path = path
        self._batches = [b for b in batches if b.num_rows]
        # The mapped id column of each batch (no copy) and each batch's first id.
        self._ids = [b.column("id").to_numpy() for b in self._batches]
        self._firsts = np.array([a[0] for a in self._ids], dtype=np.int64)

    @property
    def rows(self) -> int:
        return sum(b.num_rows for b in self._batches)

    @classmethod
    def open(cls, source: Path, folder: Path, part: str, *, digest: str | None, rows: int):
        """The Arrow file of the part whose Parquet file is ``source``, derived first when
        there is none (or a stale one); None when it can be neither read nor written, and
        the caller reads the Parquet file instead."""
        for target in (rows_path(folder, part, digest), _cache_path(source, digest)):
            got = cls._read(target, source, rows)
            if got is not None:
                return got
            try:
                derive_rows(source, target)
            except OSError as exc:
                log.info("%s: cannot write %s (%s)", source, target, exc)
                continue
            except pa.ArrowInvalid as exc:
                raise IndexFolderError(f"{source}: cannot be read ({exc})") from None
            got = cls._read(target, source, rows)
            if got is not None:
                return got
        return None

    @classmethod
    def _read(cls, target: Path, source: Path, rows: int) -> RowFile | None:
        """The mapped file at ``target`` if it is whole and derived from ``source``."""
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(target), "r"))
            size = (reader.schema.metadata or {}).get(_SOURCE_BYTES)
            if size is None or int(size) != source.stat().st_size:
                return None
            got = cls(target, [reader.get_batch(i) for i in range(reader.num_record_batches)])
        except (OSError, ValueError, pa.ArrowInvalid):
            return None
        return got if got.rows == rows else None

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(batch, row in it, found) of each id."""
        batch = np.maximum(np.searchsorted(self._firsts, ids, side="right") - 1, 0)
        pos = np.zeros(ids.size, dtype=np.int64)
        found = np.zeros(ids.size, dtype=bool)
        for b in np.unique(batch).tolist():
            sel = batch == b
            have = self._ids[b]
            p = np.minimum(np.searchsorted(have, ids[sel]), have.size - 1)
            pos[sel] = p
            found[sel] = have[p] == ids[sel]
        return batch, pos, found

    def lookup(self, ids: np.ndarray) -> list[dict]:
        """The row of each id (in the order given); an id the part does not hold raises
        IndexFolderError."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if not self._batches:
            if ids.size:
                raise IndexFolderError(f"{self.path}: id {int(ids[0])} is in no part")
            return []
        batch, pos, found = self.positions(ids)
        if not found.all():
            raise IndexFolderError(f"{self.path}: id {int(ids[~found][0])} is in no part")
        out: list[dict | None] = [None] * ids.size
        for b in np.unique(batch).tolist():
            sel = np.flatnonzero(batch == b)
            taken = self._batches[b].take(pa.array(pos[sel])).to_pylist()
            for r, row in zip(sel.tolist(), taken, strict=True):
                out[r] = row
        return out  # type: ignore[return-value]
