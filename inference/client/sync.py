"""The synchronous client: the asyncio client on a private event loop thread.

One implementation serves both: ``EmbeddingsClient`` runs an ``AsyncEmbeddingsClient`` on
its own loop in a daemon thread, so synchronous callers (a Beam DoFn, a script) still get
many requests in flight for large batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from inference.client.core import AsyncEmbeddingsClient, ClientStats, ErrorMode
from inference.client.images import ImageInput
from inference.client.responses import EmbeddingsResult
from inference.client.settings import ClientSettings

__all__ = ["EmbeddingsClient"]

T = TypeVar("T")


class EmbeddingsClient:
    """Blocking twin of ``AsyncEmbeddingsClient`` (same arguments, same results)."""

    def __init__(self, settings: ClientSettings, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="corpusbeam-embeddings", daemon=True
        )
        self._thread.start()
        self._client = AsyncEmbeddingsClient(settings, **kwargs)
        self._closed = False

    @property
    def settings(self) -> ClientSettings:
        return self._client.settings

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        input_type: str | None = None,
        dimensions: int | None = None,
        encoding_format: str | None = None,
        errors: ErrorMode = "raise",
    ) -> EmbeddingsResult:
        return self._run(
            self._client.embed_texts(
                texts,
                input_type=input_type,
                dimensions=dimensions,
                encoding_format=encoding_format,
                errors=errors,
            )
        )

    def embed_images(
        self,
        images: Sequence[ImageInput | bytes | str],
        *,
        input_type: str | None = None,
        dimensions: int | None = None,
        encoding_format: str | None = None,
        errors: ErrorMode = "raise",
    ) -> EmbeddingsResult:
        return self._run(
            self._client.embed_images(
                images,
                input_type=input_type,
                dimensions=dimensions,
                encoding_format=encoding_format,
                errors=errors,
            )
        )

    def info(self) -> dict:
        return self._run(self._client.info())

    def close(self) -> None:
        if self._closed:
            return
        self._run(self._client.aclose())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> EmbeddingsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._client).replace("AsyncEmbeddingsClient", "EmbeddingsClient")
