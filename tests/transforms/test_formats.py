"""File formats and image preparation, without Beam."""

import io

import pytest
from PIL import Image

from indexes.storage.tables import RECORD_DIGEST
from tests.support.images import jpeg, solid_png
from transforms.elements import Document, Failure
from transforms.formats import RecordFields, html_to_text, parse_documents
from transforms.images import ImageLimits, InvalidImage, prepare_image
from transforms.records import record_digest


def parse(data, ext, **kw):
    return list(
        parse_documents(
            data,
            document_id="f",
            uri="/x/f",
            extension=ext,
            fields=kw.pop("fields", RecordFields()),
            max_document_bytes=kw.pop("limit", 1000),
        )
    )


def test_html_keeps_visible_text_and_paragraphs():
    html = "<title>T</title><script>bad()</script><p>One &amp; two</p><div>Three</div>"
    assert html_to_text(html) == "T\n\nOne & two\n\nThree"


def test_text_with_bom_and_metadata():
    (doc,) = parse("\ufeffhello".encode(), ".txt")
    assert isinstance(doc, Document) and doc.text == "hello" and doc.metadata == {"format": "txt"}
    assert len(doc.content_hash) == 64


def test_records_use_configured_fields():
    data = b'{"key": "k1", "body": "text one", "a": 1, "nested": {"x": 1}}\n'
    (doc,) = parse(data, ".jsonl", fields=RecordFields(text="body", id="key"))
    assert doc.document_id == "k1" and doc.text == "text one"
    # nested values are not metadata; the record's digest is (for updates: records.py)
    assert doc.metadata == {"a": 1, "format": "jsonl", RECORD_DIGEST: record_digest(data[:-1])}
    (doc,) = parse(b'{"text": "no id"}\n', ".jsonl")
    assert doc.document_id == "f#L1"


@pytest.mark.parametrize(
    ("data", "ext", "reason"),
    [
        (b"", ".txt", "empty file"),
        (b"   \n", ".txt", "empty document"),
        (b"x" * 2000, ".txt", "over the 0.001 MB limit"),
        (b"\xff\xfe", ".md", "not valid UTF-8 at byte 0"),
        (b"<p> </p>", ".html", "empty document"),
        (b"PK\x03\x04", ".docx", "cannot read the .docx file"),
        (b"PK\x03\x04", ".odt", "unsupported file type '.odt'"),
        (b"%PDF-1.4 cut", ".pdf", "not a PDF, or a corrupt one"),
        (b"not parquet", ".parquet", "cannot read parquet file"),
        (b'{"text": 5}\n', ".jsonl", "non-text (int) 'text' field"),
        (b"[1, 2]\n", ".jsonl", "record is not an object"),
        (b"id,text\n1,\n", ".csv", "field is empty"),
    ],
)
def test_bad_files_give_readable_reasons(data, ext, reason):
    (failure,) = parse(data, ext)
    assert isinstance(failure, Failure) and reason in failure.message, failure.message
    assert failure.stage == "read" and failure.uri == "/x/f"


def test_small_images_are_sent_as_they_are():
    data = solid_png()
    out = prepare_image(data, ImageLimits())
    assert out.data == data and out.format == "png" and not out.resized


def test_exif_orientation_is_applied():
    out = prepare_image(jpeg(size=(64, 48), orientation=6), ImageLimits())
    assert (out.width, out.height) == (48, 64) and out.resized and out.format == "jpeg"


def test_large_images_are_downscaled_within_limits():
    big = io.BytesIO()
    Image.effect_noise((3000, 2000), 80).convert("RGB").save(big, format="PNG")
    limits = ImageLimits(max_bytes=200_000, max_pixels=1_000_000)
    out = prepare_image(big.getvalue(), limits)
    assert out.width * out.height <= 1_000_000 and len(out.data) <= 200_000
    assert Image.open(io.BytesIO(out.data)).size == (out.width, out.height)


def test_other_formats_are_converted():
    bmp = io.BytesIO()
    Image.new("RGBA", (10, 10), (1, 2, 3, 100)).save(bmp, format="PNG")
    tiff = io.BytesIO()
    Image.new("RGB", (10, 10)).save(tiff, format="TIFF")
    assert prepare_image(tiff.getvalue(), ImageLimits()).format == "jpeg"
    assert prepare_image(bmp.getvalue(), ImageLimits()).format == "png"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"not an image", "cannot identify"),
        (solid_png(size=(256, 256))[:300], "cannot decode image"),
    ],
)
def test_corrupt_images(data, reason):
    with pytest.raises(InvalidImage, match=reason):
        prepare_image(data, ImageLimits())
