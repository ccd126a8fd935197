"""The index job and its readers on an object store.

The store is moto's S3 server (``ThreadedMotoServer`` on loopback): a stand-in for S3
that implements the conditional writes (``If-Match``, ``If-None-Match: *``) the job
relies on. Beam's S3 filesystem (the workers) gets it through ``--s3_*`` options; the
launcher's and readers' boto3 through the usual ``AWS_*`` environment variables.
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

from cli.main import main
from indexes import remote, versions
from indexes.objectstore import open_store
from indexes.reader import open_index
from inference.errors import ConfigError
from inference.server import EndpointConfig, running_endpoint
from pipeline.index_job import IndexJobConfig, run_index_job
from pipeline.sample_corpus import write_sample
from retrieval.service.config import ServiceConfig
from retrieval.service.run import running_service
from tests.transforms.pipelines import RUNNERS

moto_server = pytest.importorskip("moto.server")

REPO = Path(__file__).resolve().parents[2]
DATA_SUFFIXES = (".parquet", ".faiss", ".npy", ".ivfdata", ".jsonl")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A stand-in for S3 on loopback, and the environment every process reaches it with."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", url)
        mp.setenv(remote.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        import boto3

        boto3.client("s3").create_bucket(Bucket="corpus")
        yield url
    server.stop()


def s3_args(endpoint: str, runner: str = "direct") -> tuple[str, ...]:
    return (
        *RUNNERS[runner],
        f"--s3_endpoint_url={endpoint}",
        "--s3_access_key_id=testing-key-id",
        "--s3_secret_access_key=testing-secret-key",
        "--s3_region_name=us-east-1",
    )


def keys(prefix: str) -> list[str]:
    return sorted(k for k, _ in open_store(f"s3://corpus/{prefix}").list())


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


def test_three_runners_write_the_same_index_to_s3_and_readers_use_it(
    s3, endpoint, tmp_path, capsys, monkeypatch
):
    corpus = write_sample(tmp_path / "corpus")
    scratch = tmp_path / "tmp"  # this test's own temporary directory, for every process
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cache = Path(os.environ[remote.CACHE_ENV])
    started = time.time() - 1
    contents = {}
    for runner in ("direct", "multiprocess", "portable"):
        url = f"s3://corpus/{runner}"
        result = run_index_job(
            IndexJobConfig(
                inputs=(str(corpus),),
                output=url,
                endpoint=endpoint.url,
                shards=3,
                pipeline_args=s3_args(s3, runner),
            )
        )
        assert result.exit_code == 0 and result.report["counts"]["indexed"] == 32
        # The version is in place, manifest and all; nothing of the run's staging is left.
        assert f"versions/{result.version}/manifest.json" in keys(runner)
        assert not [k for k in keys(runner) if k.startswith(("staging/", ".lease"))]
        report = json.dumps(result.report)
        assert "testing-secret-key" not in report and "<redacted>" in report
        contents[runner] = content(url)
    ids, xb, meta = contents["direct"]
    for runner in ("multiprocess", "portable"):
        np.testing.assert_array_equal(contents[runner][0], ids)
        np.testing.assert_array_equal(contents[runner][1], xb)
        assert contents[runner][2] == meta
    # No shard, vector or metadata file was written outside the output URL and the cache.
    strays = set()
    for root in (tmp_path, REPO):
        strays |= {p for p in data_files(root, started) if not p.startswith(str(cache))}
    assert {p for p in strays if not p.startswith(str(corpus))} == set()

    capsys.readouterr()
    assert main(["search", "s3://corpus/direct", "cats purr in the sun", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["document_id"] == "animals/cats.md"
    # The cached copy is reused: the same folder, not downloaded again.
    folder = versions.resolve_index_folder("s3://corpus/direct")
    before = (folder / "manifest.json").stat().st_mtime_ns
    assert versions.resolve_index_folder("s3://corpus/direct") == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == before

    assert main(["retry-failures", "s3://corpus/direct", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["counts"]["reused"] == 32 and again["requests"]["requests"] == 0
    assert versions.read_current("s3://corpus/direct") == again["version"]


def test_serve_follows_current_on_s3(s3, endpoint, tmp_path):
    corpus = write_sample(tmp_path / "corpus")
    url = "s3://corpus/served"
    job = IndexJobConfig(
        inputs=(str(corpus),), output=url, endpoint=endpoint.url, pipeline_args=s3_args(s3)
    )
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


def test_a_second_run_is_refused_and_a_killed_runs_lease_expires(s3, tmp_path):
    corpus = write_sample(tmp_path / "corpus")
    url = "s3://corpus/leased"
    store = open_store(url)
    with running_endpoint(EndpointConfig(latency_ms=(1500, 1500))) as slow:
        job = IndexJobConfig(
            inputs=(str(corpus),), output=url, endpoint=slow.url, pipeline_args=s3_args(s3)
        )
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
                *s3_args(s3),
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
        job = IndexJobConfig(
            inputs=(str(corpus),), output=url, endpoint=ep.url, pipeline_args=s3_args(s3)
        )
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


def test_an_update_on_s3_copies_the_shared_index_inside_the_store(
    s3, endpoint, tmp_path, monkeypatch
):
    corpus = write_sample(tmp_path / "corpus")
    url = "s3://corpus/updated"
    job = IndexJobConfig(
        inputs=(str(corpus),), output=url, endpoint=endpoint.url, pipeline_args=s3_args(s3)
    )
    first = run_index_job(job)
    (corpus / "animals" / "cats.md").write_text("Cats now chase laser pointers all day.")
    (corpus / "space" / "mars.txt").unlink()
    # Record what the launcher copies inside the store and what it uploads (calls go on).
    copied, uploaded = [], []
    s3_store = type(open_store(url))
    copy, put = s3_store.copy, s3_store.put
    monkeypatch.setattr(
        s3_store, "copy", lambda self, s, k: (copied.append(k), copy(self, s, k))[1]
    )
    monkeypatch.setattr(
        s3_store,
        "put",
        lambda self, k, data, **kw: (uploaded.append(k), put(self, k, data, **kw))[1],
    )
    second = run_index_job(job)
    assert second.report["update"]["mode"] == "update", second.report["update"]
    index_files = open_index(versions.resolve_index_folder(url)).manifest.index_files
    for name in index_files:  # the live version's index, shared: copied, not uploaded
        assert f"versions/{second.version}/{name}" in copied
        assert f"versions/{second.version}/{name}" not in uploaded
        assert open_store(url).read(f"versions/{second.version}/{name}") == open_store(url).read(
            f"versions/{first.version}/{name}"
        )
    texts = {r["document_id"]: r["text"] for r in content(url)[2]}
    assert texts["animals/cats.md"] == "Cats now chase laser pointers all day."
    assert "space/mars.txt" not in texts
    assert main(["search", url, "red planet rovers iron oxide", "--json"]) == 0
