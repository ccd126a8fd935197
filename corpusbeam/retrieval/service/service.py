"""The search service's state and answers: the indexes it serves, ``POST /search``,
``GET /indexes``, warming up before ready, and polling for new versions.

Searching runs in a worker thread (FAISS releases the GIL), so the event loop keeps
accepting requests. ``poll`` calls ``LiveIndex.refresh()`` every ``poll_interval``
seconds: new versions swap in without dropping a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import faiss
import orjson
from starlette.requests import Request
from starlette.responses import Response

from corpusbeam.asgi.auth import check_access
from corpusbeam.asgi.body import read_body
from corpusbeam.asgi.errors import reject
from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference.errors import BadRequestError, EmbeddingError, PayloadTooLargeError
from corpusbeam.retrieval.fusion import common_fusion
from corpusbeam.retrieval.live import LiveIndex
from corpusbeam.retrieval.multi import check_mergeable, common_mode, embed_for
from corpusbeam.retrieval.paging import Cursor, CursorExpiredError
from corpusbeam.retrieval.results import search_page
from corpusbeam.retrieval.searcher import Searcher
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.metrics import ServiceMetrics
from corpusbeam.retrieval.service.openapi import openapi_document
from corpusbeam.retrieval.service.query import Query, parse_query

__all__ = ["SearchService", "json_response"]

log = logging.getLogger(__name__)

_OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


class SearchService:
    """What the routes answer with: the served indexes, their metrics and readiness."""

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

    def targets(self, q: Query) -> list[Searcher]:
        names = [q.index] if q.index is not None else list(self.indexes)
        pinned = self._pinned(q)
        if pinned is None:
            searchers = [self.indexes[n].current for n in names]
        else:
            try:
                searchers = [
                    self.indexes[n].at(pinned.get(n, self.indexes[n].version)) for n in names
                ]
            except CursorExpiredError as exc:
                raise reject(410, "cursor_expired", str(exc), target="cursor") from None
        if q.index is None:
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

    def _pinned(self, q: Query) -> dict[str, str | None] | None:
        """The versions a cursor pins (None: no cursor); a cursor is checked again, with
        the request, by ``search_page``."""
        if q.page.cursor is None:
            return None
        try:
            return dict(Cursor.decode(q.page.cursor).versions)
        except ConfigError as exc:
            raise reject(400, "invalid_cursor", str(exc), target="cursor") from None

    def answer(self, q: Query, searchers: list[Searcher]) -> dict:
        """Embed, search, merge (runs in a worker thread)."""
        if self.config.faiss_threads is not None:
            faiss.omp_set_num_threads(self.config.faiss_threads)  # per thread in OpenMP
        t0 = time.perf_counter()
        embed_s = None
        mode = common_mode(searchers, q.mode) if q.query is not None else "dense"
        fusion = common_fusion(searchers, mode, q.fusion)
        if q.vector is not None:
            vectors = [q.vector] * len(searchers)
        elif mode == "lexical":
            vectors = [None] * len(searchers)
        else:
            vectors = embed_for(searchers, q.query, image=q.image)
            embed_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        page = search_page(
            searchers,
            q.query,
            vector=q.vector,
            image=q.image,
            vectors=vectors,
            filter=q.filter,
            mode=q.mode,
            fusion=fusion,
            options=q.page,
        )
        index_s = time.perf_counter() - t1
        self.metrics.timings(embed_s, index_s)
        out = {
            "hits": [h.to_dict() for h in page.hits],
            "indexes": [{"name": s.name, "version": s.version} for s in searchers],
            "mode": mode,
            "fusion": None if page.fusion is None else page.fusion.describe(),
            "next_cursor": page.next_cursor,
            "took_ms": round((time.perf_counter() - t0) * 1000, 3),
            "embed_ms": None if embed_s is None else round(embed_s * 1000, 3),
        }
        if page.groups is not None:
            out["groups"] = [g.to_dict() for g in page.groups]
        return out

    async def search(self, request: Request) -> Response:
        q = parse_query(await self.body(request), self.config, self.indexes)
        searchers = self.targets(q)
        try:
            result = await anyio.to_thread.run_sync(self.answer, q, searchers)
        except CursorExpiredError as exc:
            raise reject(410, "cursor_expired", str(exc), target="cursor") from None
        except ConfigError as exc:  # a bad filter, an image the endpoint cannot take
            if exc.field == "cursor":
                raise reject(400, "invalid_cursor", str(exc), target="cursor") from None
            target = "filter" if exc.field == "filter" else exc.field
            if exc.field == "mode":
                raise reject(400, "invalid_mode", str(exc), target="mode") from None
            if exc.field in ("fusion", "weights", "rrf_k"):
                raise reject(400, "invalid_fusion", str(exc), target="fusion") from None
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
        return json_response(result)

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
