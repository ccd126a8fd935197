"""Beam's S3 filesystem shares one boto3 client a process (``transforms.s3_clients``), on
the S3 stand-in (moto's server, ``tests/support/stores.py``)."""

from __future__ import annotations

import pytest

pytest.importorskip("boto3")

from apache_beam.io.aws.clients.s3 import boto3_client
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import transforms  # noqa: F401  (installs the sharing, as a worker's import does)
from tests.support.stores import BUCKET


def test_file_operations_share_one_client_per_set_of_options(s3):
    options = PipelineOptions(list(s3.worker_args))
    FileSystems.set_options(options)
    try:
        url = f"s3://{BUCKET}/shared-client/a.txt"
        with FileSystems.create(url) as f:
            f.write(b"one client")
        with FileSystems.open(url) as f:
            assert f.read() == b"one client"
        assert FileSystems.exists(url)
        assert [
            m.path for m in FileSystems.match([f"s3://{BUCKET}/shared-client/*"])[0].metadata_list
        ] == [url]

        first, second = boto3_client.Client(options), boto3_client.Client(options)
        assert first.client is second.client  # built once, not once a file
        assert first is not second and first._download_stream is None  # own streams
        other = PipelineOptions([*s3.worker_args, "--s3_region_name=eu-west-1"])
        assert boto3_client.Client(other).client is not first.client
        FileSystems.delete([url])
        assert not FileSystems.exists(url)
    finally:
        FileSystems.set_options(PipelineOptions([]))
