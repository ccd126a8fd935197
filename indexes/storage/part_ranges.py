"""Which part holds an id: the 63-bit id space cut into fixed ranges, part names, ``PartInfo``.

Every index folder keeps its rows in parts, each covering a fixed range of the 63-bit id
space (``id_starts``: part ``s`` of ``P`` holds the ids in ``[s * 2^63 / P, (s + 1) *
2^63 / P)``); ids are hashes, so parts come out about equal in size. The manifest lists
each part with its row count and its smallest and largest id (``PartInfo``).

This module is the arithmetic and the bookkeeping only: a part's files, and writing them,
are ``indexes.storage.part_files``; reading them back is ``indexes.storage.part_reader``.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import asdict, dataclass

import numpy as np

from corpusbeam.errors import ConfigError, IndexFolderError

__all__ = [
    "PARTS_DIR",
    "PartInfo",
    "id_starts",
    "part_name",
    "part_of",
    "split_by_part",
]

PARTS_DIR = "parts"
_ID_SPACE = 1 << 63


def id_starts(parts: int) -> np.ndarray:
    """The smallest id of each of ``parts`` id ranges (int64, ascending, first is 0)."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ConfigError("parts", parts, "must be a positive integer")
    return np.array([-(-s * _ID_SPACE // parts) for s in range(parts)], dtype=np.int64)


def part_of(ids: np.ndarray | int, parts: int) -> np.ndarray | int:
    """The part number of each id (an int for an int)."""
    starts = id_starts(parts)
    if isinstance(ids, int | np.integer):
        return bisect.bisect_right(starts.tolist(), int(ids)) - 1
    return np.searchsorted(starts, np.asarray(ids, dtype=np.int64), side="right") - 1


def part_name(number: int, prefix: str = "part") -> str:
    """The folder-relative base name of part ``number`` (``prefix`` ``delta``: its delta
    part, ``indexes.storage.layers``)."""
    return f"{PARTS_DIR}/{prefix}-{number:05d}"


def split_by_part(ids: np.ndarray, parts: int) -> list[tuple[int, int, int]]:
    """(part number, first row, end row) of each non-empty part of ascending ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
        raise ConfigError("ids", "unsorted", "parts are cut from ids sorted ascending")
    cuts = [*np.searchsorted(ids, id_starts(parts), side="left").tolist(), ids.size]
    return [(s, lo, hi) for s, (lo, hi) in enumerate(itertools.pairwise(cuts)) if hi > lo]


@dataclass(frozen=True, kw_only=True)
class PartInfo:
    """One part as the manifest lists it."""

    name: str
    rows: int
    id_min: int
    id_max: int

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PartInfo:
        try:
            info = cls(**data)
        except TypeError as exc:
            raise IndexFolderError(f"a part entry is invalid ({exc}): {data!r}") from None
        if not info.name.startswith(f"{PARTS_DIR}/") or ".." in info.name:
            raise IndexFolderError(f"a part's name must be under {PARTS_DIR}/: {info.name!r}")
        if info.rows < 1 or info.id_min > info.id_max:
            raise IndexFolderError(f"part {info.name}: rows or id range invalid")
        return info
