"""An update's tables are layered over the live version's: it writes the changed rows (delta
parts) and the removed ids, shares the live version's parts and lexical segments, reads only
the files that changed, and read back its tables are those of a full build; past the layer
limit, or with another shard count, it writes every part in full again. The update path
itself: test_update_job.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpusbeam.errors import IndexFolderError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.lexical.index import open_lexical
from indexes.reader import open_index
from indexes.storage.ids import chunk_id
from pipeline.index_job import run_index_job
from tests.support.jobs import WORDS, Records
from tests.support.jobs import update_job as job


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        yield ep


def _own_bytes(folder: Path) -> int:
    """Bytes of the folder's files that are not hard links to an earlier version's."""
    return sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.stat().st_nlink == 1
    )


@pytest.mark.parametrize("encoding", ["float", "ubinary"])
def test_layered_tables_read_like_tables_written_in_full(tmp_path, endpoint, encoding):
    """An update writes only the changed rows (delta parts) and the removed ids, sharing the
    live version's parts; read back, its tables are those of the same corpus written in
    full: ids, metadata, vectors, rescoring vectors, rows by position, lookups."""
    records = Records(tmp_path / "corpus", n=400)
    out = tmp_path / "out"
    kw = {"encoding_format": encoding}
    first = run_index_job(job(records.folder, out, endpoint.url, **kw))
    before = dict(records.files)
    moved = records.step()
    run = run_index_job(job(records.folder, out, endpoint.url, **kw))
    full = run_index_job(job(records.folder, tmp_path / "full", endpoint.url, **kw))
    layered, written = open_index(run.folder), open_index(full.folder)
    overlay = layered.manifest.overlay
    assert overlay is not None and overlay["base"] == first.version
    assert written.manifest.overlay is None
    # 4 edits, 4 additions and the moved record are the delta; 4 edits, 4 deletions and the
    # move's old row are removed from the base, which is the first version's, shared.
    assert sum(p["rows"] for p in overlay["parts"]) == 9
    assert sum(r["count"] for r in overlay["removed"]) == 9
    assert layered.manifest.parts == open_index(first.folder).manifest.parts
    for p in layered.manifest.parts:
        assert (run.folder / (p["name"] + ".metadata.parquet")).stat().st_nlink > 1
    # The update's own parts files are a small fraction of the first version's.
    own_parts = sum(
        p.stat().st_size for p in (run.folder / "parts").iterdir() if p.stat().st_nlink == 1
    )
    first_parts = sum(p.stat().st_size for p in (first.folder / "parts").iterdir())
    assert own_parts < 0.25 * first_parts

    a, b = layered.parts, written.parts
    assert a.count == b.count == len(records.files)
    np.testing.assert_array_equal(a.ids(), b.ids())
    ma, mb = layered.metadata(), written.metadata()
    assert ma.select(mb.column_names).equals(mb)
    for x, y in zip(a.vectors(), b.vectors(), strict=True):
        np.testing.assert_array_equal(x, y)
    rows = np.array([0, 3, 57, 58, 200, a.count - 1])
    for x, y in zip(a.rows(rows), b.rows(rows), strict=True):
        np.testing.assert_array_equal(x, y)
    if encoding == "ubinary":
        np.testing.assert_array_equal(a.rescore_rows()[rows], b.rescore_rows()[rows])
    assert list(a.iter_column("text")) == list(b.iter_column("text"))
    # Rows by id (from the parts' mapped Arrow files, base and delta) are the Parquet rows.
    assert layered.lookup(ma.column("id").to_numpy()) == ma.to_pylist()
    assert layered.rows_file() is not None and (run.folder / ".rows").is_dir()
    (row,) = layered.lookup(np.array([chunk_id(moved, 0)]))
    assert row["uri"].endswith(records.files[moved][0])
    gone = next(r for r in sorted(records.deleted) if r not in records.files)
    with pytest.raises(IndexFolderError, match="removed"):
        layered.lookup(np.array([chunk_id(gone, 0)]))
    xq = np.random.default_rng(5).standard_normal((12, 64)).astype(np.float32)
    ra, rb = layered.search(xq, 10), written.search(xq, 10)
    assert not np.isin(ra.I, [chunk_id(gone, 0)]).any()
    if encoding == "float":  # flat: exact on both sides
        np.testing.assert_array_equal(ra.I, rb.I)

    # The lexical index: the base parts' segments shared, the delta's written, the removed
    # ids never found; an edited record is found by its new words only.
    lexical = open_lexical(run.folder, layered.manifest.lexical)
    names = [seg["name"] for seg in layered.manifest.lexical["segments"]]
    assert any(n.startswith("part-") for n in names) and any(n.startswith("delta-") for n in names)
    base_files = [f for f in (run.folder / "lexical").rglob("*") if "part-" in str(f.parent)]
    assert base_files and all(f.stat().st_nlink > 1 for f in base_files if f.is_file())
    edited = next(r for r in sorted(records.files) if r in before and records.files[r] != before[r])
    old_number = before[edited][1].split("#")[1].rstrip(".")
    new_number = records.files[edited][1].split("#")[1].rstrip(".")
    target = chunk_id(edited, 0)
    assert target in lexical.search([new_number], 5).I[0]
    assert target not in lexical.search([old_number], 5).I[0]
    gone_text = before[gone][1].split("#")[1].rstrip(".")
    assert chunk_id(gone, 0) not in lexical.search([gone_text], 5).I[0]


def test_layers_are_written_in_full_again_past_the_limit(tmp_path, endpoint):
    """Each layered update rewrites the delta and removed files for the version; once they
    pass LAYER_LIMIT of the rows, the next run writes every part in full (no overlay)."""
    records = Records(tmp_path / "corpus", n=120)
    out = tmp_path / "out"
    run_index_job(job(records.folder, out, endpoint.url))
    records.step()  # 9 delta rows and 9 removed ids: 18 > 0.1 of 120 rows
    second = open_index(run_index_job(job(records.folder, out, endpoint.url)).folder)
    assert second.manifest.overlay is not None
    records.step()
    third = open_index(run_index_job(job(records.folder, out, endpoint.url)).folder)
    assert third.manifest.overlay is None
    assert all(p["name"].startswith("parts/part-") for p in third.manifest.parts)
    records.step()
    no_layers = run_index_job(job(records.folder, out, endpoint.url, layered=False))
    assert open_index(no_layers.folder).manifest.overlay is None


def test_a_folder_whose_overlay_lost_a_file_is_refused(tmp_path, endpoint):
    records = Records(tmp_path / "corpus", n=120)
    out = tmp_path / "out"
    run_index_job(job(records.folder, out, endpoint.url))
    records.step()
    run = run_index_job(job(records.folder, out, endpoint.url))
    removed = open_index(run.folder).manifest.overlay["removed"][0]["file"]
    (run.folder / removed).unlink()
    with pytest.raises(IndexFolderError, match="removed-0000"):
        open_index(run.folder)


def _same_tables(a, b) -> None:
    """Two folders hold the same rows: ids, metadata, vectors."""
    np.testing.assert_array_equal(a.parts.ids(), b.parts.ids())
    ma, mb = a.metadata(), b.metadata()
    assert ma.select(mb.column_names).equals(mb)
    for x, y in zip(a.vectors(), b.vectors(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_an_update_reads_only_the_files_that_changed(tmp_path, endpoint):
    """A layered update does not read the files the live version read with the same size
    and time: their rows stay in the base parts, or are carried from the live delta parts
    into the new ones, and their failures are carried. The tables equal a full build's."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(60):
        (corpus / f"doc{i}.md").write_text(f"Note {i} about the {WORDS[i % 10]} and {i * 13}.\n")
    (corpus / "empty.txt").write_text("")  # fails, unchanged, every run
    out = tmp_path / "out"
    first = run_index_job(job(corpus, out, endpoint.url))
    assert first.report["counts"]["failed"] == 1
    (corpus / "doc3.md").write_text("Note 3 was rewritten about the comet.\n")
    (corpus / "doc5.md").unlink()
    (corpus / "doc60.md").write_text("Note 60 is new, about the lantern.\n")
    second = run_index_job(job(corpus, out, endpoint.url))
    counts = second.report["counts"]
    assert counts["files_skipped"] == 59 and counts["documents_read"] == 2
    assert counts["embedded"] == 2 and counts["deleted"] == 1 and counts["indexed"] == 60
    assert counts["failed"] == 1  # empty.txt, not read again, still fails
    _same_tables(
        open_index(second.folder),
        open_index(run_index_job(job(corpus, tmp_path / "a", endpoint.url)).folder),
    )
    (corpus / "doc7.md").write_text("Note 7 now speaks of the harbor.\n")
    third = run_index_job(job(corpus, out, endpoint.url))
    counts = third.report["counts"]
    # doc7 changed; doc3 and doc60, whose rows are in the live version's delta, are not
    # read again: their rows are carried into the new delta parts.
    assert counts["files_skipped"] == 60 and counts["documents_read"] == 1
    assert counts["embedded"] == 1 and counts["deleted"] == 0 and counts["indexed"] == 60
    overlay = open_index(third.folder).manifest.overlay
    assert sum(p["rows"] for p in overlay["parts"]) == 3  # doc3, doc60 carried; doc7
    full = run_index_job(job(corpus, tmp_path / "b", endpoint.url))
    _same_tables(open_index(third.folder), open_index(full.folder))
    res = open_index(third.folder).search(
        np.random.default_rng(2).standard_normal((5, 64)).astype(np.float32), 10
    )
    assert not np.isin(res.I, [chunk_id("doc5.md", 0)]).any()
    # A carried row's file changes (doc3 again) and another goes (doc60): read, dropped.
    (corpus / "doc3.md").write_text("Note 3 was rewritten twice, about the cedar.\n")
    (corpus / "doc60.md").unlink()
    fourth = run_index_job(job(corpus, out, endpoint.url))
    counts = fourth.report["counts"]
    assert counts["files_skipped"] == 59 and counts["documents_read"] == 1
    assert counts["deleted"] == 1 and counts["indexed"] == 59 and counts["failed"] == 1
    full = run_index_job(job(corpus, tmp_path / "c", endpoint.url))
    _same_tables(open_index(fourth.folder), open_index(full.folder))
    overlay = open_index(fourth.folder).manifest.overlay
    assert sum(p["rows"] for p in overlay["parts"]) == 2  # doc3 read again; doc7 carried


def test_another_shard_count_writes_the_parts_in_full(tmp_path, endpoint):
    """Layers go over parts of the same id ranges: with another --shards the run writes
    every part in full, and its tables equal a full build's."""
    records = Records(tmp_path / "corpus", n=160)
    out = tmp_path / "out"
    run_index_job(job(records.folder, out, endpoint.url))  # 4 shards
    records.step()
    run = run_index_job(job(records.folder, out, endpoint.url, shards=8))
    folder = open_index(run.folder)
    assert folder.manifest.overlay is None and len(folder.manifest.parts) == 8
    _same_tables(
        folder, open_index(run_index_job(job(records.folder, tmp_path / "b", endpoint.url)).folder)
    )
