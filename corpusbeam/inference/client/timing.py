"""Timing every HTTP exchange the client makes, for whoever wants a latency histogram.

``timed_transport(settings, record)`` is the transport the client would build for itself
(the same connection limits), wrapped so that each answered request calls
``record(milliseconds)`` once its body has been read and closed: the whole exchange, from
sending to the last byte. Requests that end in a transport error are not recorded (no
answer has a latency). Pass it as ``EmbeddingsClient(settings, transport=...)``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx

from corpusbeam.inference.client.settings import ClientSettings

__all__ = ["TimedTransport", "timed_transport"]


class _TimedStream(httpx.AsyncByteStream):
    def __init__(self, inner, started: float, record: Callable[[float], None]) -> None:
        self._inner = inner
        self._started = started
        self._record = record
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._done:
                self._done = True
                self._record((time.monotonic() - self._started) * 1000)


class TimedTransport(httpx.AsyncBaseTransport):
    """``inner``, with each answered request's duration in milliseconds sent to ``record``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, record: Callable[[float], None]) -> None:
        self._inner = inner
        self._record = record

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        response = await self._inner.handle_async_request(request)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_TimedStream(response.stream, started, self._record),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def timed_transport(settings: ClientSettings, record: Callable[[float], None]) -> TimedTransport:
    """The client's own transport (connection limits from ``settings``), timed."""
    limits = httpx.Limits(
        max_connections=settings.max_concurrency,
        max_keepalive_connections=settings.max_concurrency,
    )
    return TimedTransport(httpx.AsyncHTTPTransport(limits=limits), record)
