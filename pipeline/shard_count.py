"""``--shards auto``: the number of parts from the corpus's size, so that parts stay small.

A worker holds one part at a time while it writes it (its rows sorted by id, its BM25
segment) and adds it to an IVF shard, so a worker's memory follows a part's rows, N /
shards: with a fixed count it grows with the corpus. ``auto`` aims at ``ROWS_PER_PART``
rows a part, estimated before the pipeline runs from the inputs' listing (sizes only)
and a small sample of the record files:

- ``.jsonl``/``.ndjson``/``.csv``: the file's bytes over the mean bytes of a record in
  its first ``SAMPLE_BYTES`` (at most ``SAMPLE_FILES`` files are sampled; the others get
  their mean), each record at least one chunk; ``.parquet``: the row count in its footer;
- text and HTML: bytes over a chunk's bytes (``--max-tokens`` x ``BYTES_PER_TOKEN``;
  HTML x ``HTML_MARKUP``); PDF and DOCX: bytes over ``PAGED_BYTES_PER_CHUNK``;
- an image: one input.

An update keeps the live version's count while the estimate is within 2x of it, so its
parts keep their id ranges and the run can write layers over them (``indexes.storage.layers``);
past that, the parts are written in full with the new count.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

from corpusbeam.errors import ConfigError
from indexes.storage.layers import part_number
from indexes.storage.manifest import Manifest
from indexes.storage.part_ranges import part_of
from transforms.formats import HTML_EXTENSIONS, IMAGE_EXTENSIONS, PAGED_EXTENSIONS
from transforms.read import _expand_pattern

__all__ = [
    "MAX_AUTO_SHARDS",
    "ROWS_PER_PART",
    "auto_shards",
    "estimate_chunks",
    "live_shards",
    "same_parts",
]

ROWS_PER_PART = 12_500
MAX_AUTO_SHARDS = 256
BYTES_PER_TOKEN = 4
HTML_MARKUP = 3
PAGED_BYTES_PER_CHUNK = 8_192
SAMPLE_BYTES = 65_536
SAMPLE_FILES = 8
_LINE_RECORDS = (".jsonl", ".ndjson", ".csv")


def _extension(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def _head(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read(SAMPLE_BYTES)


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    with FileSystems.open(path) as f:
        return int(pq.ParquetFile(f).metadata.num_rows)


def _record_shape(head: bytes, chunk_bytes: int, csv: bool) -> tuple[float, float]:
    """(mean bytes a record, mean chunks a record) in the first bytes of a file."""
    lines = [line for line in head.split(b"\n")[:-1] if line.strip()]  # whole lines only
    if csv:
        lines = lines[1:]  # the header
    if not lines:
        return float(max(len(head), 1)), 1.0
    size = sum(len(line) + 1 for line in lines) / len(lines)
    chunks = sum(max(1, math.ceil(len(line) / chunk_bytes)) for line in lines) / len(lines)
    return size, chunks


def estimate_chunks(files: Sequence[tuple[str, int]], max_tokens: int) -> int:
    """The chunks the files ``(path, bytes)`` will give, estimated (see the module)."""
    chunk_bytes = max(1, max_tokens * BYTES_PER_TOKEN)
    shapes: list[tuple[float, float]] = []
    records: list[tuple[str, int]] = []
    total = 0.0
    for path, size in files:
        ext = _extension(path)
        if ext in IMAGE_EXTENSIONS:
            total += 1
        elif ext == ".parquet":
            total += _parquet_rows(path)
        elif ext in _LINE_RECORDS:
            if len(shapes) < SAMPLE_FILES and size:
                shapes.append(_record_shape(_head(path), chunk_bytes, ext == ".csv"))
            records.append((path, size))
        elif ext in PAGED_EXTENSIONS:
            total += max(1, math.ceil(size / PAGED_BYTES_PER_CHUNK))
        elif ext in HTML_EXTENSIONS:
            total += max(1, math.ceil(size / (chunk_bytes * HTML_MARKUP)))
        else:
            total += max(1, math.ceil(size / chunk_bytes))
    if records:
        mean_size = sum(s for s, _ in shapes) / len(shapes) if shapes else chunk_bytes
        mean_chunks = sum(c for _, c in shapes) / len(shapes) if shapes else 1.0
        total += sum(size / mean_size * mean_chunks for _, size in records)
    return round(total)


def same_parts(parts: list[dict], shards: int) -> bool:
    """Whether a manifest's ``parts`` cover the id ranges of ``shards`` parts (layers go
    over parts of the same ranges; another count writes the parts in full)."""
    return all(
        part_of(int(p["id_min"]), shards)
        == part_number(p["name"])
        == part_of(int(p["id_max"]), shards)
        for p in parts
    )


def live_shards(manifest: Manifest | None) -> int | None:
    """The part count the live version was written with (its parts' names and id ranges
    agree with it), or None when it cannot be told."""
    if manifest is None or not manifest.parts:
        return None
    count = max(part_number(p["name"]) for p in manifest.parts) + 1
    return count if same_parts(manifest.parts, count) else None


def _listing(inputs: Sequence[str]) -> list[tuple[str, int]]:
    """(path, size) of every file the input patterns match."""
    files: list[tuple[str, int]] = []
    for pattern in inputs:
        try:
            (result,) = FileSystems.match([_expand_pattern(pattern)])
        except Exception as exc:  # Beam's filesystems raise their own kinds
            raise ConfigError("inputs", pattern, f"cannot be listed: {exc}") from None
        files += [(m.path, int(m.size_in_bytes)) for m in result.metadata_list]
    return files


def auto_shards(
    inputs: Sequence[str],
    *,
    max_tokens: int,
    live: Manifest | None = None,
    files: Sequence[tuple[str, int]] | None = None,
) -> tuple[int, str]:
    """(the part count for ``--shards auto``, why: one line for the log and the report).
    ``files``: the inputs' (path, size), when the caller has listed them already."""
    if files is None:
        files = _listing(inputs)
    chunks = estimate_chunks(files, max_tokens)
    wanted = min(MAX_AUTO_SHARDS, max(1, round(chunks / ROWS_PER_PART)))
    kept = live_shards(live)
    if kept is not None and kept / 2 <= wanted <= kept * 2:
        return kept, f"{kept}, the live version's ({chunks} chunks estimated: {wanted})"
    return wanted, f"{wanted} ({chunks} chunks estimated, {ROWS_PER_PART} a part)"
