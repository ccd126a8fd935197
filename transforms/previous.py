"""PreviousVersion: the live index version a job reuses vectors from, as one record.

The job (``pipeline.index_job``) builds it from the live version's manifest when that
version's vectors are valid for the run's settings; ``ReuseVectors`` and
``BuildIndexShards`` hold it in their DoFns, so Beam pickles it with them. It is frozen:
a derived copy is made with ``dataclasses.replace`` (``pipeline.graph`` adds the run's
part count for ``ReuseVectors`` and the files not read again for ``BuildIndexShards``).

The parts and removed-id entries stay the manifest's own dicts (``indexes.storage.part_ranges``
``PartInfo.as_dict``; ``{"file", "count"}``), in tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from corpusbeam.inference.codec import wire_width

if TYPE_CHECKING:
    from indexes.storage.manifest import Manifest

__all__ = ["PreviousVersion"]


@dataclass(frozen=True, kw_only=True)
class PreviousVersion:
    """The live version as a run reuses it.

    ``folder``: its folder (a path or URL, no trailing slash). ``parts``: its manifest's
    parts (the base parts, when it is layered); ``delta_parts`` and ``removed``: its
    manifest's ``overlay`` (the delta parts; the removed ids' files), empty when it has
    none. ``count``: its rows; ``width``: its vectors' width on the wire (bytes or
    values a row); ``rescore_dtype``: its rescoring vectors' dtype, if it has any.

    What the run makes of it: ``layered``, whether the run writes its tables as layers
    over this version's base parts; ``shards``, the run's part count (``ReuseVectors``
    refers kept rows to their part); ``skipped``, the files the run does not read again
    (a layered update: their rows stay as they are).
    """

    folder: str
    parts: tuple[dict, ...]
    delta_parts: tuple[dict, ...] = ()
    removed: tuple[dict, ...] = ()
    count: int = 0
    width: int = 0
    rescore_dtype: str | None = None
    layered: bool = False
    shards: int = 1
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", str(self.folder).rstrip("/"))
        for name in ("parts", "delta_parts", "removed", "skipped"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_manifest(
        cls, folder: str, manifest: Manifest, *, layered: bool = False
    ) -> PreviousVersion:
        """The version in ``folder``, from its manifest."""
        overlay = manifest.overlay or {}
        return cls(
            folder=folder,
            parts=manifest.parts,
            delta_parts=overlay.get("parts", ()),
            removed=overlay.get("removed", ()),
            count=manifest.count,
            width=wire_width(manifest.encoding, manifest.dimensions),
            rescore_dtype=None if manifest.rescore is None else manifest.rescore["dtype"],
            layered=layered,
        )
