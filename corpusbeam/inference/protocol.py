"""The API's names, one home each: the api-version spoken, the ``encoding_format`` and
``input_type`` values, the routes, and how a manifest names the local reference endpoint.

Plain Python, no imports: the command line reads its choices and defaults from here
without loading numpy or an HTTP library.
"""

from __future__ import annotations

__all__ = [
    "API_VERSION",
    "BIT_ENCODINGS",
    "ENCODINGS",
    "IMAGE_ROUTE",
    "INPUT_TYPES",
    "LOCAL_SCHEME",
    "TEXT_ROUTE",
    "local_endpoint",
    "local_model",
]

API_VERSION = "2024-05-01-preview"
TEXT_ROUTE = "/embeddings"
IMAGE_ROUTE = "/images/embeddings"

ENCODINGS: tuple[str, ...] = ("float", "base64", "int8", "uint8", "binary", "ubinary")
BIT_ENCODINGS: frozenset[str] = frozenset({"binary", "ubinary"})
INPUT_TYPES: tuple[str, ...] = ("text", "query", "document")

# A manifest's endpoint ``local://MODEL``: the local reference endpoint serving MODEL,
# started on loopback by whoever needs it (the index job, a searcher).
LOCAL_SCHEME = "local://"


def local_endpoint(model: str) -> str:
    """How a manifest records the local reference endpoint serving ``model``."""
    return f"{LOCAL_SCHEME}{model}"


def local_model(endpoint: str | None) -> str | None:
    """The model of a ``local://MODEL`` endpoint, or None for any other endpoint."""
    if endpoint and endpoint.startswith(LOCAL_SCHEME):
        return endpoint[len(LOCAL_SCHEME) :].strip("/") or None
    return None
