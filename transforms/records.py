"""Records with their digests: what an update needs to leave out the unchanged ones.

A JSONL, CSV or Parquet record's digest is a 64-bit hash of what the record holds: the
raw line of a JSONL record, every field of a CSV or Parquet row (in the file's column
order). Each of the record's rows keeps it as the ``RECORD_DIGEST`` metadata column, so
the version holds them. ``record_items`` reads one file's records as ``parse_documents``
does, with the digest added to each document's metadata; given the live version's
records of that file (``LiveRecords``: digest -> {document id: chunk ids}; not changed),
a record whose digest and document id the live version holds is not parsed into a
document: a ``KeptRecord`` names the ids of its rows instead, which stay as they are.

The document id of a record without an id field is its position (``data.jsonl#L7``): a
record is kept only at the same position, so a line inserted or deleted above records
without ids makes every record below it new (give records an id field).

Plain functions, no Beam: ``transforms.record_reuse`` runs them on the workers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from indexes.storage.tables import RECORD_DIGEST
from transforms.elements import Document, Failure
from transforms.formats import RecordFields, decode_text, record_document

__all__ = ["KeptRecord", "LiveRecords", "record_digest", "record_items"]

# digest -> {document id: its rows' ids}: one file's records as the live version holds them
LiveRecords = dict[int, dict[str, list[int]]]


@dataclass(frozen=True)
class KeptRecord:
    """A record the live version holds as it is: the ids of its rows."""

    document_id: str
    ids: tuple[int, ...]


def record_digest(raw: bytes) -> int:
    """A record's digest (signed 64-bit) from its bytes."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def _digests(raws: list[bytes]) -> list[int]:
    """``record_digest`` of each, in one pass (the hashes joined, read as int64)."""
    blake = hashlib.blake2b
    joined = b"".join([blake(r, digest_size=8).digest() for r in raws])
    return np.frombuffer(joined, dtype="<i8").tolist()


def _row_bytes(row: dict) -> bytes:
    return json.dumps(list(row.items()), default=str, ensure_ascii=False).encode("utf-8")


def _rows(data: bytes, text: str, ext: str) -> Iterator[tuple[str, int, object]]:
    """(position, digest, the record: a JSONL line's text, or a parsed CSV/Parquet row)."""
    if ext in (".jsonl", ".ndjson"):
        lines = text.splitlines()
        numbers = [n for n, line in enumerate(lines) if line and not line.isspace()]
        records: list = [lines[n] for n in numbers]
        digests = _digests([r.encode("utf-8") for r in records])
        positions = [f"L{n + 1}" for n in numbers]
    else:
        if ext == ".csv":
            records = list(csv.DictReader(io.StringIO(text, newline="")))
        else:
            import pyarrow.parquet as pq

            records = pq.read_table(io.BytesIO(data)).to_pylist()
        digests = _digests([_row_bytes(r) for r in records])
        positions = [f"R{n}" for n in range(1, len(records) + 1)]
    yield from zip(positions, digests, records, strict=True)


def _kept(
    live: LiveRecords | None, taken: set[str], digest: int, rel: str, source: str
) -> KeptRecord | None:
    """The live record this one is, if any and not ``taken`` already (a record is kept
    once). A document id made of a position (``rel#L7``) counts only at that position."""
    found = live.get(digest) if live else None
    if not found:
        return None
    if len(found) == 1:  # the usual case: one live record of this content
        ((doc, ids),) = found.items()
        positional = doc.startswith(rel) and doc[len(rel) : len(rel) + 1] == "#"
        if doc in taken or (positional and doc != source):
            return None
    elif source in found and source not in taken:
        doc, ids = source, found[source]
    else:
        named = [d for d in found if not d.startswith(f"{rel}#") and d not in taken]
        if len(named) != 1:
            return None
        doc, ids = named[0], found[named[0]]
    taken.add(doc)
    return KeptRecord(doc, tuple(ids))


def _parsed(record: object, position: str, ext: str) -> object:
    if not isinstance(record, str):
        return record
    try:
        return json.loads(record)
    except ValueError as exc:
        return ValueError(f"line {position[1:]}: invalid JSON ({exc})")


def record_items(
    data: bytes,
    *,
    document_id: str,
    uri: str,
    extension: str,
    fields: RecordFields,
    max_document_bytes: int,
    live: LiveRecords | None = None,
) -> Iterator[Document | Failure | KeptRecord]:
    """One record file's documents (each with its ``RECORD_DIGEST``), failures, and the
    records ``live`` holds as they are (see the module docstring)."""
    ext = extension.lower()
    if not data:
        yield Failure.of("empty file", source_id=document_id, uri=uri, stage="read")
        return
    try:
        text = "" if ext == ".parquet" else decode_text(data)
    except ValueError as exc:  # not UTF-8, or binary
        yield Failure.of(str(exc), source_id=document_id, uri=uri, stage="read")
        return
    taken: set[str] = set()
    try:
        for position, digest, record in _rows(data, text, ext):
            source = f"{document_id}#{position}"
            kept = _kept(live, taken, digest, document_id, source)
            if kept is not None:
                yield kept
                continue
            row = _parsed(record, position, ext)
            if isinstance(row, ValueError):
                yield Failure.of(str(row), source_id=source, uri=uri, stage="read")
            elif not isinstance(row, dict):
                yield Failure.of("record is not an object", source_id=source, uri=uri, stage="read")
            else:
                yield _with_digest(
                    record_document(row, source, uri, ext, fields, max_document_bytes), digest
                )
    except (ValueError, OSError) as exc:  # pyarrow's errors derive from these
        yield Failure.of(
            f"cannot read {ext.lstrip('.')} file: {exc}",
            source_id=document_id,
            uri=uri,
            stage="read",
        )


def _with_digest(item: Document | Failure, digest: int) -> Document | Failure:
    if isinstance(item, Failure):
        return item
    return replace(item, metadata={**item.metadata, RECORD_DIGEST: digest})
