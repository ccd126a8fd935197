"""The benchmarks still run and keep their output convention (benchmarks/README.md)."""

from __future__ import annotations

import json

import pytest

from benchmarks import codec_decode, endpoint_rps


def _records(capsys) -> list[dict]:
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    for r in records:
        assert {"benchmark", "metric", "value", "unit"} <= set(r)
        assert r["value"] > 0
    return records


def test_codec_decode_quick(capsys):
    codec_decode.main(["--quick"])
    records = _records(capsys)
    assert len(records) == 6
    assert all(r["baseline"] and r["ratio"] > 0 for r in records)


@pytest.mark.slow
def test_endpoint_rps_quick(capsys):
    endpoint_rps.main(["--quick", "--clients", "2"])
    records = _records(capsys)
    assert [r["metric"] for r in records] == [
        "info_requests_per_s",
        "batch96_requests_per_s",
        "batch96_vectors_per_s",
        "batch1_requests_per_s",
        "batch1_vectors_per_s",
    ]


@pytest.mark.slow
def test_search_latency_quick(capsys):
    from benchmarks import search_latency

    search_latency.main(["--quick", "--nq", "16"])
    records = _records(capsys)
    metrics = [r["metric"] for r in records]
    assert metrics[:2] == ["float_build_time", "ubinary_build_time"]
    for enc in ("float", "ubinary"):
        assert metrics.count(f"{enc}_direct") == metrics.count(f"{enc}_service") == 3
        assert f"{enc}_embed_share" in metrics
    added = [r for r in records if r["metric"].endswith("_service_added_latency")]
    assert len(added) == 2 and all(r["target"] == "< 2 ms" for r in added)


@pytest.mark.slow
def test_the_relevance_set_is_real_docstrings_split_in_two():
    from benchmarks.relevance_docstrings import labelled_set

    docs, queries, qrels, available = labelled_set(200, 20)
    assert available > 1000 and len(docs) == 200 and len(queries) == 20
    bodies = {doc_id: body for doc_id, _, body in docs}
    for qid, text in queries.items():
        (doc_id,) = qrels[qid]
        assert 4 <= len(text.split()) <= 30 and text not in bodies[doc_id]
    # Seeded: the same sample again (the stdlib's docstrings are parsed once a process, in
    # sorted file order, so this checks the sampling).
    assert labelled_set(200, 20) == (docs, queries, qrels, available)


def test_progress_overhead_quick(capsys):
    from benchmarks import progress_overhead

    progress_overhead.main(["--quick"])
    records = _records(capsys)
    assert [r["metric"] for r in records] == [
        "beam_counter",
        "progress_counter_idle",
        "progress_counter_listening",
    ]
    assert all(r["ratio"] > 0 for r in records[1:])


def test_the_disk_sampler_sums_the_output_by_kind_and_counts_a_hard_link_once(tmp_path):
    from benchmarks._disk import DiskSampler

    staging = tmp_path / "versions" / "v2-staging.partial"
    version = tmp_path / "versions" / "v2.partial"
    live = tmp_path / "versions" / "v1"
    files = {
        staging / "runs" / "part-00000" / "a.parquet": 3 << 20,
        staging / "shard-00000.lists": 2 << 20,
        staging / "trained.faiss": 1 << 20,
        version / "parts" / "part-00000.vectors.parquet": 4 << 20,
        version / "lexical" / "part-00000" / "postings.npy": 1 << 20,
        version / "index.faiss": 5 << 20,
        tmp_path / "CURRENT": 10,
    }
    for path, size in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    live.mkdir(parents=True)  # the live version shares a part with the new one
    (live / "parts").mkdir()
    (live / "parts" / "part-00000.vectors.parquet").hardlink_to(
        version / "parts" / "part-00000.vectors.parquet"
    )
    sampler = DiskSampler(tmp_path, trace=tmp_path.parent / "disk.tsv")
    sampler.sample()
    for path in (staging / "runs" / "part-00000" / "a.parquet", staging / "shard-00000.lists"):
        path.unlink()
    sampler.sample()
    sampler.stop()  # never started: stop only closes the trace
    assert {k: round(v, 3) for k, v in sampler.peaks.items() if v} == {
        "runs": 3,
        "ivf_shards": 2,
        "staging_other": 1,
        "parts": 4,
        "lexical": 1,
        "index": 5,
        "other": 0.0,
    }
    assert round(sampler.peak_total, 3) == 16
    lines = (tmp_path.parent / "disk.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["time", "total", "runs"]
    assert [round(float(line.split("\t")[1])) for line in lines[1:]] == [16, 11]


@pytest.mark.slow
def test_the_query_load_counts_what_users_would_see_fail(float_folder, tmp_path):
    """The scale benchmarks' last step: a query fails when its command fails, however it
    fails (here: a folder that is not an index)."""
    from benchmarks._query_load import search_commands

    good = search_commands(str(float_folder), ["the owl eats mice", "a cat"], parallel=2)
    assert (good["queries"], good["failed"]) == (2, 0) and good["p50_s"] > 0
    bad = search_commands(str(tmp_path), ["the owl eats mice"], parallel=1)
    assert bad["failed"] == 1 and "exit 2" in bad["first_error"]


@pytest.mark.slow
def test_the_fusion_sets_are_real_text_and_seeded():
    import re

    from benchmarks._labelled_sets import labelled_triples

    spans = labelled_triples("spans")
    headings = labelled_triples("headings")
    assert len(spans) > 1000 and len(headings) > 1000
    for _, query, body in spans[:200]:
        words = re.findall(r"[A-Za-z][A-Za-z0-9'_-]*", body)
        assert 5 <= len(query.split()) <= 12 and set(query.split()) <= set(words)
    for _, query, body in headings[:200]:
        assert 3 <= len(query.split()) <= 12 and 20 <= len(body.split()) <= 150
    assert len({q.lower() for _, q, _ in headings}) == len(headings)  # each heading once
    assert labelled_triples("spans") == spans  # seeded: the same drops again
