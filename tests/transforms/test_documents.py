"""PDF and .docx reading without Beam: pages and sections, their metadata, and every
failure with its reason."""

from __future__ import annotations

import pytest

from tests.support.documents import docx, pdf
from transforms.elements import Document, Failure
from transforms.formats import RecordFields, parse_documents

PAGES = [
    "Page one talks about the harbour and its cranes.",
    "Page two lists the tides for the spring months.",
    "Page three: the heron nests under the old mill bridge every April.",
]


def parse(data: bytes, ext: str, limit: int = 10_000) -> list[Document | Failure]:
    return list(
        parse_documents(
            data,
            document_id="f" + ext,
            uri="/x/f" + ext,
            extension=ext,
            fields=RecordFields(),
            max_document_bytes=limit,
        )
    )


def test_a_pdf_is_one_document_a_page_with_its_number():
    docs = parse(pdf(PAGES), ".pdf")
    assert [d.document_id for d in docs] == ["f.pdf#p1", "f.pdf#p2", "f.pdf#p3"]
    assert [d.metadata for d in docs] == [
        {"format": "pdf", "page": n, "pages": 3} for n in (1, 2, 3)
    ]
    for doc, text in zip(docs, PAGES, strict=True):
        assert " ".join(doc.text.split()) == text  # offsets are within this page's text
        assert doc.uri == "/x/f.pdf"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (pdf(PAGES, password="secret"), "encrypted: a password is needed"),
        (pdf(PAGES)[:200], "not a PDF, or a corrupt one"),
        (b"%PDF-1.7\nnothing else", "not a PDF, or a corrupt one"),
        (pdf([None, None]), "no text in any of its 2 page(s): 2 scanned page(s)"),
    ],
)
def test_unreadable_pdfs_are_one_failure_with_the_reason(data, reason):
    (failure,) = parse(data, ".pdf")
    assert isinstance(failure, Failure) and failure.source_id == "f.pdf"
    assert failure.stage == "read" and reason in failure.message


def test_a_scanned_page_fails_alone_and_the_others_are_read():
    items = parse(pdf([PAGES[0], None, "", PAGES[2]]), ".pdf")  # a scan, then a blank page
    docs = [i for i in items if isinstance(i, Document)]
    failures = [i for i in items if isinstance(i, Failure)]
    assert [d.metadata["page"] for d in docs] == [1, 4]
    assert [(f.source_id, f.message) for f in failures] == [
        ("f.pdf#p2", "page 2 has images but no text (scanned? needs OCR)")
    ]


def test_a_page_over_the_limit_fails_alone():
    items = parse(pdf(["short", "long " * 50]), ".pdf", limit=100)
    assert isinstance(items[0], Document)
    assert isinstance(items[1], Failure) and items[1].source_id == "f.pdf#p2"
    assert "over the 0.0001 MB limit" in items[1].message


def test_docx_sections_start_at_headings():
    data = docx(
        [
            ("p", "A preface before any heading."),
            ("title", "Field guide"),
            ("p", "Birds of the river."),
            ("h1", "Herons"),
            ("p", "The heron stands still in shallow water."),
            ("table", "wingspan | 1.9 m"),
            ("h2", "Nesting"),
            ("p", "Herons nest in colonies."),
        ]
    )
    docs = parse(data, ".docx")
    assert [d.document_id for d in docs] == [f"f.docx#s{n}" for n in (1, 2, 3, 4)]
    assert [d.metadata["heading"] for d in docs] == [None, "Field guide", "Herons", "Nesting"]
    assert docs[2].text == "Herons\n\nThe heron stands still in shallow water.\n\nwingspan | 1.9 m"
    assert docs[3].metadata == {"format": "docx", "section": 4, "heading": "Nesting"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (docx([]), "empty document (no text in the .docx)"),
        (b"PK\x03\x04 not really a zip", "cannot read the .docx file"),
        (pdf(PAGES), "cannot read the .docx file"),  # a PDF named .docx
    ],
)
def test_unreadable_docx_files_are_one_failure(data, reason):
    (failure,) = parse(data, ".docx")
    assert isinstance(failure, Failure) and failure.source_id == "f.docx"
    assert reason in failure.message
