"""Turning a file's bytes into documents: plain text, Markdown, HTML, JSONL, CSV, Parquet,
PDF (one document a page: ``transforms.pdf_files``) and Word .docx (one a section:
``transforms.word_files``).

Plain functions, no Beam, so they are easy to test and to reuse. ``parse_documents``
yields ``Document`` for what it can read and ``Failure`` for what it cannot, with a
reason a person can act on ("not valid UTF-8 at byte 12", "line 3: invalid JSON").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from corpusbeam.errors import ConfigError
from transforms.elements import Document, Failure, read_failures

__all__ = [
    "DOCUMENT_EXTENSIONS",
    "FILE_LIMIT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "RecordFields",
    "decode_text",
    "html_to_text",
    "parse_documents",
    "record_document",
]

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst", ".text"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
RECORD_EXTENSIONS = frozenset({".jsonl", ".ndjson", ".csv", ".parquet"})
PAGED_EXTENSIONS = frozenset({".pdf", ".docx"})
DOCUMENT_EXTENSIONS = TEXT_EXTENSIONS | HTML_EXTENSIONS | RECORD_EXTENSIONS | PAGED_EXTENSIONS
# Files that hold many documents (records, pages, sections): the file-size limit applies to
# them, max_document_bytes to each document's text.
FILE_LIMIT_EXTENSIONS = RECORD_EXTENSIONS | PAGED_EXTENSIONS
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True, kw_only=True)
class RecordFields:
    """Which fields of a JSONL, CSV or Parquet record hold the text, the id and metadata.

    ``metadata=None`` keeps every other scalar field as metadata; a tuple keeps those.
    """

    text: str = "text"
    id: str | None = "id"
    metadata: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.text:
            raise ConfigError("text_field", self.text, "name the field that holds the text")


class _InvalidText(ValueError):
    pass


def decode_text(data: bytes) -> str:
    """UTF-8 text from bytes (a BOM is dropped); raises ValueError with the reason."""
    if b"\x00" in data[:65536]:
        raise _InvalidText("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 4]
        raise _InvalidText(f"not valid UTF-8 at byte {exc.start} ({bad!r})") from None


_BLOCK_TAGS = frozenset({
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
    "section", "article", "header", "footer", "pre", "blockquote", "title", "dt", "dd", "hr",
})  # fmt: skip
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page: scripts and styles dropped, blocks as paragraphs."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parse_documents(
    data: bytes,
    *,
    document_id: str,
    uri: str,
    extension: str,
    fields: RecordFields,
    max_document_bytes: int,
) -> Iterator[Document | Failure]:
    """Documents (or failures) from one file's bytes, by its extension."""
    ext = extension.lower()

    fail = read_failures(document_id, uri)

    if not data:
        yield fail("empty file")
        return
    if ext in RECORD_EXTENSIONS:
        yield from _parse_records(data, document_id, uri, ext, fields, max_document_bytes)
        return
    if ext in PAGED_EXTENSIONS:
        if ext == ".pdf":
            from transforms.pdf_files import parse_pdf as parse
        else:
            from transforms.word_files import parse_docx as parse
        yield from parse(
            data, document_id=document_id, uri=uri, max_document_bytes=max_document_bytes
        )
        return
    if ext not in TEXT_EXTENSIONS | HTML_EXTENSIONS:
        yield fail(f"unsupported file type {ext or '(no extension)'!r}")
        return
    if len(data) > max_document_bytes:
        yield fail(
            f"file is {len(data) / 1e6:.1f} MB, over the {max_document_bytes / 1e6:g} MB "
            "limit for one document (max_document_bytes)"
        )
        return
    try:
        text = decode_text(data)
    except _InvalidText as exc:
        yield fail(str(exc))
        return
    if ext in HTML_EXTENSIONS:
        text = html_to_text(text)
    if not text.strip():
        yield fail("empty document (no text after decoding)")
        return
    yield Document.of(
        document_id=document_id, uri=uri, text=text, metadata={"format": ext.lstrip(".")}
    )


def _parse_records(data, document_id, uri, ext, fields, max_document_bytes):
    """A record file's documents, each with its record's digest (``transforms.records``)."""
    from transforms.records import record_items

    yield from record_items(
        data,
        document_id=document_id,
        uri=uri,
        extension=ext,
        fields=fields,
        max_document_bytes=max_document_bytes,
    )


def record_document(row, source, uri, ext, fields: RecordFields, max_document_bytes):
    """The document of one parsed record (``source``: its file's id and position, the
    document id when the record has no id field), or a failure with the reason."""
    fail = read_failures(source, uri)

    text = row.get(fields.text)
    if not isinstance(text, str):
        what = "has no" if text is None else f"has a non-text ({type(text).__name__})"
        return fail(f"record {what} {fields.text!r} field")
    if not text.strip():
        return fail(f"record's {fields.text!r} field is empty")
    if len(text.encode("utf-8")) > max_document_bytes:
        return fail(f"record's text is over the {max_document_bytes / 1e6:g} MB limit")
    record_id = row.get(fields.id) if fields.id else None
    document_id = str(record_id) if record_id not in (None, "") else source
    keep = fields.metadata
    metadata = {
        k: v
        for k, v in row.items()
        if k not in (fields.text, fields.id)
        and (keep is None or k in keep)
        and (v is None or isinstance(v, str | int | float | bool))
    }
    metadata["format"] = ext.lstrip(".")
    return Document.of(document_id=document_id, uri=uri, text=text, metadata=metadata)
