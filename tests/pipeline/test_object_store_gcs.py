"""The index job and its readers on a ``gs://`` output.

The store is ``gcp-storage-emulator`` on loopback with a check of ``ifGenerationMatch``
in front of it (``tests/pipeline/gcs_standin.py``): a stand-in for GCS. Beam's ``gs://``
filesystem (the workers) and google-cloud-storage (the launcher's and readers'
``indexes.objectstore``) both reach it through ``STORAGE_EMULATOR_HOST``; beside a
stand-in credential file, nothing else is configured for it, so what runs is the code a
real bucket gets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("google.cloud.storage")

from cli.main import main
from indexes import remote, versions
from indexes.objectstore import PreconditionFailed, open_store
from indexes.reader import open_index
from inference.errors import ConfigError, IndexFolderError, JobError
from inference.server import EndpointConfig, running_endpoint
from pipeline.index_job import IndexJobConfig, run_index_job
from pipeline.sample_corpus import write_sample
from retrieval.service.config import ServiceConfig
from retrieval.service.run import running_service
from tests.pipeline.gcs_standin import credentials_file, running_gcs
from tests.transforms.pipelines import RUNNERS

REPO = Path(__file__).resolve().parents[2]
DATA_SUFFIXES = (".parquet", ".faiss", ".npy", ".ivfdata", ".jsonl")


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """A stand-in for GCS on loopback, and the environment every process reaches it with."""
    home = tmp_path_factory.mktemp("gcs")
    with running_gcs("corpus") as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", url)
        mp.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials_file(home / "adc.json")))
        mp.setenv(remote.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield url


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig()) as ep:
        yield ep


def keys(prefix: str) -> list[str]:
    return sorted(k for k, _ in open_store(f"gs://corpus/{prefix}").list())


def content(url):
    folder = open_index(versions.resolve_index_folder(url))
    ids, xb, _ = folder.vectors()
    meta = folder.metadata().select(["id", "document_id", "chunk", "text"]).to_pylist()
    return ids, xb, meta


def data_files(root: Path, since: float) -> set[str]:
    found = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            try:
                if p.suffix in DATA_SUFFIXES and p.stat().st_mtime >= since:
                    found.add(str(p))
            except FileNotFoundError:
                continue
    return found


def test_the_job_writes_a_gs_output_that_search_reads(gcs, endpoint, tmp_path, capsys, monkeypatch):
    corpus = write_sample(tmp_path / "corpus")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cache = Path(os.environ[remote.CACHE_ENV])
    started = time.time() - 1
    contents = {}
    for runner in ("direct", "multiprocess"):
        url = f"gs://corpus/{runner}"
        result = run_index_job(
            IndexJobConfig(
                inputs=(str(corpus),),
                output=url,
                endpoint=endpoint.url,
                shards=3,
                pipeline_args=tuple(RUNNERS[runner]),
            )
        )
        assert result.exit_code == 0 and result.report["counts"]["indexed"] == 32
        # The version is in place on the store, manifest and all, staging and lease gone.
        listed = keys(runner)
        assert f"versions/{result.version}/manifest.json" in listed
        assert any(k.startswith(f"versions/{result.version}/parts/") for k in listed)
        assert not [k for k in listed if k.startswith(("staging/", ".lease"))]
        assert versions.read_current(url) == result.version
        contents[runner] = content(url)
    ids, xb, meta = contents["direct"]
    assert len(ids) == 32
    np.testing.assert_array_equal(contents["multiprocess"][0], ids)
    np.testing.assert_array_equal(contents["multiprocess"][1], xb)
    assert contents["multiprocess"][2] == meta
    # No shard, vector or metadata file was written outside the output URL and the cache.
    strays = set()
    for root in (tmp_path, REPO):
        strays |= {p for p in data_files(root, started) if not p.startswith(str(cache))}
    assert {p for p in strays if not p.startswith(str(corpus))} == set()

    capsys.readouterr()
    assert main(["search", "gs://corpus/direct", "cats purr in the sun", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["document_id"] == "animals/cats.md"

    assert main(["retry-failures", "gs://corpus/direct", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["counts"]["reused"] == 32 and again["requests"]["requests"] == 0
    assert versions.read_current("gs://corpus/direct") == again["version"]


def test_serve_follows_current_on_gs(gcs, endpoint, tmp_path):
    corpus = write_sample(tmp_path / "corpus")
    url = "gs://corpus/served"
    job = IndexJobConfig(inputs=(str(corpus),), output=url, endpoint=endpoint.url)
    first = run_index_job(job)
    query = {"query": "cats chase laser pointers", "k": 1}
    with running_service([url], config=ServiceConfig(poll_interval=0.05)) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            body = c.post("/search", json=query).json()
            assert body["indexes"][0]["version"] == first.version
            (corpus / "animals" / "cats.md").write_text("Cats now chase laser pointers all day.")
            second = run_index_job(job)
            deadline = time.monotonic() + 30
            while c.post("/search", json=query).json()["indexes"][0]["version"] != second.version:
                assert time.monotonic() < deadline, "the service never swapped"
                time.sleep(0.05)
            hit = c.post("/search", json=query).json()["hits"][0]
            assert hit["text"] == "Cats now chase laser pointers all day."
        assert svc.indexes[0].swaps == 1


def test_current_is_switched_only_over_the_generation_read(gcs, tmp_path):
    store = open_store("gs://corpus/switch")
    assert remote.read_current(store) == (None, None)
    first = remote.switch_current(store, "v1", None)  # created only if absent
    with pytest.raises(JobError, match="changed during the run"):
        remote.switch_current(store, "v1b", None)  # it exists now
    name, tag = remote.read_current(store)
    assert (name, tag) == ("v1", first)
    second = remote.switch_current(store, "v2", tag)
    assert second != first
    with pytest.raises(JobError, match="v3 was written but not made live"):
        remote.switch_current(store, "v3", first)  # another run moved it since
    assert remote.read_current(store) == ("v2", second)
    with pytest.raises(PreconditionFailed):
        store.put("CURRENT", b"v4\n", if_match=first)
    assert store.read("CURRENT") == b"v2\n"
    # google-cloud-storage's errors come out as ours, naming the object.
    with pytest.raises(IndexFolderError, match="gs://corpus/switch/missing: 404"):
        store.download("missing", tmp_path / "missing")


def test_a_copy_inside_the_store_keeps_the_bytes(gcs):
    # What an update uses for the files it shares with the live version.
    store = open_store("gs://corpus/copies")
    data = bytes(range(256)) * 1000
    store.put("versions/v1/index.faiss", data)
    store.copy("versions/v1/index.faiss", "versions/v2/index.faiss")
    assert store.read("versions/v2/index.faiss") == data
    with pytest.raises(IndexFolderError, match="gs://corpus/copies/versions/v0/missing"):
        store.copy("versions/v0/missing", "versions/v2/missing")


def test_a_second_run_is_refused_and_a_killed_runs_lease_expires(gcs, tmp_path):
    corpus = write_sample(tmp_path / "corpus")
    url = "gs://corpus/leased"
    store = open_store(url)
    with running_endpoint(EndpointConfig(latency_ms=(1500, 1500))) as slow:
        job = IndexJobConfig(inputs=(str(corpus),), output=url, endpoint=slow.url)
        first = run_index_job(job)
        with remote.hold_lease(store, seconds=60):
            with pytest.raises(ConfigError, match="another run is writing this output"):
                run_index_job(job)
        (corpus / "animals" / "cats.md").write_text("Changed cats.")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "index",
                str(corpus),
                "--output",
                url,
                "--endpoint",
                slow.url,
                "--lease-seconds",
                "4",
            ],
            cwd=REPO,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not [k for k in keys("leased") if k.startswith("staging/")]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = time.time()
    assert versions.read_current(url) == first.version  # the killed run published nothing
    assert ".lease" in keys("leased")
    with running_endpoint(EndpointConfig()) as ep:
        job = IndexJobConfig(inputs=(str(corpus),), output=url, endpoint=ep.url)
        if time.time() - killed_at < 3:  # its lease is still live: refused
            with pytest.raises(ConfigError, match="lease expires"):
                run_index_job(job)
        while time.time() - killed_at < 4.5:
            time.sleep(0.2)
        done = run_index_job(job)  # the lease expired: taken over
    assert done.exit_code == 0 and versions.read_current(url) == done.version
    left = keys("leased")
    assert not [k for k in left if k.startswith("staging/") or k == ".lease"]
    assert {k.split("/")[1] for k in left if k.startswith("versions/")} == {
        first.version,
        done.version,
    }
    hits = [r["text"] for r in content(url)[2] if r["document_id"] == "animals/cats.md"]
    assert hits == ["Changed cats."]
