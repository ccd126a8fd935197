"""Word ``.docx`` files as documents, one a section, with python-docx (no Beam).

A section is a heading (a paragraph styled ``Title`` or ``Heading N``) and everything up to
the next heading, so headings are always chunk boundaries: no chunk spans two sections.
Each section becomes a ``Document`` ``<file id>#s<n>`` (``n`` from 1, in document order;
text before the first heading is section 1 with no heading), with ``section`` and
``heading`` in its metadata. Paragraphs and table rows (cells joined by `` | ``) keep
their order. A file python-docx cannot open, or one with no text, is one failure.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from transforms.elements import Document, Failure, read_failures

__all__ = ["parse_docx"]

_HEADING = re.compile(r"^(Title|Heading \d+)$", re.IGNORECASE)


def _blocks(doc) -> Iterator[tuple[str, bool]]:
    """(text, is_heading) of each paragraph and table row in body order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for item in doc.iter_inner_content():
        if isinstance(item, Paragraph):
            style = item.style.name if item.style is not None else ""
            yield item.text, bool(_HEADING.match(style or ""))
        elif isinstance(item, Table):
            for row in item.rows:
                cells = [c.text.strip() for c in row.cells]
                yield " | ".join(c for c in cells if c), False


def parse_docx(
    data: bytes, *, document_id: str, uri: str, max_document_bytes: int
) -> Iterator[Document | Failure]:
    """Documents (one a section with text) and failures of one .docx file's bytes."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    fail = read_failures(document_id, uri)

    try:
        doc = docx.Document(io.BytesIO(data))
        sections: list[tuple[str | None, list[str]]] = [(None, [])]
        for text, heading in _blocks(doc):
            if heading:
                sections.append((text.strip(), [text]))
            elif text.strip():
                sections[-1][1].append(text)
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as exc:
        # not a zip, or a zip without a Word document part, or broken XML
        yield fail(f"cannot read the .docx file: {type(exc).__name__}: {exc}")
        return
    found = 0
    for number, (heading, lines) in enumerate((s for s in sections if s[1]), start=1):
        text = "\n\n".join(lines)
        source = f"{document_id}#s{number}"
        if not text.strip():
            continue
        if len(text.encode("utf-8")) > max_document_bytes:
            limit = f"{max_document_bytes / 1e6:g} MB"
            yield fail(f"section {number} is over the {limit} limit", source)
            continue
        found += 1
        yield Document.of(
            document_id=source,
            uri=uri,
            text=text,
            metadata={"format": "docx", "section": number, "heading": heading},
        )
    if not found:
        yield fail("empty document (no text in the .docx)")
