"""ReadDocuments and ReadImages: files from any Beam filesystem to documents and images.

Both follow Beam's file-reading shape, match -> reshuffle -> read, so files spread over
workers however few patterns there are. Matching is our own step (``_MatchFn``) so that
a pattern matching nothing, or a file of an unknown type, becomes a ``Failure`` rather
than silence, and so that ids are paths relative to the pattern's root (stable when the
corpus moves between machines or buckets).

In a mixed folder each reader takes its own files: ReadDocuments skips images and
caption sidecars (``cat.txt`` beside ``cat.jpg``), ReadImages skips documents.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

from corpusbeam.errors import ConfigError
from transforms import counters as progress
from transforms.elements import Failure, ImageItem, content_hash
from transforms.formats import (
    DOCUMENT_EXTENSIONS,
    FILE_LIMIT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    RecordFields,
    decode_text,
    parse_documents,
)
from transforms.images import ImageLimits, InvalidImage, prepare_image

__all__ = ["FAILURES", "Outputs", "ReadDocuments", "ReadImages"]

FAILURES = "failures"
# A .txt beside an image with the same stem is its caption, if it is caption-sized.
SIDECAR_MAX_BYTES = 65_536
_GLOB = re.compile(r"[*?\[]")


class Outputs(NamedTuple):
    """What every corpusbeam transform returns: its main output and its failures."""

    main: beam.PCollection
    failures: beam.PCollection


def _extension(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def _expand_pattern(pattern: str) -> str:
    """A folder means everything under it."""
    if pattern.endswith("/"):
        return pattern + "**"
    if not _GLOB.search(pattern) and "://" not in pattern and os.path.isdir(pattern):
        return pattern.rstrip("/") + "/**"
    return pattern


def _pattern_root(pattern: str) -> str:
    """The folder part of a pattern before its first wildcard, ending in '/'."""
    m = _GLOB.search(pattern)
    head = pattern[: m.start()] if m else pattern
    root = head[: head.rfind("/") + 1] if "/" in head else ""
    if "://" not in root:
        root = os.path.abspath(root or ".") + "/"
    return root


def _relative(path: str, root: str) -> str:
    if path.startswith(root):
        return path[len(root) :]
    if "://" not in path:
        return os.path.relpath(path, root)
    return path


class _MatchFn(beam.DoFn):
    """pattern -> (FileMetadata, relative path) for the files of the wanted kind."""

    def __init__(self, kind: str, unknown: str, skip: dict | None = None) -> None:
        self._kind = kind
        self._unknown = unknown
        self._skip = skip or {}
        self._skipped = progress.counter("files_skipped")
        # For the progress display's total: every pattern counts once a matcher is done.
        self._patterns = progress.counter("patterns_matched")
        self._files = progress.counter("files_matched")

    def _unchanged(self, meta: FileMetadata) -> bool:
        return bool(self._skip) and _unchanged_file(self._skip, meta)

    def process(self, pattern: str) -> Iterator:
        try:
            yield from self._match(pattern)
        finally:
            self._patterns.inc()

    def _match(self, pattern: str) -> Iterator:
        expanded = _expand_pattern(pattern)
        try:
            (result,) = FileSystems.match([expanded])
            files = [m for m in result.metadata_list if not m.path.endswith("/")]
        except Exception as exc:
            yield _failure(exc, pattern, pattern, "match")
            return
        if not files:
            yield _failure(f"no file matches {pattern!r}", pattern, pattern, "match")
            return
        root = _pattern_root(expanded)
        stems = {
            posixpath.splitext(m.path)[0] for m in files if _extension(m.path) in IMAGE_EXTENSIONS
        }
        for meta in sorted(files, key=lambda m: m.path):
            ext = _extension(meta.path)
            if ext in DOCUMENT_EXTENSIONS:
                sidecar = (
                    ext == ".txt"
                    and meta.size_in_bytes <= SIDECAR_MAX_BYTES
                    and posixpath.splitext(meta.path)[0] in stems
                )
                kind = "sidecar" if sidecar else "document"
            else:
                kind = "image" if ext in IMAGE_EXTENSIONS else "unknown"
            if kind == self._kind and self._unchanged(meta):
                self._skipped.inc()
            elif kind == self._kind:
                self._files.inc()
                yield meta, _relative(meta.path, root)
            elif kind == "unknown" and self._unknown == "fail":
                yield _failure(
                    f"unsupported file type {ext or '(no extension)'!r}",
                    _relative(meta.path, root),
                    meta.path,
                    "read",
                )


def _unchanged_file(skip: dict, meta: FileMetadata) -> bool:
    """Whether ``meta``'s file is listed in ``skip`` with the same size and modification
    time (``skip``: path -> [size, mtime], files an update need not read again)."""
    seen = skip.get(meta.path)
    if seen is None:
        return False
    mtime = float(getattr(meta, "last_updated_in_seconds", 0) or 0)
    return int(seen[0]) == int(meta.size_in_bytes) and float(seen[1]) == mtime


def _failure(reason, source_id: str, uri: str, stage: str) -> beam.pvalue.TaggedOutput:
    return beam.pvalue.TaggedOutput(
        FAILURES, Failure.of(reason, source_id=source_id, uri=uri, stage=stage)
    )


def _read_bytes(meta: FileMetadata, limit: int) -> bytes:
    if meta.size_in_bytes > limit:
        raise _TooLarge(
            f"file is {meta.size_in_bytes / 1e6:.1f} MB, over the {limit / 1e6:g} MB limit"
        )
    with FileSystems.open(meta.path) as f:
        return f.read()


class _TooLarge(ValueError):
    pass


class _ReadDocumentsFn(beam.DoFn):
    def __init__(self, fields: RecordFields, max_document_bytes: int, max_file_bytes: int):
        self._fields = fields
        self._max_document_bytes = max_document_bytes
        self._max_file_bytes = max_file_bytes
        self._read = progress.counter("documents_read")
        self._files = progress.counter("files_read")

    def process(self, element: tuple[FileMetadata, str]) -> Iterator:
        meta, rel = element
        self._files.inc()
        ext = _extension(meta.path)
        limit = self._max_file_bytes if ext in FILE_LIMIT_EXTENSIONS else self._max_document_bytes
        try:
            data = _read_bytes(meta, limit)
        except _TooLarge as exc:
            yield _failure(f"{exc} (max_document_bytes)", rel, meta.path, "read")
            return
        except OSError as exc:
            yield _failure(exc, rel, meta.path, "read")
            return
        for item in self._parsed(data, rel, meta.path, ext):
            if isinstance(item, Failure):
                yield beam.pvalue.TaggedOutput(FAILURES, item)
            else:
                self._read.inc()
                yield item

    def _parsed(self, data: bytes, rel: str, uri: str, ext: str) -> Iterator:
        """One file's documents and failures (``transforms.record_reuse`` leaves some out)."""
        return parse_documents(
            data,
            document_id=rel,
            uri=uri,
            extension=ext,
            fields=self._fields,
            max_document_bytes=self._max_document_bytes,
        )

    def display_data(self) -> dict:
        return {
            "text_field": self._fields.text,
            "id_field": self._fields.id or "",
            "max_document_bytes": self._max_document_bytes,
        }


class ReadDocuments(beam.PTransform):
    """Read text documents from file patterns on any Beam filesystem.

    ``.txt``/``.md`` as they are, ``.html`` as its visible text, and ``.jsonl``, ``.csv``
    and ``.parquet`` one document a record (``text_field`` holds the text, ``id_field``
    the id, other fields become metadata). A document's id is its path relative to the
    pattern's root, or the record's id. Returns ``Outputs(main=Document, failures)``:
    unreadable, empty, undecodable, oversized and unsupported files are failures with
    their reason. A folder (or ``dir/``) means every file under it. ``skip`` (path ->
    [size, modification time]) names files an update need not read: one still of that
    size and time is left out (counted as ``files_skipped``).
    """

    def __init__(
        self,
        patterns: str | Sequence[str],
        *,
        text_field: str = "text",
        id_field: str | None = "id",
        metadata_fields: Sequence[str] | None = None,
        max_document_bytes: int = 10_000_000,
        max_file_bytes: int = 2_000_000_000,
        unknown_files: str = "fail",
        skip: dict | None = None,
    ) -> None:
        super().__init__()
        self._patterns = _patterns(patterns)
        self._skip = dict(skip or {})
        self._fields = RecordFields(
            text=text_field,
            id=id_field,
            metadata=tuple(metadata_fields) if metadata_fields is not None else None,
        )
        self._max_document_bytes = max_document_bytes
        self._max_file_bytes = max_file_bytes
        self._unknown = _check_unknown(unknown_files)

    def expand(self, pbegin: beam.pvalue.PBegin) -> Outputs:
        fn = _ReadDocumentsFn(self._fields, self._max_document_bytes, self._max_file_bytes)
        return _match_and_read(
            pbegin, self._patterns, "document", self._unknown, fn, skip=self._skip
        )


class _ReadImagesFn(beam.DoFn):
    def __init__(self, limits: ImageLimits, captions: str | None) -> None:
        self._limits = limits
        self._captions_path = captions
        self._captions: dict[str, str] = {}
        self._read = progress.counter("images_read")
        self._files = progress.counter("files_read")

    def setup(self) -> None:
        if self._captions_path:
            self._captions = load_captions(self._captions_path)

    def process(self, element: tuple[FileMetadata, str]) -> Iterator:
        meta, rel = element
        self._files.inc()
        try:
            raw = _read_bytes(meta, 4 * 10**9)
            prepared = prepare_image(raw, self._limits)
            caption = self._captions.get(rel) or _sidecar_caption(meta.path)
        except (InvalidImage, OSError, ValueError) as exc:
            yield _failure(exc, rel, meta.path, "read")
            return
        self._read.inc()
        yield ImageItem(
            document_id=rel,
            uri=meta.path,
            data=prepared.data,
            format=prepared.format,
            width=prepared.width,
            height=prepared.height,
            content_hash=content_hash(raw + b"\0" + (caption or "").encode("utf-8")),
            text=caption,
            metadata={"format": _extension(meta.path).lstrip("."), "resized": prepared.resized},
        )

    def display_data(self) -> dict:
        return {
            "max_image_bytes": self._limits.max_bytes,
            "max_image_pixels": self._limits.max_pixels,
            "captions": self._captions_path or "",
        }


def _sidecar_caption(path: str) -> str | None:
    sidecar = posixpath.splitext(path)[0] + ".txt"
    if not FileSystems.exists(sidecar):
        return None
    (match,) = FileSystems.match([sidecar])
    if not match.metadata_list or match.metadata_list[0].size_in_bytes > SIDECAR_MAX_BYTES:
        return None
    with FileSystems.open(sidecar) as f:
        text = decode_text(f.read()).strip()
    return text or None


def load_captions(path: str) -> dict[str, str]:
    """Captions from a JSONL (``{"file", "caption"}``) or CSV (``file,caption``) file."""
    with FileSystems.open(path) as f:
        text = decode_text(f.read())
    rows: Iterable[dict]
    if path.endswith(".csv"):
        rows = csv.DictReader(io.StringIO(text))
    else:
        rows = (json.loads(line) for line in text.splitlines() if line.strip())
    out = {}
    for row in rows:
        if not isinstance(row, dict) or "file" not in row or "caption" not in row:
            raise ConfigError("captions", path, "each row needs 'file' and 'caption'")
        out[str(row["file"])] = str(row["caption"])
    return out


class ReadImages(beam.PTransform):
    """Read images from file patterns on any Beam filesystem.

    png, jpeg, webp and gif are sent as they are when within ``max_bytes`` and
    ``max_pixels``; larger images are downscaled and re-encoded (never rejected), other
    formats Pillow opens are converted, and EXIF orientation is applied. A caption comes
    from a sidecar (``cat.txt`` beside ``cat.jpg``) or a ``captions`` file (JSONL or
    CSV with ``file`` and ``caption``). Returns ``Outputs(main=ImageItem, failures)``;
    corrupt or empty images are failures with the decoder's reason.
    """

    def __init__(
        self,
        patterns: str | Sequence[str],
        *,
        max_bytes: int = 3_000_000,
        max_pixels: int = 16_000_000,
        captions: str | None = None,
        unknown_files: str = "fail",
    ) -> None:
        super().__init__()
        self._patterns = _patterns(patterns)
        self._limits = ImageLimits(max_bytes=max_bytes, max_pixels=max_pixels)
        self._captions = captions
        self._unknown = _check_unknown(unknown_files)

    def expand(self, pbegin: beam.pvalue.PBegin) -> Outputs:
        fn = _ReadImagesFn(self._limits, self._captions)
        return _match_and_read(pbegin, self._patterns, "image", self._unknown, fn)


def _match_and_read(
    pbegin, patterns: list[str], kind: str, unknown: str, read_fn, *, skip: dict | None = None
) -> Outputs:
    """Patterns -> match (files of ``kind``, but those ``skip`` lists unchanged) ->
    reshuffle -> ``read_fn``, failures merged."""
    matched = (
        pbegin
        | "Patterns" >> beam.Create(patterns)
        | "Match" >> beam.ParDo(_MatchFn(kind, unknown, skip)).with_outputs(FAILURES, main="files")
    )
    read = (
        matched.files
        | "Reshuffle" >> beam.Reshuffle()
        | "Read" >> beam.ParDo(read_fn).with_outputs(FAILURES, main="items")
    )
    failures = (matched.failures, read.failures) | "Failures" >> beam.Flatten()
    return Outputs(read.items, failures)


def _patterns(patterns: str | Sequence[str]) -> list[str]:
    out = [patterns] if isinstance(patterns, str) else list(patterns)
    if not out or not all(isinstance(p, str) and p for p in out):
        raise ConfigError("patterns", patterns, "give one or more file patterns")
    return out


def _check_unknown(value: str) -> str:
    if value not in ("fail", "skip"):
        raise ConfigError("unknown_files", value, "must be 'fail' or 'skip'")
    return value
