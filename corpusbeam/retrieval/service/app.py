"""The search service: an ASGI app (Starlette, served by uvicorn) over live index folders.

Routes:

    POST /search     {"query": text} | {"image": data URL} | {"vector": [...]},
                     plus "k", "filter", "index", "mode" (text queries: dense, lexical or
                     hybrid; hybrid by default when every index has a lexical index);
                     answers {"hits": [...], "indexes": [...], "took_ms", "embed_ms", "mode"}
    GET  /indexes    the indexes served: name, root, version, manifest
    GET  /healthz    the process answers (always 200)
    GET  /readyz     200 once every index is open and the query embedders are started
    GET  /metrics    Prometheus text (corpusbeam.retrieval.service.metrics)
    GET  /openapi.json, GET /docs   the OpenAPI 3.1 document and a page rendering it

Without ``"index"`` a query searches every index and merges the hits by score, which
needs every index to have the same ``Searcher.score_kind`` (model, dimensions, cosine or
hamming); otherwise the answer is 400 naming the index that differs. Every error, an
unexpected one included (500 ``internal_server_error``), is ``{"error": {"code", "message",
"target"?}}`` with ``x-ms-error-code``. With ``ServiceConfig.api_key`` set, every route but
``/healthz``, ``/readyz``, ``/metrics`` and the docs needs ``api-key: KEY`` or
``Authorization: Bearer KEY`` (either, when both are sent). Auth, the body limit, the error
answers and the catch-all come from ``corpusbeam.asgi``, shared with the reference endpoint.

Searching runs in a worker thread (FAISS releases the GIL), so the event loop keeps
accepting requests. A background task calls ``LiveIndex.refresh()`` every
``poll_interval`` seconds: new versions swap in without dropping a request.

This module wires the routes to ``service.SearchService`` (the answers) and
``query.parse_query`` (reading a search body).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from corpusbeam.asgi.errors import catch_all, error_response, exception_handlers, reject
from corpusbeam.asgi.prometheus import CONTENT_TYPE
from corpusbeam.errors import CorpusbeamError
from corpusbeam.inference.errors import StatusError
from corpusbeam.retrieval.live import LiveIndex
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.openapi import docs_page, openapi_document
from corpusbeam.retrieval.service.page import page_routes
from corpusbeam.retrieval.service.service import SearchService, json_response

__all__ = ["create_app"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def create_app(indexes: Sequence[LiveIndex], config: ServiceConfig | None = None) -> Starlette:
    """The ASGI app serving ``indexes`` (opened ``LiveIndex`` objects; the caller closes
    their embedder pool after the app stops)."""
    service = SearchService(indexes, config or ServiceConfig())
    app = Starlette(
        routes=_routes(service),
        lifespan=_lifespan(service),
        middleware=_middleware(),
        exception_handlers=exception_handlers(),
    )
    app.state.service = service
    return app


def _middleware() -> list:
    """Any unexpected error becomes a logged 500 envelope (``corpusbeam.asgi.errors``)."""
    return [catch_all(log, "the search service")]


def _routes(service: SearchService) -> list[BaseRoute]:
    def guarded(handler: Handler) -> Handler:
        async def route(request: Request) -> Response:
            service.require_key(request)
            return await handler(request)

        return route

    async def indexes_route(request: Request) -> Response:
        return json_response(service.describe())

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if not service.ready:
            return json_response({"status": "starting"}, 503)
        return json_response(
            {"status": "ready", "indexes": {n: i.version for n, i in service.indexes.items()}}
        )

    async def metrics(request: Request) -> Response:
        text = service.metrics.render(service.indexes.values())
        return Response(text, media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return Response(service.openapi, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page(openapi_document(service.config)))

    return [
        Route("/search", _search_route(service), methods=["POST"]),
        Route("/indexes", guarded(indexes_route), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        *page_routes(
            lambda: {n: i.current for n, i in service.indexes.items()}, service.require_key
        ),
    ]


def _search_route(service: SearchService) -> Handler:
    """``POST /search``, counted in the metrics by status and time taken."""

    async def search(request: Request) -> Response:
        started = time.perf_counter()
        status = 500  # unless an answer is made: an unexpected error goes to the catch-all
        try:
            try:
                service.require_key(request)
                response = await service.search(request)
            except StatusError as exc:
                response = error_response(exc)
            except CorpusbeamError as exc:
                response = error_response(reject(500, "internal_error", str(exc)))
            status = response.status_code
            return response
        finally:
            service.metrics.request(status, time.perf_counter() - started)

    return search


def _lifespan(
    service: SearchService,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Warm the service up before it says ready; poll for new versions while it runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.warm_up()
        poller = None
        if service.config.poll_interval > 0:
            poller = asyncio.create_task(service.poll())
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    return lifespan
