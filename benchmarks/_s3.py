"""moto's S3 server on loopback, a stand-in for S3, for a benchmark's ``--s3`` runs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["s3_stand_in"]


@contextlib.contextmanager
def s3_stand_in() -> Iterator[list[str]]:
    """moto's S3 server on loopback (a stand-in for S3), a bucket, and the job's options."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        boto3.client("s3").create_bucket(Bucket="bench")
        yield [
            f"--s3_endpoint_url={url}",
            "--s3_access_key_id=bench",
            "--s3_secret_access_key=bench",
            "--s3_region_name=us-east-1",
        ]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
