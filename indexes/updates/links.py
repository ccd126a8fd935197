"""Files an updated version shares with the previous one (``indexes.updates.folder``): hard
links, never copies, so the previous version's files are never written again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from indexes.ann.segments import DELTA, TOMBSTONES
from indexes.ann.serialize import ONDISK_SUFFIX
from indexes.storage.files import INDEX, sha256

__all__ = ["discard_update", "file_entry", "link_file", "link_same"]


def link_file(src: Path, dst: Path) -> None:
    """``dst`` becomes a hard link to ``src`` (replacing any file there, atomically)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    if tmp.exists():
        tmp.unlink()
    os.link(src, tmp)
    tmp.replace(dst)


def file_entry(path: Path) -> dict:
    """The manifest's checksum entry of a file."""
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def link_same(prev_dir: Path, out: Path, previous: dict[str, dict], files: dict[str, dict]) -> int:
    """Replace each of ``files`` that came out byte-for-byte the same as the previous
    version's (``previous``: its manifest's entries) by a hard link to it; returns how many."""
    shared = 0
    for name, entry in files.items():
        old = previous.get(name)
        if old is not None and old["sha256"] == entry["sha256"]:
            link_file(prev_dir / name, out / name)
            shared += 1
    return shared


def discard_update(path: str | os.PathLike) -> None:
    """Remove what ``update_folder`` wrote into ``path``: the links to the previous
    version's index files, the segments; files shared with it by hard links become the
    new folder's own copies, so that the rebuild never writes into a shared file."""
    out = Path(path)
    for f in out.rglob("*"):  # a part or lexical file shared with the previous version
        if f.is_file() and f.stat().st_nlink > 1 and f.parent.name != "shards":
            tmp = f.with_name(f".{f.name}.own")
            shutil.copyfile(f, tmp)  # the rebuild may write it: its own copy, not the link
            tmp.replace(f)
    for name in (INDEX, INDEX + ONDISK_SUFFIX, DELTA, TOMBSTONES):
        if (out / name).exists():
            (out / name).unlink()
    shards = out / "shards"
    if shards.is_dir():
        for f in shards.iterdir():
            f.unlink()
        shards.rmdir()
