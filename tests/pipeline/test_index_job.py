"""The index job end to end: real pipelines on each offline runner, real FAISS folders,
the local reference endpoint; versions, reuse, failures, locks and a killed run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import ClientSettings, EmbeddingsClient
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.reader import open_index
from indexes.storage import versions
from pipeline.index_job import run_index_job
from pipeline.sample_corpus import EXPECTED, write_sample
from tests.support.cli import start_cli
from tests.support.indexes import metadata_rows
from tests.support.jobs import embedding_requests, job


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample") / "corpus")


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        yield ep


@pytest.fixture(scope="module")
def direct_build(sample, tmp_path_factory, endpoint):
    """The sample on the DirectRunner in 3 shards (the default, exact ``IDMap2,Flat``):
    the reference the other runners and the IVF shards are compared with."""
    out = tmp_path_factory.mktemp("direct") / "out"
    result = run_index_job(job(sample, out, endpoint=endpoint.url, shards=3))
    assert result.exit_code == 0
    return result


def folder_content(output):
    folder = open_index(versions.resolve_index_folder(output))
    ids, xb, _ = folder.vectors()
    meta = folder.metadata().sort_by("id").select(["id", "document_id", "chunk", "text"])
    return ids, xb, meta.to_pylist(), folder.manifest


def test_the_sample_indexes_and_each_query_finds_its_document(sample, tmp_path):
    result = run_index_job(job(sample, tmp_path / "out"))
    assert result.exit_code == 0 and result.report["counts"]["failed"] == 0
    folder = open_index(versions.resolve_index_folder(tmp_path / "out"))
    m = folder.manifest
    assert m.endpoint == "local://hash" and m.model and m.input_type == "document"
    assert m.count == result.report["counts"]["indexed"] == 32
    with running_endpoint(EndpointConfig(model="hash")) as ep:
        with EmbeddingsClient(ClientSettings(endpoint=ep.url)) as client:
            xq = client.embed_texts(
                [q for q, _ in EXPECTED], input_type="query", dimensions=m.dimensions
            ).vectors
    res = folder.search(xq, k=3)
    top = [rows[0]["document_id"] for rows in metadata_rows(folder, res.I)]
    assert top == [doc for _, doc in EXPECTED]


def test_runners_build_the_same_index(sample, tmp_path, endpoint, direct_build):
    contents = {"direct": folder_content(direct_build.folder)}
    for runner in ("multiprocess", "portable"):
        result = run_index_job(
            job(sample, tmp_path / runner, runner=runner, endpoint=endpoint.url, shards=3)
        )
        assert result.exit_code == 0
        contents[runner] = folder_content(tmp_path / runner)
    ids, xb, meta, manifest = contents["direct"]
    assert len(ids) == 32 and manifest.endpoint == endpoint.url
    for runner in ("multiprocess", "portable"):
        other_ids, other_xb, other_meta, _ = contents[runner]
        np.testing.assert_array_equal(other_ids, ids)
        np.testing.assert_array_equal(other_xb, xb)
        assert other_meta == meta


def test_unchanged_rerun_sends_no_request_and_changes_are_incremental(tmp_path, endpoint):
    corpus = write_sample(tmp_path / "corpus")
    out = tmp_path / "out"
    first = run_index_job(job(corpus, out, endpoint=endpoint.url))
    before = embedding_requests(endpoint)
    same = run_index_job(job(corpus, out, endpoint=endpoint.url))
    # No input changed: the live version answers (pipeline.unchanged), nothing runs.
    assert same.version == first.version and same.report["update"]["mode"] == "unchanged"
    # --rebuild runs the pipeline: every vector is reused, none embedded.
    again = run_index_job(job(corpus, out, endpoint=endpoint.url, rebuild=True))
    assert embedding_requests(endpoint) == before
    assert again.report["requests"]["requests"] == 0
    assert again.report["counts"]["reused"] == first.report["counts"]["embedded"] == 32
    assert again.version != first.version and versions.current_version(out) == again.folder
    # Reused vectors are the first run's, bit for bit.
    np.testing.assert_array_equal(open_index(first.folder).vectors()[1], folder_content(out)[1])

    (corpus / "animals" / "cats.md").write_text("Cats now chase laser pointers all day.")
    (corpus / "animals" / "dogs.md").unlink()
    (corpus / "new.txt").write_text("A brand new document about lighthouses.")
    third = run_index_job(job(corpus, out, endpoint=endpoint.url))
    c = third.report["counts"]
    assert (c["embedded"], c["deleted"], c["reused"], c["indexed"]) == (2, 1, 30, 32)
    docs = {row["document_id"] for row in folder_content(out)[2]}
    assert "animals/dogs.md" not in docs and "new.txt" in docs


def test_failed_inputs_exit_3_and_are_listed(tmp_path, endpoint):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("A good document.")
    (corpus / "bad.txt").write_bytes(b"\xff\xfe\x00binary")
    (corpus / "weird.xyz").write_text("?")
    code = main(
        [
            "index",
            str(corpus),
            "--output",
            str(tmp_path / "out"),
            "--endpoint",
            endpoint.url,
            "--runner=DirectRunner",
        ]
    )
    assert code == 3
    live = versions.current_version(tmp_path / "out")
    failures = pq.read_table(live / "failures.parquet").to_pylist()
    assert [(f["source_id"], f["stage"]) for f in failures] == [
        ("bad.txt", "read"),
        ("weird.xyz", "read"),
    ]
    assert "binary content" in failures[0]["message"]
    # Fixed by the user, retry-failures embeds it and exits 0.
    (corpus / "bad.txt").write_text("Now a fine document.")
    (corpus / "weird.xyz").unlink()
    assert main(["retry-failures", str(tmp_path / "out")]) == 0
    assert open_index(versions.resolve_index_folder(tmp_path / "out")).manifest.count == 2


def test_a_second_run_on_the_same_output_is_refused(tmp_path, endpoint):
    with versions.acquire_lock(tmp_path / "out"):
        with pytest.raises(ConfigError, match="another run is writing this output"):
            run_index_job(
                job(write_sample(tmp_path / "c"), tmp_path / "out", endpoint=endpoint.url)
            )


def test_a_killed_run_leaves_the_last_version_serving(tmp_path):
    corpus = write_sample(tmp_path / "corpus")
    out = tmp_path / "out"
    with running_endpoint(EndpointConfig(latency_ms=(1500, 1500))) as slow:
        first = run_index_job(job(corpus, out, endpoint=slow.url))
        (corpus / "animals" / "cats.md").write_text("Changed cats.")
        proc = start_cli(
            "index",
            str(corpus),
            "--output",
            str(out),
            "--endpoint",
            slow.url,
            "--runner=DirectRunner",
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not list((out / "versions").glob("*-staging.partial")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # into the pipeline: its embedding requests take 1.5 s each
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert versions.current_version(out) == first.folder
    assert list((out / "versions").glob("*.partial"))  # the killed run's leftovers
    folder = open_index(versions.resolve_index_folder(out))
    assert folder.manifest.count == 32 and folder.search(folder.vectors()[1][:1], k=1).I[0, 0] >= 0
    with running_endpoint(EndpointConfig()) as ep:
        done = run_index_job(job(corpus, out, endpoint=ep.url, reuse=False))
    assert done.exit_code == 0 and versions.current_version(out) == done.folder
    assert not list((out / "versions").glob("*.partial"))
    texts = {r["document_id"]: r["text"] for r in folder_content(out)[2]}
    assert texts["animals/cats.md"] == "Changed cats."


class _StagingAtFinish(logging.Handler):
    """What the run's staging holds when the finish starts (its first log line)."""

    def __init__(self, output: Path) -> None:
        super().__init__()
        self.output, self.files = output, None

    def emit(self, record: logging.LogRecord) -> None:
        if self.files is None and record.getMessage().startswith("building the index"):
            (staging,) = (self.output / "versions").glob("*-staging.partial")
            self.files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))


def test_ivf_shards_built_on_workers_merge_into_the_same_index(
    sample, tmp_path, endpoint, direct_build
):
    seen = _StagingAtFinish(tmp_path / "ivf")
    logger = logging.getLogger("pipeline.job.finish")
    logger.addHandler(seen)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        ivf = run_index_job(
            job(sample, tmp_path / "ivf", endpoint=endpoint.url, index="IVF1,Flat", shards=4)
        )
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)
    assert ivf.exit_code == 0
    # At the finish the run files are gone (the parts hold their rows) and each shard is
    # its inverted lists alone, without a copy of the trained quantizer.
    assert seen.files is not None and not [f for f in seen.files if f.startswith("runs")]
    assert [f for f in seen.files if f.startswith("shard-")] == [
        f"shard-{i:05d}.lists" for i in range(4)
    ]
    a, b = open_index(ivf.folder), open_index(direct_build.folder)
    assert "IVF1" in a.manifest.index_factory and a.manifest.count == 32
    assert b.manifest.index_factory == "IDMap2,Flat"  # the exact reference
    ids, xb, _ = b.vectors()
    # nprobe = nlist: the IVF search is exact, so both folders answer alike.
    ra = a.search(xb, k=5, params={"nprobe": 1})
    rb = b.search(xb, k=5)
    np.testing.assert_array_equal(ra.I[:, 0], rb.I[:, 0])
    np.testing.assert_array_equal(ra.I[:, 0], ids)


def test_a_compressed_index_under_a_memory_budget_is_built_from_several_parts(tmp_path, endpoint):
    """A tight budget picks a rescored fast-scan PQ index (the default at 10M): its lists
    are packed blocks no merge can read, so the finish adds the parts' vectors to it; the
    recall is measured against the parts' float vectors, the rescoring ones."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics = ["cats", "boats", "trains", "rain", "tea", "bread"]
    rows = [
        {"id": f"doc-{i}", "text": f"Document {i} is about {topics[i % 6]}, note {i * 7 % 997}."}
        for i in range(3000)
    ]
    (corpus / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_index_job(
        job(corpus, tmp_path / "out", endpoint=endpoint.url, memory_budget=150 << 10, shards=2)
    )
    assert result.exit_code == 0
    folder = open_index(result.folder)
    manifest = folder.manifest
    assert manifest.index_factory.endswith("x4fs") and manifest.count == 3000
    assert manifest.recall["rescored"] and manifest.recall["value"] >= 0.95
    assert not (Path(result.folder) / "shards").exists()
    ids, xb, _ = folder.vectors()
    hits = folder.search(xb[:50], k=1)
    assert (hits.I[:, 0] == ids[:50]).mean() >= 0.95


def test_a_factory_that_cannot_be_built_fails_the_run_with_its_reason(sample, tmp_path, endpoint):
    code = main(
        [
            "index",
            str(sample),
            "--output",
            str(tmp_path / "out"),
            "--endpoint",
            endpoint.url,
            "--index",
            "IVF2,Flat",
            "--runner=DirectRunner",
        ]
    )
    assert code == 2
    assert versions.current_version(tmp_path / "out") is None
