"""The model behind the endpoint: one small interface, two backends.

A backend turns a batch of inputs into float32 vectors of its native dimension, in input
order, L2-normalised. The app truncates them to a requested ``dimensions`` (Matryoshka
style: keep the first k components, renormalise) when the backend allows it, and encodes
them with ``corpusbeam.inference.codec``.

``hash`` (``corpusbeam.inference.server.hashmodel``) is built in and needs only numpy and Pillow;
``minilm`` (``corpusbeam.inference.server.minilm``) needs the ``minilm`` extra and is imported
lazily. Either is loaded once, at startup, by ``load_model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from corpusbeam.inference.server.config import DEFAULT_DIMENSIONS, EndpointConfig

__all__ = ["EmbeddingModel", "load_model"]


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the app needs from a model."""

    name: str
    provider: str
    native_dimensions: int
    supported_dimensions: frozenset[int]
    modalities: frozenset[str]  # "text", "image"
    max_input_tokens: int | None  # longest input the model reads in full; None: no limit

    def embed_texts(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        """``(n, native_dimensions)`` float32, L2-normalised, in input order."""
        ...

    def embed_images(
        self, images: Sequence[Image.Image], texts: Sequence[str | None], input_type: str
    ) -> np.ndarray:
        """``(n, native_dimensions)`` float32 for images with optional text each."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens the model reads for ``text``."""
        ...


def load_model(config: EndpointConfig) -> EmbeddingModel:
    """Build the configured model (loading weights, for minilm); raises ConfigError."""
    if config.model == "minilm":
        from corpusbeam.inference.server.minilm import MiniLMModel

        return MiniLMModel()
    from corpusbeam.inference.server.hashmodel import HashModel

    return HashModel(config.dimensions or DEFAULT_DIMENSIONS)
