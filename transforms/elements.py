"""The elements that flow between corpusbeam's transforms.

    file --ReadDocuments--> Document --ChunkDocuments--> Chunk --EmbedTexts--> Embedded
    file --ReadImages-----> ImageItem ----------------------------EmbedImages--> Embedded
    any stage ----------------------------------------------------------------> Failure

Every element is a frozen dataclass with the ids that tie it back to its source: the
``document_id`` (the file's path relative to the pattern's root, or a record's id) and,
from chunking on, the ``chunk_index``. A ``Failure`` names the input, the stage, the
error class and a readable reason; nothing is dropped without one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Chunk",
    "Document",
    "Embedded",
    "Failure",
    "ImageItem",
    "content_hash",
    "read_failures",
]

Metadata = dict[str, object]
NAMESPACE = "corpusbeam"  # the Beam metrics namespace of every corpusbeam transform


def content_hash(data: str | bytes) -> str:
    """sha256 hex digest of text (UTF-8) or bytes: what incremental runs compare."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Document:
    """One text document: a file, or one record of a JSONL, CSV or Parquet file."""

    document_id: str
    uri: str
    text: str
    content_hash: str
    metadata: Metadata = field(default_factory=dict)

    @classmethod
    def of(cls, *, document_id: str, uri: str, text: str, metadata: Metadata | None = None):
        return cls(
            document_id=document_id,
            uri=uri,
            text=text,
            content_hash=content_hash(text),
            metadata=dict(metadata or {}),
        )


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """A piece of a document, small enough to embed; ``start``/``end`` are character
    offsets into the document's text (``text == document.text[start:end]``)."""

    document_id: str
    chunk_index: int
    uri: str
    text: str
    start: int
    end: int
    content_hash: str
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ImageItem:
    """One image, ready to send: ``data`` is png, jpeg, webp or gif bytes within the
    endpoint's limits; ``text`` is its caption, if it has one. ``content_hash`` is of the
    original file's bytes and caption, so a re-encoded image still matches its source."""

    document_id: str
    uri: str
    data: bytes
    format: str
    width: int
    height: int
    content_hash: str
    text: str | None = None
    metadata: Metadata = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ImageItem(document_id={self.document_id!r}, format={self.format!r}, "
            f"size={self.width}x{self.height}, bytes={len(self.data)}, text={self.text!r})"
        )


@dataclass(frozen=True, kw_only=True)
class Embedded:
    """An embedded chunk or image: everything the index and its metadata need."""

    document_id: str
    chunk_index: int
    uri: str
    modality: str  # "text" or "image"
    text: str | None
    start: int | None
    end: int | None
    content_hash: str
    vector: np.ndarray  # 1-D, in the encoding's natural dtype (see corpusbeam.inference.codec)
    metadata: Metadata = field(default_factory=dict)
    # int8 rescoring vector (d,) derived with the vector (binary indexes), else None
    rescore: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Embedded):
            return NotImplemented
        same = [getattr(self, f) == getattr(other, f) for f in _EMBEDDED_SCALARS]
        if (self.rescore is None) != (other.rescore is None):
            return False
        rescore_same = self.rescore is None or np.array_equal(self.rescore, other.rescore)
        return all(same) and np.array_equal(self.vector, other.vector) and rescore_same

    __hash__ = None  # type: ignore[assignment]


_EMBEDDED_SCALARS = (
    "document_id",
    "chunk_index",
    "uri",
    "modality",
    "text",
    "start",
    "end",
    "content_hash",
    "metadata",
)


@dataclass(frozen=True, kw_only=True)
class Failure:
    """An input that could not be read, chunked or embedded, and why."""

    source_id: str
    uri: str
    stage: str  # "match", "read", "chunk", "embed"
    error: str  # the error's class name
    message: str

    @classmethod
    def of(cls, exc: BaseException | str, *, source_id: str, uri: str, stage: str) -> Failure:
        if isinstance(exc, str):
            return cls(source_id=source_id, uri=uri, stage=stage, error="InvalidInput", message=exc)
        message = str(exc)
        notes = getattr(exc, "__notes__", None)
        if notes:
            message += " (" + "; ".join(notes) + ")"
        return cls(
            source_id=source_id, uri=uri, stage=stage, error=type(exc).__name__, message=message
        )


def read_failures(document_id: str, uri: str) -> Callable[..., Failure]:
    """``fail(reason, source=document_id)``: the read-stage ``Failure`` of one file (or,
    with ``source``, of one of its parts: a page, a section, a record), as each file parser
    reports what it cannot read. ``reason`` is a message or an exception."""

    def fail(reason: str | BaseException, source: str = document_id) -> Failure:
        return Failure.of(reason, source_id=source, uri=uri, stage="read")

    return fail
