"""What changed since the previous version (``indexes.updates.folder``, step 1): the ids
whose content went away or came in, and the segments they make of the previous ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes.ann.search import index_id_view
from indexes.ann.segments import read_tombstones
from indexes.ann.serialize import read_index
from indexes.storage.layer_reader import LayeredParts, open_parts
from indexes.storage.manifest import Manifest
from indexes.storage.part_ranges import PartInfo
from indexes.storage.part_reader import Parts

__all__ = ["Change", "read_change"]


@dataclass(frozen=True, eq=False)
class Change:
    """The change, and the segments it makes: ``stale`` ids (deleted, or changed) and
    ``fresh`` ones (added, or changed); ``dead``: the main index's ids that no longer count
    (the tombstones); ``delta_ids``: the ids the delta holds; ``main_count``: the main
    index's vectors; ``trained``: which version trained it, on how many vectors, with what
    recall; ``added``: vectors added since; ``first``: the first update after a build."""

    stale: np.ndarray
    fresh: np.ndarray
    dead: np.ndarray
    delta_ids: np.ndarray
    main_count: int
    trained: dict
    added: int
    first: bool

    @property
    def unchanged(self) -> bool:
        """No id stale and none fresh: the same vectors and the same texts."""
        return not self.stale.size and not self.fresh.size

    def stats(self) -> dict:
        return {
            "stale": int(self.stale.size),
            "fresh": int(self.fresh.size),
            "delta": int(self.delta_ids.size),
            "tombstones": int(self.dead.size),
            "added_since_training": self.added,
        }


def _ids_and_hashes(reader: Parts | LayeredParts) -> tuple[np.ndarray, np.ndarray]:
    """Every id (ascending) and its content hash, read as two columns."""
    t = reader.metadata(["id", "content_hash"])
    if t.num_rows == 0:
        return np.empty(0, np.int64), np.empty(0, object)
    return t.column("id").to_numpy(), t.column("content_hash").to_numpy(zero_copy_only=False)


def _change(prev: tuple, new: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(stale, fresh) ids: deleted or changed, and added or changed."""
    (pid, ph), (nid, nh) = prev, new
    common, pi, ni = np.intersect1d(pid, nid, assume_unique=True, return_indices=True)
    changed = common[ph[pi] != nh[ni]]
    removed = np.setdiff1d(pid, nid, assume_unique=True)
    added = np.setdiff1d(nid, pid, assume_unique=True)
    return np.union1d(removed, changed), np.union1d(added, changed)


def _previous_segments(prev_dir: Path, prev: Manifest):
    """(tombstones, delta ids, main count, trained, added since training) of the previous
    version: its segments, or, for a built version, its whole index as the main one."""
    seg = prev.segments or {}
    if not seg:
        trained = {
            "version": prev_dir.name,
            "count": prev.count,
            "recall": None if prev.recall is None else prev.recall["value"],
        }
        return np.empty(0, np.int64), np.empty(0, np.int64), prev.count, trained, 0
    dead_prev = read_tombstones(prev_dir / seg["tombstones"]["file"])
    old_delta = read_index(prev_dir / seg["delta"]["file"], prev.encoding)
    delta_prev = index_id_view(old_delta).copy()  # a view into the index: copied
    del old_delta
    added = int(seg.get("added_since_training", 0))
    return dead_prev, delta_prev, int(seg["main"]["count"]), dict(seg["trained"]), added


def read_change(prev_dir: Path, prev: Manifest, reader: Parts | LayeredParts) -> Change:
    """The change from the version at ``prev_dir`` to the parts ``reader`` reads."""
    prev_reader = open_parts(
        prev_dir,
        [PartInfo.from_dict(p) for p in prev.parts],
        prev.overlay,
        encoding=prev.encoding,
        dimensions=prev.dimensions,
    )
    stale, fresh = _change(_ids_and_hashes(prev_reader), _ids_and_hashes(reader))
    del prev_reader
    dead_prev, delta_prev, main_count, trained, added = _previous_segments(prev_dir, prev)
    delta_prev = np.sort(np.asarray(delta_prev, dtype=np.int64))
    return Change(
        stale=stale,
        fresh=fresh,
        dead=np.union1d(dead_prev, np.setdiff1d(stale, delta_prev)),
        delta_ids=np.union1d(np.setdiff1d(delta_prev, stale), fresh),
        main_count=main_count,
        trained=trained,
        added=added + int(fresh.size),
        first=not prev.segments,
    )
