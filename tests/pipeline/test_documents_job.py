"""PDF and Word files through the index job: written by the test, indexed on the direct
runner, searched; every bad document ends in failures with its reason."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from corpusbeam.cli.main import main
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.searcher import Searcher
from indexes.storage import versions
from tests.support.documents import docx, pdf

PAGE3 = "the heron nests under the old mill bridge every April"
REPORT = [
    "Harbour report. The cranes were repainted and the quay was resurfaced in winter.",
    "Tide tables for the spring months, with the ferry timetable beside them.",
    f"Wildlife: {PAGE3}, and swallows return in May.",
]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("docs") / "corpus"
    corpus.mkdir()
    (corpus / "report.pdf").write_bytes(pdf(REPORT))
    (corpus / "guide.docx").write_bytes(
        docx(
            [
                ("title", "Field guide"),
                ("p", "Birds of the river and the estuary."),
                ("h1", "Kingfishers"),
                ("p", "A kingfisher dives from a low branch to catch minnows."),
                ("h1", "Otters"),
                ("p", "Otters slide down muddy banks at dusk."),
            ]
        )
    )
    (corpus / "locked.pdf").write_bytes(pdf(REPORT, password="secret"))
    (corpus / "broken.pdf").write_bytes(pdf(REPORT)[:300])
    (corpus / "scan.pdf").write_bytes(pdf([None, None, None]))
    (corpus / "mixed.pdf").write_bytes(pdf(["Lighthouse keepers log the fog.", None]))
    (corpus / "empty.docx").write_bytes(docx([]))
    (corpus / "broken.docx").write_bytes(b"PK\x03\x04 cut short")
    out = corpus.parent / "out"
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        argv = ["index", str(corpus), "--output", str(out), "--endpoint", ep.url]
        code = main([*argv, "--runner=DirectRunner"])
        yield code, out, ep


def test_bad_documents_end_exactly_as_expected_in_failures(indexed):
    code, out, _ = indexed
    assert code == 3
    failures = pq.read_table(versions.current_version(out) / "failures.parquet").to_pylist()
    got = sorted((f["source_id"], f["stage"], f["message"]) for f in failures)
    assert got == [
        ("broken.docx", "read", got[0][2]),
        ("broken.pdf", "read", "not a PDF, or a corrupt one"),
        ("empty.docx", "read", "empty document (no text in the .docx)"),
        ("locked.pdf", "read", "encrypted: a password is needed to read it"),
        ("mixed.pdf#p2", "read", "page 2 has images but no text (scanned? needs OCR)"),
        ("scan.pdf", "read", "no text in any of its 3 page(s): 3 scanned page(s) (needs OCR?)"),
    ]
    assert got[0][2].startswith("cannot read the .docx file")


def test_a_phrase_from_page_3_is_found_with_its_page(indexed):
    _, out, ep = indexed
    with Searcher(out, endpoint=ep.url) as s:
        for mode in ("dense", "lexical", "hybrid"):
            top = s.search(PAGE3, k=3, mode=mode)[0]
            assert top.document_id == "report.pdf#p3", mode
            assert top.metadata["page"] == 3 and top.metadata["pages"] == 3
            assert top.metadata["format"] == "pdf" and top.uri.endswith("report.pdf")
            assert top.text[top.text.index("heron") :].startswith("heron nests")
            assert 0 <= top.metadata["char_start"] < top.metadata["char_end"] <= len(REPORT[2]) + 5
        page1 = s.search("cranes repainted quay", k=1, mode="lexical", filter={"page": 1})
        assert page1[0].document_id == "report.pdf#p1"
        mixed = s.search("lighthouse keepers fog", k=1, mode="lexical")
        assert mixed[0].document_id == "mixed.pdf#p1"  # the scanned page 2 lost nothing else


def test_word_sections_are_documents_with_their_heading(indexed):
    _, out, ep = indexed
    with Searcher(out, endpoint=ep.url) as s:
        top = s.search("kingfisher dives for minnows", k=1, mode="lexical")[0]
        assert top.document_id == "guide.docx#s2"
        assert top.metadata["heading"] == "Kingfishers" and top.metadata["section"] == 2
        assert "Otters" not in top.text  # the next heading starts the next section
