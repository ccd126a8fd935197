"""What an index folder holds: its file names (defined here once) and their checksums.

Layout (every file is listed with its sha256 in the manifest)::

    manifest.json        what was built, from what, how well it searches (indexes.storage.manifest)
    index.faiss          the index (layout "single"), or
    index.faiss + index.faiss.ivfdata   an IVF index with its lists on disk ("ondisk"), or
    shards/shard-00000.faiss ...        shards searched together ("shards")
    metadata.parquet     one row a vector: id, document_id, chunk, uri, modality, text,
                         char_start, char_end, content_hash, then the user's columns
    vectors.parquet      id, vector (fixed-size list in the encoding's natural dtype) and,
                         when rescoring is on, rescore (fixed-size list of int8 or float32)
    rescore.npy          the rescore column again as a plain (n, d) array, memory-mapped at
                         search time so only the candidates' rows are read

Every table is sorted by id and every index gets its vectors in that order; ids, never row
positions, link the index to its metadata.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = [
    "INDEX",
    "MANIFEST",
    "METADATA",
    "RESCORE",
    "SHARDS",
    "VECTORS",
    "checksums",
    "sha256",
    "shard_file",
]

MANIFEST = "manifest.json"
METADATA = "metadata.parquet"
VECTORS = "vectors.parquet"
RESCORE = "rescore.npy"
INDEX = "index.faiss"
SHARDS = "shards"


def shard_file(number: int) -> str:
    """The folder-relative name of shard ``number`` (layout "shards")."""
    return f"{SHARDS}/shard-{number:05d}.faiss"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksums(folder: Path) -> dict[str, dict]:
    """``{relative name: {"sha256", "bytes"}}`` of every file under ``folder``, sorted."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"sha256": sha256(p), "bytes": p.stat().st_size}
    return files
