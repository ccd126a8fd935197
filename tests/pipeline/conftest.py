"""Fixtures of the pipeline tests: the stand-in object stores (``stores``)."""

from tests.pipeline.stores import gcs, s3  # noqa: F401  (fixtures, registered by import)
