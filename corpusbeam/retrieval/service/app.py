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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import faiss
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from corpusbeam.asgi.auth import check_access
from corpusbeam.asgi.body import read_body
from corpusbeam.asgi.errors import catch_all, error_response, exception_handlers, reject
from corpusbeam.asgi.prometheus import CONTENT_TYPE
from corpusbeam.errors import ConfigError, CorpusbeamError, IndexFolderError
from corpusbeam.inference.client.images import sniff_image_format
from corpusbeam.inference.errors import (
    BadRequestError,
    EmbeddingError,
    PayloadTooLargeError,
    StatusError,
)
from corpusbeam.retrieval.hybrid import MODES
from corpusbeam.retrieval.live import LiveIndex
from corpusbeam.retrieval.multi import check_mergeable, common_mode, embed_for, merge_hits
from corpusbeam.retrieval.searcher import Searcher
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.metrics import ServiceMetrics
from corpusbeam.retrieval.service.openapi import docs_page, openapi_document
from corpusbeam.retrieval.service.page import page_routes

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
_BODY_KEYS = frozenset({"query", "image", "vector", "k", "filter", "index", "mode"})


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


@dataclass
class _Query:
    query: str | None
    image: bytes | None
    vector: np.ndarray | None
    k: int
    filter: dict | None
    index: str | None
    mode: str | None = None


class _Service:
    def __init__(self, indexes: Sequence[LiveIndex], config: ServiceConfig) -> None:
        names = [live.name for live in indexes]
        if not indexes:
            raise ConfigError("indexes", [], "serve at least one index")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError("indexes", dupes, "two indexes have the same name; name them")
        self.indexes = {live.name: live for live in indexes}
        self.config = config
        self.metrics = ServiceMetrics()
        self.ready = False
        self.openapi = orjson.dumps(openapi_document(config))

    # ---- plumbing --------------------------------------------------------------------

    def require_key(self, request: Request) -> None:
        """Raise 401 unless the route is open or the request offers the key."""
        if request.url.path not in _OPEN_ROUTES:
            check_access(request.headers, self.config.api_key)

    async def body(self, request: Request) -> dict:
        raw = await read_body(request, self.config.max_request_bytes)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise reject(400, "invalid_json", f"the body is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise reject(400, "invalid_request", "the body must be a JSON object")
        return data

    # ---- POST /search ----------------------------------------------------------------

    def parse(self, data: dict) -> _Query:
        cfg = self.config
        unknown = sorted(set(data) - _BODY_KEYS)
        if unknown:
            raise reject(400, "unknown_field", f"unknown fields {unknown}", target=unknown[0])
        given = [name for name in ("query", "image", "vector") if data.get(name) is not None]
        if len(given) != 1:
            raise reject(
                400, "invalid_request", "give exactly one of query, image, vector", target="query"
            )
        k = data.get("k", cfg.default_k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg.max_k:
            raise reject(400, "invalid_k", f"k must be an integer in [1, {cfg.max_k}]", target="k")
        flt = data.get("filter")
        if flt is not None and (not isinstance(flt, dict) or not flt):
            raise reject(
                400, "invalid_filter", "filter must be a non-empty object", target="filter"
            )
        index = data.get("index")
        if index is not None and not isinstance(index, str):
            raise reject(400, "invalid_request", "index must be an index's name", target="index")
        if index is not None and index not in self.indexes:
            raise reject(
                404,
                "index_not_found",
                f"no index {index!r}; have {sorted(self.indexes)}",
                target="index",
            )
        mode = data.get("mode")
        if mode is not None and mode not in MODES:
            raise reject(
                400,
                "invalid_mode",
                f"unknown mode {mode!r}; use one of {', '.join(MODES)}",
                target="mode",
            )
        if mode not in (None, "dense") and "query" not in given:
            raise reject(
                400,
                "invalid_mode",
                f"mode {mode!r} needs a text query; image and vector queries are dense",
                target="mode",
            )
        query = image = vector = None
        if "query" in given:
            query = data["query"]
            if not isinstance(query, str) or not query.strip():
                raise reject(
                    400, "invalid_query", "query must be a non-empty string", target="query"
                )
            if len(query) > cfg.max_query_chars:
                raise reject(
                    400,
                    "query_too_long",
                    f"query has {len(query)} characters; the limit is {cfg.max_query_chars}",
                    target="query",
                )
        elif "image" in given:
            image = _data_url_bytes(data["image"])
        else:
            vector = _vector(data["vector"])
        return _Query(query, image, vector, k, flt, index, mode)

    def targets(self, q: _Query) -> list[Searcher]:
        if q.index is not None:
            searchers = [self.indexes[q.index].current]
        else:
            searchers = [live.current for live in self.indexes.values()]
            try:
                check_mergeable(searchers)
            except ConfigError as exc:
                raise reject(400, "indexes_not_mergeable", str(exc), target="index") from None
        if q.vector is not None:
            for s in searchers:
                if q.vector.shape[1] != s.dimensions:
                    raise reject(
                        400,
                        "invalid_vector",
                        f"vector has {q.vector.shape[1]} numbers; index {s.name} has "
                        f"{s.dimensions} dimensions",
                        target="vector",
                    )
        return searchers

    def answer(self, q: _Query, searchers: list[Searcher]) -> dict:
        """Embed, search, merge (runs in a worker thread)."""
        if self.config.faiss_threads is not None:
            faiss.omp_set_num_threads(self.config.faiss_threads)  # per thread in OpenMP
        t0 = time.perf_counter()
        embed_s = None
        mode = common_mode(searchers, q.mode) if q.query is not None else "dense"
        if q.vector is not None:
            vectors = [q.vector] * len(searchers)
        elif mode == "lexical":
            vectors = [None] * len(searchers)
        else:
            vectors = embed_for(searchers, q.query, image=q.image)
            embed_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if q.query is not None:
            lists = [
                s.search_texts([q.query], q.k, filter=q.filter, mode=mode, vectors=xq)[0]
                for s, xq in zip(searchers, vectors, strict=True)
            ]
        else:
            lists = [
                s.search_vectors(xq, q.k, filter=q.filter)[0]
                for s, xq in zip(searchers, vectors, strict=True)
            ]
        hits = merge_hits(lists, q.k) if len(lists) > 1 else lists[0]
        index_s = time.perf_counter() - t1
        self.metrics.timings(embed_s, index_s)
        return {
            "hits": [h.to_dict() for h in hits],
            "indexes": [{"name": s.name, "version": s.version} for s in searchers],
            "mode": mode,
            "took_ms": round((time.perf_counter() - t0) * 1000, 3),
            "embed_ms": None if embed_s is None else round(embed_s * 1000, 3),
        }

    async def search(self, request: Request) -> Response:
        q = self.parse(await self.body(request))
        searchers = self.targets(q)
        try:
            result = await anyio.to_thread.run_sync(self.answer, q, searchers)
        except ConfigError as exc:  # a bad filter, an image the endpoint cannot take
            target = "filter" if exc.field == "filter" else exc.field
            if exc.field == "mode":
                raise reject(400, "invalid_mode", str(exc), target="mode") from None
            raise reject(400, "invalid_request", str(exc), target=target) from None
        except PayloadTooLargeError as exc:
            raise reject(413, "query_too_large", f"the embeddings endpoint: {exc}") from None
        except BadRequestError as exc:  # refused by the endpoint: content filter, bad image
            code = exc.code or "query_refused"
            raise reject(400, code, f"the embeddings endpoint refused the query: {exc}") from None
        except EmbeddingError as exc:
            raise reject(502, "embedding_failed", f"embedding the query failed: {exc}") from None
        except IndexFolderError as exc:
            raise reject(500, "index_error", str(exc)) from None
        return _json(result)

    # ---- the other routes ------------------------------------------------------------

    def describe(self) -> dict:
        return {
            "indexes": [
                {
                    "name": live.name,
                    "root": str(live.root),
                    "version": live.version,
                    "follows_current": live.follows,
                    "swaps": live.swaps,
                    "last_error": live.last_error,
                    "score_kind": list(live.current.score_kind),
                    "manifest": orjson.loads(live.current.manifest.to_json()),
                }
                for live in self.indexes.values()
            ]
        }

    async def warm_up(self) -> None:
        """Start the query embedders (a local endpoint, a client) before saying ready."""
        for live in self.indexes.values():
            try:
                await anyio.to_thread.run_sync(live.current.embedder)
            except ConfigError as exc:  # no endpoint: vector queries only
                log.warning("index %s answers vector queries only: %s", live.name, exc)
        self.ready = True

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            for live in self.indexes.values():
                try:
                    await anyio.to_thread.run_sync(live.refresh)
                except Exception:  # never let the poller die
                    log.exception("index %s: refresh failed", live.name)


def _data_url_bytes(value: object) -> bytes:
    if not isinstance(value, str) or not value.startswith("data:image/"):
        raise reject(
            400, "invalid_image", "image must be a data:image/...;base64, URL", target="image"
        )
    head, sep, payload = value.partition(",")
    if not sep or not head.endswith(";base64"):
        raise reject(400, "invalid_image", "image must be a base64 data URL", target="image")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise reject(400, "invalid_image", "image is not valid base64", target="image") from None
    if sniff_image_format(data) is None:
        raise reject(400, "invalid_image", "image is not png, jpeg, webp or gif", target="image")
    return data


def _vector(value: object) -> np.ndarray:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise reject(
            400, "invalid_vector", "vector must be a non-empty list of numbers", target="vector"
        )
    x = np.asarray(value, dtype=np.float64)[None, :]
    if not np.isfinite(x).all() or np.abs(x).max() > np.finfo(np.float32).max:
        raise reject(
            400, "invalid_vector", "vector must be finite float32 numbers", target="vector"
        )
    x = x.astype(np.float32)
    return x


def create_app(indexes: Sequence[LiveIndex], config: ServiceConfig | None = None) -> Starlette:
    """The ASGI app serving ``indexes`` (opened ``LiveIndex`` objects; the caller closes
    their embedder pool after the app stops)."""
    service = _Service(indexes, config or ServiceConfig())

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

    def guarded(handler):
        async def route(request: Request) -> Response:
            service.require_key(request)
            return await handler(request)

        return route

    async def indexes_route(request: Request) -> Response:
        return _json(service.describe())

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if not service.ready:
            return _json({"status": "starting"}, 503)
        return _json(
            {"status": "ready", "indexes": {n: i.version for n, i in service.indexes.items()}}
        )

    async def metrics(request: Request) -> Response:
        text = service.metrics.render(service.indexes.values())
        return Response(text, media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return Response(service.openapi, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page(openapi_document(service.config)))

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

    routes = [
        Route("/search", search, methods=["POST"]),
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
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[catch_all(log, "the search service")],
        exception_handlers=exception_handlers(),
    )
    app.state.service = service
    return app
