"""ReadDocuments and ReadImages in a real pipeline over valid and bad files."""

import apache_beam as beam
from apache_beam.testing.util import assert_that

from tests.support.beam import exactly, run
from tests.support.corpus import write_bad, write_valid
from transforms import ReadDocuments, ReadImages


def test_each_bad_file_is_one_readable_failure_and_valid_files_are_read(tmp_path):
    valid = write_valid(tmp_path)
    bad = write_bad(tmp_path / "bad")
    docs_expected = {**valid, "bad/broken.jsonl#L1": "fine"}  # no id field: file#line
    docs_expected["ok-1"] = docs_expected.pop("bad/broken.jsonl#L1")
    failures_expected = {f"bad/{k}": v for k, v in bad.items()}
    # Sorted out by the readers: records with an id keep it, others get file#position.
    failures_expected["bad/broken.jsonl#L2"] = failures_expected.pop("bad/broken.jsonl#L2")

    def build(p):
        docs, doc_failures = p | "Docs" >> ReadDocuments(str(tmp_path))
        images, image_failures = p | "Images" >> ReadImages(
            str(tmp_path) + "/", unknown_files="skip"
        )
        assert_that(
            docs | beam.Map(lambda d: (d.document_id, d.text)),
            exactly(docs_expected),
            label="Documents",
        )
        assert_that(
            images | beam.Map(lambda im: (im.document_id, f"{im.text} {im.width}x{im.height}")),
            exactly(
                {
                    "red.png": "a red square 64x48",
                    "rotated.jpg": "None 48x64",
                    "bad/photo_40mp.jpg": "None 5059x3162",
                }
            ),
            label="Images",
        )
        failures = (doc_failures, image_failures) | beam.Flatten()
        assert_that(
            failures | beam.Map(lambda f: (f.source_id, f"{f.stage}: {f.message}")),
            exactly(failures_expected),
            label="Failures",
        )

    run(build)


def test_a_pattern_matching_nothing_is_a_failure(tmp_path):
    def build(p):
        docs, failures = p | ReadDocuments([str(tmp_path / "nothing-*.txt")])
        assert_that(
            docs, lambda got: not got or (_ for _ in ()).throw(AssertionError(got)), label="NoDocs"
        )
        assert_that(
            failures | beam.Map(lambda f: (f.source_id, f.message)),
            exactly({str(tmp_path / "nothing-*.txt"): "no file matches"}),
        )

    run(build)
