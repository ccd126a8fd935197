"""A folder's tables as layers: base parts shared with older versions, delta parts, removed ids.

An update that changes 1% of a corpus touches every id-range part (ids are hashes), so
rewriting the parts would cost most of a version's bytes. Instead a version may keep the
parts of the version that last wrote them in full (the *base*, shared by hard links or
server-side copies) and add, per part number ``s``::

    parts/delta-0000s.{metadata,vectors}.parquet [.rescore.npy]
        every row of part s that is not the base's row as it was: added, changed, moved
    parts/removed-0000s.npy
        the base ids of part s that no longer count (deleted, changed, moved; int64, sorted)

The manifest lists the base as ``parts`` and the rest as ``overlay``
(``{"parts": [delta PartInfo], "removed": [{"file", "count"}], "base": version}``).
Each update writes the delta and removed files in full for the version (never appends),
and a version whose overlay passes a fraction of its rows is written in full again
(``pipeline.index_job``), so the layers stay two deep.

This module holds the names of those files, the checks and sums over an ``overlay``, and
``tables_from_refs``, which makes the manifest's table entries from the workers' part
references. Reading base minus removed plus delta as one ``Parts`` is
``indexes.storage.layer_reader``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corpusbeam.errors import IndexFolderError
from indexes.storage.part_ranges import PartInfo

__all__ = [
    "DELTA_PREFIX",
    "Tables",
    "check_overlay",
    "overlay_files",
    "overlay_rows",
    "part_number",
    "removed_name",
    "tables_from_refs",
]

DELTA_PREFIX = "delta"  # parts/delta-0000s: the delta part of part s


def removed_name(number: int) -> str:
    """The folder-relative name of part ``number``'s removed ids."""
    return f"parts/removed-{number:05d}.npy"


def part_number(name: str) -> int:
    """The part number of a part's name (``parts/part-00003`` or ``parts/delta-00003``)."""
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise IndexFolderError(f"a part's name ends in its number: {name!r}") from None


def overlay_rows(overlay: dict | None) -> tuple[int, int]:
    """(rows of the delta parts, removed ids) of a manifest's ``overlay``."""
    if not overlay:
        return 0, 0
    return (
        sum(int(p["rows"]) for p in overlay.get("parts", [])),
        sum(int(r["count"]) for r in overlay.get("removed", [])),
    )


def check_overlay(overlay: dict) -> None:
    """Raise IndexFolderError unless ``overlay`` is well formed."""
    if not isinstance(overlay, dict) or not isinstance(overlay.get("parts"), list):
        raise IndexFolderError("overlay: needs a list of delta parts")
    for p in overlay["parts"]:
        PartInfo.from_dict(p)
    for r in overlay.get("removed", []):
        if not isinstance(r, dict) or not str(r.get("file", "")).startswith("parts/"):
            raise IndexFolderError(f"overlay: a removed entry is invalid: {r!r}")
        if ".." in r["file"] or int(r.get("count", -1)) < 1:
            raise IndexFolderError(f"overlay: a removed entry is invalid: {r!r}")


def overlay_files(overlay: dict | None, suffixes: Sequence[str]) -> list[str]:
    """The folder-relative files an overlay consists of (delta parts with ``suffixes``,
    removed ids)."""
    if not overlay:
        return []
    names = [p["name"] + s for p in overlay["parts"] for s in suffixes]
    return names + [r["file"] for r in overlay.get("removed", [])]


@dataclass
class Tables:
    """What the workers' part references make of a folder's tables (``tables_from_refs``):
    the base ``PartInfo``s, the manifest's ``overlay`` (None: no layers), every table
    file's checksum entry, the base files to share from the previous version, and the
    lexical segments' entries (base first; None when the parts carry none, or a base
    part's segment is missing: the lexical index is then built on the launcher)."""

    infos: list[PartInfo]
    overlay: dict | None
    files: dict[str, dict]
    shared: list[str]
    lexical: list[dict] | None

    @property
    def removed_files(self) -> list[str]:
        return [r["file"] for r in (self.overlay or {}).get("removed", [])]


def _segment_name(part_name: str) -> str:
    return part_name.rsplit("/", 1)[-1]


def tables_from_refs(
    refs: Sequence[dict],
    previous_files: dict[str, dict] | None,
    base_version: str | None,
    previous_lexical: dict | None = None,
) -> Tables:
    """The folder's tables from the workers' part references (``transforms.build_index``).
    A layered run's base parts (and their lexical segments) are the previous version's:
    ``previous_files`` gives their checksums, ``previous_lexical`` their segments."""
    refs = sorted(refs, key=lambda r: r["part"])
    files = {name: entry for r in refs for name, entry in r["files"].items()}
    new_segments = [r["lexical"] for r in refs if r.get("lexical")]
    if not any(r.get("layered") for r in refs):
        infos = [PartInfo.from_dict(r["info"]) for r in refs]
        lexical = new_segments if len(new_segments) == len(refs) else None
        return Tables(infos, None, files, [], lexical)
    if previous_files is None:
        raise IndexFolderError("layered parts need the previous version's file list")
    base = [PartInfo.from_dict(r["base"]) for r in refs if r.get("base")]
    known = {s["name"]: s for s in (previous_lexical or {}).get("segments", [])}
    base_segments = [known.get(_segment_name(info.name)) for info in base]
    lexical = None
    if all(base_segments) and len(new_segments) == sum(1 for r in refs if r.get("info")):
        lexical = [*base_segments, *new_segments]
    shared = []
    for info in base:
        prefixes = [info.name + "."]
        if lexical is not None:
            prefixes.append(f"lexical/{_segment_name(info.name)}/")
        for name, entry in previous_files.items():
            if any(name.startswith(p) for p in prefixes):
                files[name] = dict(entry)
                shared.append(name)
    overlay = {
        "parts": [r["info"] for r in refs if r.get("info")],
        "removed": [
            {"file": r["removed"]["file"], "count": r["removed"]["count"]}
            for r in refs
            if r.get("removed")
        ],
        "base": base_version,
    }
    return Tables(base, overlay, files, sorted(shared), lexical)
