"""Records with their digests: what an update needs to leave out the unchanged ones.

A JSONL, CSV or Parquet record's digest is a 64-bit hash of what the record holds: the
raw line of a JSONL record, every field of a CSV or Parquet row (in the file's column
order). Each of the record's rows keeps it as the ``RECORD_DIGEST`` metadata column, so
the version holds them. ``record_items`` reads one file's records as ``parse_documents``
does, with the digest added to each document's metadata; given the live version's
records of that file (``LiveRecords``: by digest, the document ids and their rows' ids;
not changed), a record whose digest and document id the live version holds is not
parsed into a document: ``KeptRecords`` names the ids of their rows instead, which stay
as they are (one for the records looked up at once, one for each other).

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
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from indexes.storage.tables import RECORD_DIGEST
from transforms.elements import Document, Failure
from transforms.formats import RecordFields, decode_text, record_document

__all__ = ["KeptRecords", "LiveRecords", "Records", "record_digest", "record_items"]

# digest -> {document id: its rows' ids}
Records = dict[int, dict[str, list[int]]]
_POSITION = re.compile(r"#[LR][0-9]+$")  # a document id made of its record's position


@dataclass(frozen=True)
class LiveRecords:
    """One file's records as the live version holds them. ``digests`` (ascending, each
    once) and ``ids``, row for row: the records of one row whose document id is not a
    position, looked up all at once; ``other``: the rest (several rows, a position as
    id, two records of the same content), one by one."""

    digests: np.ndarray
    ids: np.ndarray
    other: Records

    @classmethod
    def of(cls, records: Records) -> LiveRecords:
        """From digest -> {document id: ids} (tests; ``transforms.record_reuse`` builds
        the arrays from the live version's columns)."""
        simple = {
            d: ids[0]
            for d, docs in records.items()
            if len(docs) == 1
            for doc, ids in docs.items()
            if len(ids) == 1 and not _POSITION.search(doc)
        }
        digests = np.array(sorted(simple), dtype=np.int64)
        ids = np.array([simple[d] for d in digests.tolist()], dtype=np.int64)
        return cls(digests, ids, {d: v for d, v in records.items() if d not in simple})


@dataclass(frozen=True)
class KeptRecords:
    """Records the live version holds as they are: how many, and their rows' ids."""

    records: int
    ids: tuple[int, ...]


def record_digest(raw: bytes) -> int:
    """A record's digest (signed 64-bit) from its bytes."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def _digests(raws: list[bytes]) -> np.ndarray:
    """``record_digest`` of each, in one pass (the hashes joined, read as int64)."""
    blake = hashlib.blake2b
    joined = b"".join([blake(r, digest_size=8).digest() for r in raws])
    return np.frombuffer(joined, dtype="<i8").astype(np.int64)


def _row_bytes(row: dict) -> bytes:
    return json.dumps(list(row.items()), default=str, ensure_ascii=False).encode("utf-8")


def _rows(data: bytes, text: str, ext: str) -> tuple[list[str], np.ndarray, list]:
    """(positions, digests, the records: a JSONL line's text, or a parsed CSV/Parquet row)."""
    if ext in (".jsonl", ".ndjson"):
        lines = text.splitlines()
        numbers = [n for n, line in enumerate(lines) if line and not line.isspace()]
        records: list = [lines[n] for n in numbers]
        digests = _digests([r.encode("utf-8") for r in records])
        return [f"L{n + 1}" for n in numbers], digests, records
    if ext == ".csv":
        records = list(csv.DictReader(io.StringIO(text, newline="")))
    else:
        import pyarrow.parquet as pq

        records = pq.read_table(io.BytesIO(data)).to_pylist()
    digests = _digests([_row_bytes(r) for r in records])
    return [f"R{n}" for n in range(1, len(records) + 1)], digests, records


def _kept_at_once(live: LiveRecords | None, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which records ``live.digests`` holds: the first of each digest; their rows' ids)."""
    keep = np.zeros(digests.size, dtype=bool)
    if live is None or live.digests.size == 0 or digests.size == 0:
        return keep, np.empty(0, np.int64)
    pos = np.minimum(np.searchsorted(live.digests, digests), live.digests.size - 1)
    hit = np.flatnonzero(live.digests[pos] == digests)
    _, first = np.unique(digests[hit], return_index=True)  # the same record twice: once
    keep[hit[first]] = True
    return keep, live.ids[pos[hit[first]]]


def _kept(live: Records, taken: set[str], digest: int, rel: str, source: str) -> list | None:
    """The ids of the live record this one is, if any and not ``taken`` already (a record
    is kept once). A document id made of a position (``rel#L7``) counts only there."""
    found = live.get(digest)
    if not found:
        return None
    if source in found and source not in taken:
        doc = source
    else:
        named = [d for d in found if not d.startswith(f"{rel}#") and d not in taken]
        if len(named) != 1:
            return None
        doc = named[0]
    taken.add(doc)
    return found[doc]


def _parsed(record: object, position: str) -> object:
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
) -> Iterator[Document | Failure | KeptRecords]:
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
    try:
        yield from _items(data, text, document_id, uri, ext, fields, max_document_bytes, live)
    except (ValueError, OSError) as exc:  # pyarrow's errors derive from these
        yield Failure.of(
            f"cannot read {ext.lstrip('.')} file: {exc}",
            source_id=document_id,
            uri=uri,
            stage="read",
        )


def _items(data, text, rel, uri, ext, fields, max_document_bytes, live) -> Iterator:
    """``record_items`` of a decoded file: the records ``live.digests`` holds in one
    ``KeptRecords``, then each other record kept (``live.other``) or read."""
    positions, digests, records = _rows(data, text, ext)
    keep, ids = _kept_at_once(live, digests)
    if ids.size:
        yield KeptRecords(int(ids.size), tuple(ids.tolist()))
    other = live.other if live is not None else {}
    taken: set[str] = set()
    for n in np.flatnonzero(~keep).tolist():
        position, digest = positions[n], int(digests[n])
        source = f"{rel}#{position}"
        found = _kept(other, taken, digest, rel, source) if other else None
        if found is not None:
            yield KeptRecords(1, tuple(found))
            continue
        row = _parsed(records[n], position)
        if isinstance(row, ValueError):
            yield Failure.of(str(row), source_id=source, uri=uri, stage="read")
        elif not isinstance(row, dict):
            yield Failure.of("record is not an object", source_id=source, uri=uri, stage="read")
        else:
            yield _with_digest(
                record_document(row, source, uri, ext, fields, max_document_bytes), digest
            )


def _with_digest(item: Document | Failure, digest: int) -> Document | Failure:
    if isinstance(item, Failure):
        return item
    return replace(item, metadata={**item.metadata, RECORD_DIGEST: digest})
