"""The index job and its readers on an object store: S3 and GCS, one module.

Each job test runs once a store, through the ``store`` fixture:

- ``s3``: moto's S3 server (``ThreadedMotoServer`` on loopback), a stand-in for S3 that
  implements the conditional writes (``If-Match``, ``If-None-Match: *``) the job relies
  on. Beam's S3 filesystem (the workers) gets it through ``--s3_*`` options; the
  launcher's and readers' boto3 through the usual ``AWS_*`` environment variables.
- ``gcs``: ``gcp-storage-emulator`` on loopback with a check of ``ifGenerationMatch`` in
  front of it (``tests/support/gcs_standin.py``), a stand-in for GCS. Beam's ``gs://``
  filesystem and google-cloud-storage both reach it through ``STORAGE_EMULATOR_HOST``;
  beside a stand-in credential file nothing else is configured for it, so what runs is
  the code a real bucket gets.

What each store does its own way (S3's ETags with ``If-Match``/``If-None-Match``, GCS's
generations with ``ifGenerationMatch``) is tested in ``tests/indexes/test_object_stores.py``,
with the lease's conditional writes and the copy inside a store.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import ConfigError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import running_service
from indexes.reader import open_index
from indexes.storage import remote_versions as remote
from indexes.storage import versions
from indexes.storage.objectstore import open_store
from pipeline import index_job
from pipeline.index_job import IndexJobConfig, run_index_job
from pipeline.sample_corpus import write_sample
from tests.support.cli import start_cli
from tests.support.paths import REPO

DATA_SUFFIXES = (".parquet", ".faiss", ".lists", ".npy", ".ivfdata", ".jsonl")
SHARDS = 2  # several shards


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig()) as ep:
        yield ep


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


def test_runners_write_the_same_index_to_the_store_and_readers_use_it(
    store, endpoint, tmp_path, capsys, monkeypatch
):
    corpus = write_sample(tmp_path / "corpus")
    scratch = tmp_path / "tmp"  # this test's own temporary directory, for every process
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cache = Path(os.environ[remote.CACHE_ENV])
    started = time.time() - 1
    contents, result_versions = {}, {}
    tasks: list[bytes] = []  # what the launcher sends the worker that finishes a version

    real_finish = index_job.finish_on_worker

    def finish_on_worker(task, args):
        tasks.append(pickle.dumps(task))
        return real_finish(task, args)

    monkeypatch.setattr(index_job, "finish_on_worker", finish_on_worker)
    for runner in store.runners:
        url = store.url(runner)
        result = run_index_job(
            IndexJobConfig(
                inputs=(str(corpus),),
                output=url,
                endpoint=endpoint.url,
                shards=SHARDS,
                pipeline_args=store.pipeline_args(runner),
            )
        )
        assert result.exit_code == 0 and result.report["counts"]["indexed"] == 32
        # The version is in place, manifest and all; nothing of the run's staging is left.
        listed = store.keys(runner)
        assert f"versions/{result.version}/manifest.json" in listed
        assert any(k.startswith(f"versions/{result.version}/parts/") for k in listed)
        assert not [k for k in listed if k.startswith(("staging/", ".lease"))]
        assert versions.read_current(url) == result.version
        # Nothing of the version in the launcher's cache: a worker finished it in a
        # temporary folder it removed; the readers' cache is filled when a reader opens it.
        cached = remote.cache_folder(url)
        assert not cached.exists() or not [p for p in cached.rglob("*") if p.is_file()]
        assert str(result.folder) == f"{url}/versions/{result.version}"
        assert len(tasks) == 1 and b"testing-secret-key" not in tasks.pop()  # no key in it
        report = json.dumps(result.report)
        assert "testing-secret-key" not in report
        if store.worker_args:  # the S3 options hold a secret: the report shows it redacted
            assert "<redacted>" in report
        contents[runner] = content(url)  # a reader: it fills the cache
        assert (cached / result.version / "manifest.json").is_file()
        result_versions[runner] = result.version
    ids, xb, meta = contents["direct"]
    assert len(ids) == 32
    for runner in store.runners[1:]:
        np.testing.assert_array_equal(contents[runner][0], ids)
        np.testing.assert_array_equal(contents[runner][1], xb)
        assert contents[runner][2] == meta
    # No shard, vector or metadata file was written outside the output URL and the cache.
    strays = set()
    for root in (tmp_path, REPO):
        strays |= {p for p in data_files(root, started) if not p.startswith(str(cache))}
    assert {p for p in strays if not p.startswith(str(corpus))} == set()

    direct = store.url("direct")
    capsys.readouterr()
    assert main(["search", direct, "cats purr in the sun", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["document_id"] == "animals/cats.md"
    # The cached copy is reused: the same folder, not downloaded again.
    folder = versions.resolve_index_folder(direct)
    assert folder == remote.cache_folder(direct) / result_versions["direct"]
    before = (folder / "manifest.json").stat().st_mtime_ns
    assert versions.resolve_index_folder(direct) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == before

    assert main(["retry-failures", direct, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["counts"]["reused"] == 32 and again["requests"]["requests"] == 0
    assert versions.read_current(direct) == again["version"]


def test_ivf_shards_on_the_store_merge_on_the_worker_into_an_exact_answer(
    store, endpoint, tmp_path
):
    """The workers write each part's IVF lists to the store's staging; the worker that
    finishes the version fetches them, merges them on disk and deletes them."""
    url = store.url("ivf")
    result = run_index_job(
        IndexJobConfig(
            inputs=(str(write_sample(tmp_path / "corpus")),),
            output=url,
            endpoint=endpoint.url,
            index="IVF1,Flat",
            shards=3,
            pipeline_args=store.pipeline_args(),
        )
    )
    assert result.exit_code == 0 and result.report["counts"]["indexed"] == 32
    listed = store.keys("ivf")
    assert f"versions/{result.version}/index.faiss.ivfdata" in listed
    assert not [k for k in listed if k.startswith("staging/") or "/shards/" in k]
    folder = open_index(versions.resolve_index_folder(url))
    assert "IVF1" in folder.manifest.index_factory and folder.manifest.count == 32
    ids, xb, _ = folder.vectors()
    hits = folder.search(xb, k=1, params={"nprobe": 1})  # one list: the search is exact
    np.testing.assert_array_equal(hits.I[:, 0], ids)


def _recording(monkeypatch, store_class, name: str, calls: list[str]) -> None:
    """Record the keys ``store_class.name`` is called with (the calls go on)."""
    method: Callable = getattr(store_class, name)

    def recorded(self, *args, **kwargs):
        calls.append(args[-1] if name == "copy" else args[0])
        return method(self, *args, **kwargs)

    monkeypatch.setattr(store_class, name, recorded)


def test_serve_follows_an_update_that_copies_the_shared_index_inside_the_store(
    store, endpoint, tmp_path, monkeypatch
):
    """One job, a service on its URL, then an update (one document changed, one deleted):
    the update copies the files it shares with the live version inside the store (S3
    CopyObject, GCS rewrite) instead of uploading them, and the service swaps to it."""
    corpus = write_sample(tmp_path / "corpus")
    url = store.url("served")
    job = IndexJobConfig(
        inputs=(str(corpus),),
        output=url,
        endpoint=endpoint.url,
        shards=SHARDS,
        pipeline_args=store.pipeline_args(),
    )
    first = run_index_job(job)
    query = {"query": "cats chase laser pointers", "k": 1}
    with running_service([url], config=ServiceConfig(poll_interval=0.05)) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            body = c.post("/search", json=query).json()
            assert body["indexes"][0]["version"] == first.version
            (corpus / "animals" / "cats.md").write_text("Cats now chase laser pointers all day.")
            (corpus / "space" / "mars.txt").unlink()
            copied: list[str] = []
            uploaded: list[str] = []
            store_class = type(open_store(url))
            _recording(monkeypatch, store_class, "copy", copied)
            _recording(monkeypatch, store_class, "put", uploaded)
            _recording(monkeypatch, store_class, "upload", uploaded)
            second = run_index_job(job)
            monkeypatch.undo()
            assert second.report["update"]["mode"] == "update", second.report["update"]
            deadline = time.monotonic() + 30
            while c.post("/search", json=query).json()["indexes"][0]["version"] != second.version:
                assert time.monotonic() < deadline, "the service never swapped"
                time.sleep(0.05)
            hit = c.post("/search", json=query).json()["hits"][0]
            assert hit["text"] == "Cats now chase laser pointers all day."
        assert svc.indexes[0].swaps == 1
    index_files = open_index(versions.resolve_index_folder(url)).manifest.index_files
    assert index_files
    live = open_store(url)
    for name in index_files:  # the live version's index, shared: copied, not uploaded
        assert f"versions/{second.version}/{name}" in copied
        assert f"versions/{second.version}/{name}" not in uploaded
        assert live.read(f"versions/{second.version}/{name}") == live.read(
            f"versions/{first.version}/{name}"
        )
    texts = {r["document_id"]: r["text"] for r in content(url)[2]}
    assert texts["animals/cats.md"] == "Cats now chase laser pointers all day."
    assert "space/mars.txt" not in texts
    assert main(["search", url, "red planet rovers iron oxide", "--json"]) == 0


def test_workers_finish_an_update_the_launcher_downloads_nothing(
    gcs, endpoint, tmp_path, monkeypatch
):
    """With 2 worker processes, an update's finish runs in a worker process: the parts and
    the live version it starts from are downloaded there (into that machine's cache), never
    by the launcher, whose downloads fail in this test. One store: the code is the same."""
    store = gcs
    corpus = write_sample(tmp_path / "corpus")
    url = store.url("worker-finish")
    job = IndexJobConfig(
        inputs=(str(corpus),),
        output=url,
        endpoint=endpoint.url,
        shards=SHARDS,
        pipeline_args=store.pipeline_args("multiprocess"),
    )
    first = run_index_job(job)
    (corpus / "animals" / "cats.md").write_text("Cats nap in boxes.")

    def refused(*args, **kwargs):
        raise AssertionError("the launcher downloaded from the store")

    monkeypatch.setattr(type(open_store(url)), "download", refused)
    monkeypatch.setattr(remote, "cached_version", refused)
    second = run_index_job(job)
    monkeypatch.undo()
    assert second.report["update"]["mode"] == "update", second.report["update"]
    assert second.report["reused_from"] == first.version
    texts = {r["document_id"]: r["text"] for r in content(url)[2]}
    assert texts["animals/cats.md"] == "Cats nap in boxes."


def test_a_second_run_is_refused_and_a_killed_runs_lease_expires(gcs, endpoint, tmp_path):
    """The job's side of the lease, on one store: the lease is store-independent code
    (indexes/storage/remote_versions.py over ObjectStore.put's conditions, tested on both stores in
    tests/indexes/test_object_stores.py), and
    each store's staging cleanup shows in the job tests above. GCS: its jobs run faster."""
    store = gcs
    corpus = write_sample(tmp_path / "corpus")
    url = store.url("leased")
    job = IndexJobConfig(
        inputs=(str(corpus),),
        output=url,
        endpoint=endpoint.url,
        shards=SHARDS,
        pipeline_args=store.pipeline_args(),
    )
    first = run_index_job(job)
    with remote.hold_lease(open_store(url), seconds=60):
        with pytest.raises(ConfigError, match="another run is writing this output"):
            run_index_job(job)
    (corpus / "animals" / "cats.md").write_text("Changed cats.")
    # The run to kill: its embedding requests take 1.5 s each, so it is killed mid-run.
    with running_endpoint(EndpointConfig(latency_ms=(1500, 1500))) as slow:
        proc = start_cli(
            "index",
            str(corpus),
            "--output",
            url,
            "--endpoint",
            slow.url,
            "--lease-seconds",
            "4",
            *store.pipeline_args(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not [k for k in store.keys("leased") if k.startswith("staging/")]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = time.time()
    assert versions.read_current(url) == first.version  # the killed run published nothing
    assert ".lease" in store.keys("leased")
    if time.time() - killed_at < 3:  # its lease is still live: refused
        with pytest.raises(ConfigError, match="lease expires"):
            run_index_job(job)
    while time.time() - killed_at < 4.5:
        time.sleep(0.2)
    done = run_index_job(job)  # the lease expired: taken over
    assert done.exit_code == 0 and versions.read_current(url) == done.version
    left = store.keys("leased")
    assert not [k for k in left if k.startswith("staging/") or k == ".lease"]
    assert {k.split("/")[1] for k in left if k.startswith("versions/")} == {
        first.version,
        done.version,
    }
    hits = [r["text"] for r in content(url)[2] if r["document_id"] == "animals/cats.md"]
    assert hits == ["Changed cats."]
