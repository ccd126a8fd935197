"""The index job updates the live version's index (indexes.updates.folder) instead of rebuilding
it: five successive runs with edits, additions, deletions and a record that moves between
files search like a full rebuild; an HNSW index, an IVF index's training and an unchanged
rerun each take their own path; a killed update leaves the previous version serving and its
shared files untouched, and the next run completes. How an update's tables are layered over
the live version's parts: test_update_layers.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.building.probe import PROBE, load_probe
from indexes.reader import open_index
from indexes.storage import versions
from indexes.storage.files import sha256
from indexes.storage.ids import chunk_id
from pipeline.index_job import run_index_job
from tests.support.cli import start_cli
from tests.support.jobs import Records
from tests.support.jobs import update_job as job
from tests.support.paths import REPO


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
