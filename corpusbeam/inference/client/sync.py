"""The synchronous client: the asyncio client on a private event loop thread.

One implementation serves both: ``EmbeddingsClient`` runs an ``AsyncEmbeddingsClient`` on
its own loop in a daemon thread, so synchronous callers (a Beam DoFn, a script) still get
many requests in flight for large batches.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from corpusbeam.inference.client.core import AsyncEmbeddingsClient, ErrorMode
from corpusbeam.inference.client.images import ImageInput
from corpusbeam.inference.client.responses import EmbeddingsResult
from corpusbeam.inference.client.settings import ClientSettings
from corpusbeam.inference.client.transport import ClientStats

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
        # Closed on close(), or when garbage collected: a Beam worker may never call
        # teardown, and an abandoned client must not leak its loop thread and sockets.
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._thread, self._client)

    @property
    def settings(self) -> ClientSettings:
        return self._client.settings

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if not self._finalizer.alive:
            coro.close()
            raise RuntimeError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result()

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

    def submit_texts(self, texts: Sequence[str], **options: Any) -> Future[EmbeddingsResult]:
        """Start ``embed_texts`` and return at once: a Future of its result. Lets a caller
        (a Beam DoFn) prepare the next batch while this one's requests are in flight."""
        return self._submit(self._client.embed_texts(texts, **options))

    def submit_images(
        self, images: Sequence[ImageInput | bytes | str], **options: Any
    ) -> Future[EmbeddingsResult]:
        """Start ``embed_images`` and return a Future of its result (see submit_texts)."""
        return self._submit(self._client.embed_images(images, **options))

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
        """Close connections and stop the loop thread; safe to call twice."""
        self._finalizer()

    def __enter__(self) -> EmbeddingsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._client).replace("AsyncEmbeddingsClient", "EmbeddingsClient")


async def _aclose(client: AsyncEmbeddingsClient) -> None:
    await client.aclose()
    for _ in range(3):  # let the transports finish closing before the loop stops
        await asyncio.sleep(0)


def _shutdown(
    loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: AsyncEmbeddingsClient
) -> None:
    if loop.is_closed():
        return
    if threading.current_thread() is thread:  # collected on the loop thread itself
        loop.create_task(_aclose(client)).add_done_callback(lambda _: loop.stop())
        return
    try:
        asyncio.run_coroutine_threadsafe(_aclose(client), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
