"""Fixtures: the stand-in object stores, shared by the modules that run the job or the
stores' own mechanics on one: moto's S3 server and ``gcp-storage-emulator`` on loopback
(see ``tests/pipeline/test_object_store.py``'s docstring). ``store`` is each in turn.
Registered by the root ``conftest.py``; module-scoped, so each module that asks for one
starts its own."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from indexes.storage import remote_versions as remote
from indexes.storage.objectstore import open_store
from tests.support.beam import RUNNERS

__all__ = ["BUCKET", "Store", "gcs", "s3", "store"]

BUCKET = "corpus"


@dataclass(frozen=True)
class Store:
    """One stand-in store: its scheme, the runners its job test covers, and the pipeline
    options the workers reach it with."""

    scheme: str
    runners: tuple[str, ...]
    worker_args: tuple[str, ...] = ()

    def url(self, prefix: str) -> str:
        return f"{self.scheme}://{BUCKET}/{prefix}"

    def pipeline_args(self, runner: str = "direct") -> tuple[str, ...]:
        return (*RUNNERS[runner], *self.worker_args)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k, _ in open_store(self.url(prefix)).list())


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A stand-in for S3 on loopback, and the environment every process reaches it with."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", url)
        mp.setenv(remote.CACHE_ENV, str(tmp_path_factory.mktemp("s3-cache")))
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield Store(
            "s3",
            # Issue 11 asks for the three runners on S3: PortableRunner (LOOPBACK) is the
            # path Flink, Spark and Dataflow take.
            runners=("direct", "multiprocess", "portable"),
            worker_args=(
                f"--s3_endpoint_url={url}",
                "--s3_access_key_id=testing-key-id",
                "--s3_secret_access_key=testing-secret-key",
                "--s3_region_name=us-east-1",
            ),
        )
    server.stop()


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """A stand-in for GCS on loopback, and the environment every process reaches it with."""
    pytest.importorskip("gcp_storage_emulator")
    pytest.importorskip("google.cloud.storage")
    from tests.support.gcs_standin import credentials_file, running_gcs

    home = tmp_path_factory.mktemp("gcs")
    with running_gcs(BUCKET) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", url)
        mp.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials_file(home / "adc.json")))
        mp.setenv(remote.CACHE_ENV, str(tmp_path_factory.mktemp("gcs-cache")))
        # The multi-processing runner on GCS: test_workers_finish_an_update_the_launcher_...
        yield Store("gs", runners=("direct", "portable"))


@pytest.fixture(scope="module", params=["s3", "gcs"])
def store(request) -> Store:
    """Each stand-in store in turn (a test that takes it runs once a store)."""
    return request.getfixturevalue(request.param)
