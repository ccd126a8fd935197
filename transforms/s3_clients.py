"""One boto3 S3 client per process for Beam's S3 filesystem, instead of one a file.

Beam's S3 filesystem (``apache_beam.io.aws``) makes a new boto3 session and client for
every file operation: each ``open``, ``create``, ``exists`` or ``match`` builds an
``S3IO``, whose ``boto3_client.Client`` loads botocore's service model from disk again,
about 0.2 s each. On the S3 stand-in that was 12 of the 19.5 s the sample corpus' job took
on the DirectRunner (55 clients), and a worker that writes thousands of parts pays it for
each. boto3's low-level clients are thread-safe, so ``share_s3_clients()`` makes every
``Client`` built with the same S3 options share the first one's boto3 client; the rest
of each ``Client`` (its download stream) stays its own.

Installed when ``transforms`` is imported: by the launcher, and by every worker, which
imports it to unpickle the job's steps. Without Beam's AWS extra nothing is changed.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["share_s3_clients"]

_lock = threading.Lock()
_shared: dict[tuple, tuple[Any, dict]] = {}  # options -> (boto3 client, a fresh Client's state)


def share_s3_clients() -> bool:
    """Make Beam's S3 ``Client`` share one boto3 client per set of options; whether it
    does (False when Beam's S3 client or boto3 is not installed)."""
    try:
        from apache_beam.io.aws.clients import client_options
        from apache_beam.io.aws.clients.s3 import boto3_client
        from apache_beam.options.pipeline_options import S3Options
    except ImportError:
        return False
    client_class = boto3_client.Client
    if getattr(client_class, "_corpusbeam_shared", False):
        return True
    if getattr(boto3_client, "boto3", None) is None:
        return False
    build = client_class.__init__

    def __init__(self, options) -> None:
        key = _options_key(client_options, S3Options, options)
        with _lock:
            found = _shared.get(key)
            if found is None:
                build(self, options)
                state = {k: v for k, v in vars(self).items() if k != "client"}
                _shared[key] = (self.client, state)
                return
        client, state = found
        vars(self).update(state)
        self.client = client

    client_class.__init__ = __init__
    client_class._corpusbeam_shared = True
    return True


def _options_key(client_options, s3_options, options) -> tuple:
    """What a boto3 S3 client is built from: the API version and the client's arguments."""
    version = client_options.view_options(options, s3_options).s3_api_version
    kwargs = client_options.get_client_kwargs(options, s3_options)
    return (version, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
