"""Text queries of a ``local://<model>`` index embedded in this process, by the local
reference endpoint's own model and wire codec, without an HTTP round trip.

The vectors are the endpoint's, bit for bit: the model's ``embed_texts(texts, "query")``,
cut to ``dimensions`` and renormalised as the endpoint does, then through the wire
encoding and back (``codec.encode`` then ``codec.decode``, what the endpoint writes and
the client reads). An input longer than the endpoint's token limit is refused the way
the endpoint refuses it (``PayloadTooLargeError``, 413 ``input_too_long``).

Why: a query's embedding through the local endpoint on loopback cost 7 ms one at a time
and 45 ms at concurrency 8 in ``corpusbeam serve`` (client and server in one process,
``benchmarks.service_load``); the hash model itself takes 0.13 ms. Image queries still go
through the endpoint (``images``: the HTTP embedder, started on the first image query).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from corpusbeam.inference.errors import PayloadTooLargeError
from corpusbeam.retrieval.query_cache import QueryCache

if TYPE_CHECKING:
    from corpusbeam.inference.client import ImageInput

__all__ = ["LocalQueryEmbedder"]


class LocalQueryEmbedder:
    """A ``QueryEmbedder`` for ``local://<model>`` that runs the model here (texts)."""

    def __init__(self, model: str, cache: QueryCache | None, images: Callable[[], object]) -> None:
        # Imported here: only a local:// index needs the server's model code.
        from corpusbeam.inference.server.config import DEFAULT_MAX_INPUT_TOKENS, EndpointConfig
        from corpusbeam.inference.server.models import load_model

        config = EndpointConfig(model=model)
        self.model = load_model(config)
        limits = [v for v in (config.max_input_tokens, self.model.max_input_tokens) if v]
        self.max_input_tokens = min(limits) if limits else DEFAULT_MAX_INPUT_TOKENS
        self.cache = cache
        self._url = f"local://{model}"
        self._images = images

    @property
    def url(self) -> str:
        return self._url

    def _embed(self, texts: list[str], dimensions: int, encoding: str) -> np.ndarray:
        for i, text in enumerate(texts):
            n = self.model.count_tokens(text)
            if n > self.max_input_tokens:
                raise PayloadTooLargeError(
                    f"input {i} has {n} tokens, at most {self.max_input_tokens} allowed",
                    status=413,
                    code="input_too_long",
                    param=f"input[{i}]",
                    value=n,
                )
        xb = self.model.embed_texts(texts, "query")
        if dimensions > xb.shape[1]:
            raise ConfigError(
                "dimensions", dimensions, f"model {self._url} has {xb.shape[1]} dimensions"
            )
        if dimensions != xb.shape[1]:
            xb = xb[:, :dimensions]
            xb = xb / np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-12)
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        return codec.decode(codec.encode(xb, encoding), encoding, dimensions=dimensions)

    def embed_texts(self, texts: Sequence[str], *, dimensions: int, encoding: str) -> np.ndarray:
        """(n, width) vectors of ``texts`` as queries, as the local endpoint answers them."""

        def embed(batch: list[str]) -> np.ndarray:
            return self._embed(batch, dimensions, encoding)

        if self.cache is None:
            return embed(list(texts))
        return self.cache.embed((self._url, dimensions, encoding), list(texts), embed)

    def embed_images(
        self, images: Sequence[ImageInput | bytes | str], *, dimensions: int, encoding: str
    ) -> np.ndarray:
        """Image queries go through the local endpoint over HTTP."""
        return self._images().embed_images(images, dimensions=dimensions, encoding=encoding)

    def close(self) -> None:
        """Nothing of its own to close (the pool closes the image embedder)."""

    def __repr__(self) -> str:
        return f"LocalQueryEmbedder(url={self._url!r})"
