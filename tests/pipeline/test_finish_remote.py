"""The worker's side of an object-store finish, in pieces (the whole path runs in
``tests/pipeline/test_object_store.py``: three runners, an update on worker processes)."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusbeam.errors import JobError
from indexes.storage.objectstore import S3Settings
from pipeline.finish_remote import read_result, worker_s3_settings


@pytest.fixture
def beam_options():
    """Restore Beam's filesystem options after a test sets them."""
    saved = FileSystems._pipeline_options
    yield
    FileSystems.set_options(saved)


def test_a_worker_reaches_s3_with_the_jobs_options_not_with_the_task(beam_options):
    # A runner sets the job's options on each worker's filesystems (Pipeline does it here).
    beam.Pipeline(
        options=PipelineOptions(
            [
                "--runner=DirectRunner",
                "--s3_endpoint_url=http://127.0.0.1:9000",
                "--s3_access_key_id=key-id",
                "--s3_secret_access_key=the-secret",
                "--s3_region_name=eu-west-1",
                "--s3_verify=false",
            ]
        )
    )
    assert worker_s3_settings() == S3Settings(
        endpoint_url="http://127.0.0.1:9000",
        access_key_id="key-id",
        secret_access_key="the-secret",
        region_name="eu-west-1",
        verify=False,
    )
    beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    assert worker_s3_settings() == S3Settings()


def test_a_missing_result_is_a_job_error_naming_it(tmp_path):
    with pytest.raises(JobError, match=r"finish\.json: the worker's finish left no readable"):
        read_result(str(tmp_path))
