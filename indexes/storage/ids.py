"""Stable int64 ids for document chunks.

An id is the first 8 bytes of ``blake2b(document_id + "\\x00" + str(chunk))``, read
big-endian and masked to 63 bits, so it is non-negative, the same on every run and
machine, and never -1 (FAISS's "no result"). The same id goes into the FAISS index
(``add_with_ids``) and into ``metadata.parquet``: nothing links them by row position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from corpusbeam.errors import ConfigError

__all__ = ["check_ids", "chunk_id", "chunk_ids"]

_MASK = (1 << 63) - 1


def chunk_id(document_id: str, chunk: int) -> int:
    """The stable 63-bit id of chunk number ``chunk`` of document ``document_id``."""
    if not isinstance(document_id, str) or not document_id:
        raise ConfigError("document_id", document_id, "must be a non-empty string")
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 0:
        raise ConfigError("chunk", chunk, "must be a non-negative integer")
    key = f"{document_id}\x00{int(chunk)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") & _MASK


def chunk_ids(document_ids: Iterable[str], chunks: Iterable[int]) -> np.ndarray:
    """``chunk_id`` for each pair, as an int64 array; raises on a duplicate id."""
    docs = list(document_ids)
    nums = list(chunks)
    if len(docs) != len(nums):
        raise ConfigError("chunks", len(nums), f"expected {len(docs)} chunk numbers")
    ids = np.fromiter(
        (chunk_id(d, int(c)) for d, c in zip(docs, nums, strict=True)),
        dtype=np.int64,
        count=len(docs),
    )
    check_ids(ids, len(docs))
    return ids


def check_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """Validate an id array for ``n`` vectors: int64, 1-D, length n, >= 0, unique."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.shape[0] != n:
        raise ConfigError("ids", ids.shape, f"expected shape ({n},)")
    if ids.dtype.kind not in "iu":
        raise ConfigError("ids", ids.dtype, "must be integers")
    ids = ids.astype(np.int64, copy=False)
    if n and ids.min() < 0:
        raise ConfigError("ids", int(ids.min()), "ids must be non-negative")
    uniq = np.unique(ids)
    if uniq.shape[0] != n:
        dup = ids[np.argsort(ids, kind="stable")]
        first = int(dup[np.flatnonzero(dup[1:] == dup[:-1])[0]])
        raise ConfigError("ids", first, "duplicate id (the same chunk twice?)")
    return ids
