"""PDF files as documents, one a page, with pypdfium2 (PDFium inside the wheel; no Beam).

Each page with text becomes a ``Document`` whose id is ``<file id>#p<page>`` and whose
metadata holds ``page`` (from 1) and ``pages``; its chunks' ``char_start``/``char_end`` are
therefore offsets within the page's text. What cannot be read lands in failures with the
reason:

- an encrypted file (a password is needed), a corrupt or non-PDF file: one failure for the
  file;
- a file with no text on any page (scanned, needs OCR): one failure for the file;
- a page that fails to load or to give its text, or a page with images but no text (a
  scanned page in a mixed file): one failure for that page; the other pages are read.

A page with neither text nor images (a blank page) is no content and no failure.
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.elements import Document, Failure, read_failures

__all__ = ["parse_pdf"]

_ERRORS = {  # PDFium's FPDF_GetLastError codes
    2: "file not found or could not be opened",
    3: "not a PDF, or a corrupt one",
    4: "encrypted: a password is needed to read it",
    5: "unsupported security scheme",
    6: "page not found or content error",
}


def _open_error(exc: BaseException) -> str:
    code = getattr(exc, "err_code", None)
    return _ERRORS.get(code, f"cannot open the PDF: {exc}")


def parse_pdf(
    data: bytes, *, document_id: str, uri: str, max_document_bytes: int
) -> Iterator[Document | Failure]:
    """Documents (one a page with text) and failures of one PDF file's bytes."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    fail = read_failures(document_id, uri)

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        yield fail(_open_error(exc))
        return
    try:
        pages = len(pdf)
        found = scanned = 0
        page_failures: list[Failure] = []
        for number in range(1, pages + 1):
            source = f"{document_id}#p{number}"
            try:
                page = pdf[number - 1]
                try:
                    textpage = page.get_textpage()
                    text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
                    textpage.close()
                    has_images = not text.strip() and any(
                        True for _ in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))
                    )
                finally:
                    page.close()
            except (pdfium.PdfiumError, ValueError, OSError) as exc:
                page_failures.append(fail(f"page {number}: cannot read its text ({exc})", source))
                continue
            if not text.strip():
                if has_images:
                    scanned += 1
                    page_failures.append(
                        fail(f"page {number} has images but no text (scanned? needs OCR)", source)
                    )
                continue
            if len(text.encode("utf-8")) > max_document_bytes:
                over = f"page {number}'s text is over the {max_document_bytes / 1e6:g} MB limit"
                page_failures.append(fail(over, source))
                continue
            found += 1
            yield Document.of(
                document_id=source,
                uri=uri,
                text=text,
                metadata={"format": "pdf", "page": number, "pages": pages},
            )
        if found == 0 and not any("cannot read" in f.message for f in page_failures):
            what = f"{scanned} scanned page(s)" if scanned else "blank pages"
            yield fail(f"no text in any of its {pages} page(s): {what} (needs OCR?)")
            return
        yield from page_failures
    finally:
        pdf.close()
