"""Fault injection: an endpoint that answers with the wrong model's vectors.

A broken deployment answers under the right model name, at the right dimensions, with
vectors of another model. ``WrongModel`` is that fault: it is the hash model by name,
provider and dimensions, but a text's vector is drawn at random, seeded by a digest of
the whole text, so it is deterministic and unit-length and carries nothing of the text's
words: a query finds no better than a random document. ``wrong_model_endpoint`` serves it
with the local reference endpoint's app on loopback (``create_app(model=...)``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence

import numpy as np

from corpusbeam.asgi.serving import uvicorn_in_thread, uvicorn_server
from corpusbeam.inference.server import EndpointConfig
from corpusbeam.inference.server.app import create_app
from corpusbeam.inference.server.hashmodel import HashModel

__all__ = ["WrongModel", "wrong_model_endpoint"]


class WrongModel(HashModel):
    """The hash model's name and dimensions, another (meaningless) model's vectors."""

    def embed_texts(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.native_dimensions)
            rows.append(v / np.linalg.norm(v))
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.native_dimensions)
        return out


@contextlib.contextmanager
def wrong_model_endpoint(config: EndpointConfig | None = None) -> Iterator[str]:
    """The URL of an endpoint serving ``WrongModel`` until the block ends."""
    config = config or EndpointConfig()
    app = create_app(config, model=WrongModel(config.dimensions or 256))
    server = uvicorn_server(
        app, log_level="warning", own_logging=False, http="h11", loop="asyncio", lifespan="off"
    )
    with uvicorn_in_thread(server, name="wrong-model-endpoint") as (url, _alive):
        yield url
