"""PDF and Word files written at test time (fpdf2, python-docx): no checked-in binaries."""

from __future__ import annotations

import io

from PIL import Image


def pdf(pages: list[str | None], *, password: str | None = None) -> bytes:
    """A PDF with one page a string (its text) or None (a page holding only an image, as a
    scanner makes); encrypted when ``password`` is given."""
    from fpdf import FPDF

    doc = FPDF()
    doc.set_font("helvetica", size=12)
    for text in pages:
        doc.add_page()
        if text is None:
            scan = Image.new("RGB", (200, 260), (240, 240, 235))
            doc.image(scan, x=10, y=10, w=180)
        else:
            doc.multi_cell(0, 8, text)
    if password is not None:
        doc.set_encryption(owner_password=password + "-owner", user_password=password)
    return bytes(doc.output())


def docx(blocks: list[tuple[str, str]]) -> bytes:
    """A .docx of ``(kind, text)`` blocks: kind ``title``, ``h1``, ``h2``, ``p`` or ``table``
    (text cells separated by ``|``)."""
    import docx as python_docx

    doc = python_docx.Document()
    for kind, text in blocks:
        if kind == "title":
            doc.add_heading(text, level=0)
        elif kind in ("h1", "h2"):
            doc.add_heading(text, level=int(kind[1]))
        elif kind == "table":
            cells = text.split("|")
            table = doc.add_table(rows=1, cols=len(cells))
            for cell, value in zip(table.rows[0].cells, cells, strict=True):
                cell.text = value.strip()
        else:
            doc.add_paragraph(text)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
