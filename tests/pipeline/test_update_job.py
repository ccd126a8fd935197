"""The index job updates the live version's index (indexes.updates.folder) instead of rebuilding
it: five successive runs with edits, additions, deletions and a record that moves between
files search like a full rebuild; a killed update leaves the previous version serving and
its shared files untouched, and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.errors import IndexFolderError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.building.probe import PROBE, load_probe
from indexes.lexical.index import open_lexical
from indexes.reader import open_index
from indexes.storage import versions
from indexes.storage.files import sha256
from indexes.storage.ids import chunk_id
from pipeline.index_job import IndexJobConfig, run_index_job
from tests.support.beam import RUNNERS
from tests.support.cli import start_cli
from tests.support.jobs import WORDS, Records
from tests.support.paths import REPO


def job(corpus: Path, output: Path, url: str, **kw) -> IndexJobConfig:
    kw = {"shards": 4, **kw}
    return IndexJobConfig(
        inputs=(str(corpus),),
        output=str(output),
        endpoint=url,
        pipeline_args=tuple(RUNNERS["direct"]),
        **kw,
    )


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        yield ep


def _exact(folder, xq: np.ndarray, k: int):
    """What a full rebuild of a flat index returns: exact search over the stored vectors."""
    ids, xb, _ = folder.vectors()
    xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    S = xq @ xb.T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(S, order, axis=1)


@pytest.mark.slow
def test_five_updates_of_a_flat_index_search_like_a_rebuild(tmp_path, endpoint):
    records = Records(tmp_path / "corpus")
    out = tmp_path / "out"
    first = run_index_job(job(records.folder, out, endpoint.url))
    assert first.report["update"]["mode"] == "rebuild"
    rng = np.random.default_rng(3)
    xq = rng.standard_normal((30, 64)).astype(np.float32)
    prev = first.folder
    compacted, since = False, 0
    for step in range(5):
        before = {p.name: sha256(p) for p in (prev / "parts").iterdir()}
        moved = records.step()
        run = run_index_job(job(records.folder, out, endpoint.url))
        update = run.report["update"]
        assert update["mode"] == "update", update
        assert update["stats"]["fresh"] == 8 and update["stats"]["stale"] == 8
        assert {p.name: sha256(p) for p in (prev / "parts").iterdir()} == before
        folder = open_index(run.folder)
        seg = folder.manifest.segments
        since += 8
        # Past 0.1 of the index (16 of 160), the flat index is compacted: remove_ids, add.
        compacted = seg["compacted"]
        assert seg["delta"]["count"] == (0 if compacted else since), step
        assert compacted == (since > 16)
        if compacted:
            since = 0
        assert seg["trained"]["version"] == first.version
        assert folder.manifest.count == len(records.files)
        res = folder.search(xq, 10)
        I_exact, D_exact = _exact(folder, xq, 10)
        np.testing.assert_array_equal(res.I, I_exact)
        np.testing.assert_allclose(res.D, D_exact, rtol=1e-5, atol=1e-5)
        gone = np.array([chunk_id(r, 0) for r in records.deleted if r not in records.files])
        assert not np.isin(folder.parts.ids(), gone).any()
        assert not np.isin(res.I, gone).any()
        (row,) = folder.lookup(np.array([chunk_id(moved, 0)]))
        assert row["uri"].endswith(records.files[moved][0])  # the move is seen
        prev = run.folder
    # --rebuild builds the same corpus in full: the same results.
    rebuilt = run_index_job(job(records.folder, out, endpoint.url, rebuild=True))
    assert rebuilt.report["update"]["mode"] == "rebuild"
    assert "--rebuild" in rebuilt.report["update"]["reason"]
    a, b = open_index(prev).search(xq, 10), open_index(rebuilt.folder).search(xq, 10)
    np.testing.assert_array_equal(a.I, b.I)
    np.testing.assert_allclose(a.D, b.D, rtol=1e-5, atol=1e-5)
    assert open_index(rebuilt.folder).manifest.segments is None


@pytest.mark.slow
def test_an_hnsw_index_is_updated_then_rebuilt_past_the_threshold(tmp_path, endpoint):
    records = Records(tmp_path / "corpus", n=200)
    out = tmp_path / "out"
    run_index_job(job(records.folder, out, endpoint.url, index="HNSW16"))
    records.step()
    run = run_index_job(job(records.folder, out, endpoint.url, index="HNSW16"))
    assert run.report["update"]["mode"] == "update"
    assert open_index(run.folder).manifest.recall["value"] >= 0.9
    for _ in range(2):  # a delta of 24 of 200 passes 0.1: HNSW cannot remove, so rebuild
        records.step()
        run = run_index_job(job(records.folder, out, endpoint.url, index="HNSW16"))
    assert run.report["update"]["mode"] == "rebuild"
    assert "cannot remove ids" in run.report["update"]["reason"]


def _ivf_lists(folder: Path) -> tuple[np.ndarray, list[set[int]]]:
    """(the IVF quantizer's centroids, each inverted list's ids) of a version's index."""
    import faiss

    from indexes.ann.serialize import read_index

    index = read_index(folder / "index.faiss", "float")
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    ids = [
        {int(i) for i in faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n))}
        if lists.list_size(n)
        else set()
        for n in range(ivf.nlist)
    ]
    return ivf.quantizer.reconstruct_n(0, ivf.nlist), ids


@pytest.mark.slow
def test_an_update_trains_nothing_and_a_rebuild_it_forces_trains_as_rebuild_does(
    tmp_path, endpoint
):
    """The pipeline trains no quantizer for an update that keeps the live index; when the
    retraining policy then asks for a rebuild, the index trained after the fact is the one
    ``--rebuild`` trains in the pipeline: the same centroids, the same ids in each list."""
    records = Records(tmp_path / "corpus", n=240)
    out = tmp_path / "out"
    ivf = {"index": "IVF4,Flat"}
    first = run_index_job(job(records.folder, out, endpoint.url, **ivf))
    assert first.report["update"]["training"] == "pipeline"
    assert PROBE in open_index(first.folder).manifest.files  # the build keeps a probe
    records.step()
    run = run_index_job(job(records.folder, out, endpoint.url, **ivf))
    update = run.report["update"]
    assert (update["mode"], update["training"]) == ("update", "none"), update
    seg = open_index(run.folder).manifest.segments
    assert seg["added_since_training"] == 8 and seg["trained"]["version"] == first.version
    # The first update carried the build's probe forward (its queries less the changed
    # rows), and measured the built index's recall again on it (the rule's baseline).
    carried, built = load_probe(run.folder), load_probe(first.folder)
    assert 0 < built.queries - carried.queries <= 8 and carried.sampled == built.sampled
    assert np.isin(carried.query_ids, built.query_ids).all()
    assert "recall_build" in seg["trained"]
    for name in sorted(records.files)[:60]:  # 60 edited: past 0.2 of the index added
        where, _ = records.files[name]
        records.files[name] = (where, records._text(records.next))
        records.next += 1
    records.write()
    policy = run_index_job(job(records.folder, out, endpoint.url, **ivf))
    update = policy.report["update"]
    assert (update["mode"], update["training"]) == ("rebuild", "finish"), update
    assert "retrain" in update["reason"]
    assert open_index(policy.folder).manifest.segments is None  # trained anew: no segments
    forced = run_index_job(job(records.folder, out, endpoint.url, rebuild=True, **ivf))
    assert forced.report["update"]["training"] == "pipeline"
    centroids, lists = _ivf_lists(policy.folder)
    forced_centroids, forced_lists = _ivf_lists(forced.folder)
    np.testing.assert_array_equal(centroids, forced_centroids)
    assert lists == forced_lists and sum(map(len, lists)) == len(records.files)
    # The next update counts from the rebuild the policy made.
    records.step()
    run = run_index_job(job(records.folder, out, endpoint.url, **ivf))
    seg = open_index(run.folder).manifest.segments
    assert run.report["update"]["training"] == "none"
    assert seg["trained"]["version"] == forced.version and seg["added_since_training"] == 8


@pytest.mark.slow
def test_a_killed_update_leaves_the_previous_version_intact(tmp_path, endpoint):
    records = Records(tmp_path / "corpus", n=400)
    out = tmp_path / "out"
    run_index_job(job(records.folder, out, endpoint.url))
    records.step()
    second = run_index_job(job(records.folder, out, endpoint.url))
    live = second.folder
    files = {p: sha256(p) for p in live.rglob("*") if p.is_file()}
    shared = [p for p in files if p.stat().st_nlink > 1]
    assert shared  # the main index (and unchanged files) are hard links to the first's
    records.step()
    proc = start_cli(
        "index",
        str(records.folder),
        "--output",
        str(out),
        "--endpoint",
        endpoint.url,
        "--shards",
        "4",
        "--runner=DirectRunner",
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    # Killed once the update has linked the live version's files into the new one.
    deadline = time.monotonic() + 120
    while not list((out / "versions").glob("*.partial/index.faiss")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert versions.current_version(out) == live
    assert {p: sha256(p) for p in files} == files  # shared or not, nothing was written
    open_index(live)  # and it verifies
    third = run_index_job(job(records.folder, out, endpoint.url))
    assert third.exit_code == 0 and versions.current_version(out) == third.folder
    assert third.report["update"]["mode"] == "update"
    assert not list((out / "versions").glob("*.partial"))
    assert open_index(third.folder).manifest.count == len(records.files)


@pytest.mark.slow
def test_an_unchanged_rerun_answers_with_the_live_version(tmp_path, endpoint):
    records = Records(tmp_path / "corpus", n=40)
    out = tmp_path / "out"
    first = run_index_job(job(records.folder, out, endpoint.url))
    again = run_index_job(job(records.folder, out, endpoint.url))
    assert again.report["update"]["mode"] == "unchanged"
    assert again.version == first.version and again.folder == versions.current_version(out)
    assert again.report["requests"]["requests"] == 0 and again.exit_code == 0
    assert len(list((out / "versions").iterdir())) == 1  # no new version
    assert run_index_job(job(records.folder, out, endpoint.url, max_tokens=256)).version != (
        first.version
    )  # another setting: the job runs
    forced = run_index_job(job(records.folder, out, endpoint.url, max_tokens=256, rebuild=True))
    assert forced.report["update"]["mode"] == "rebuild"
    records.step()
    changed = run_index_job(job(records.folder, out, endpoint.url, max_tokens=256))
    assert changed.report["update"]["mode"] == "update"
    other = run_index_job(job(records.folder, out, endpoint.url, max_tokens=256, index="HNSW16"))
    assert other.report["update"]["mode"] == "rebuild"
    assert "differs from the live version's index" in other.report["update"]["reason"]


@pytest.mark.parametrize("encoding", ["int8", "ubinary"])
def test_int8_and_binary_reruns_update_their_index(tmp_path, endpoint, encoding):
    """Reused rows carry the live version's rescoring vectors (int8: the bytes)."""
    records = Records(tmp_path / "corpus", n=120)
    out = tmp_path / "out"
    run_index_job(job(records.folder, out, endpoint.url, encoding_format=encoding))
    records.step()
    run = run_index_job(job(records.folder, out, endpoint.url, encoding_format=encoding))
    assert run.report["update"]["mode"] == "update"
    folder = open_index(run.folder)
    _, _, rv = folder.vectors()
    assert rv is not None and rv.shape == (len(records.files), 64)
    gone = np.array([chunk_id(r, 0) for r in records.deleted if r not in records.files])
    res = folder.search(np.random.default_rng(1).standard_normal((8, 64)).astype("float32"), 5)
    assert res.rescored and not np.isin(res.I, gone).any() and (res.I >= 0).all()


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
