"""The search page: ``GET /`` and what it needs beside ``POST /search``.

Routes (added to the service's by ``page_routes``):

    GET /                          the page (package data: ``static/index.html``)
    GET /static/{name}             its script and style sheet (no CDN: works offline)
    GET /indexes/{name}/fields     the index's metadata columns for the page's filters:
                                   name, type, and its values (2 to ``MAX_VALUES``
                                   shared by rows) or min/max; plus ``thumbnails`` and
                                   ``lexical`` (whether the folder supports hybrid search)
    GET /thumbnails/{name}?document=ID   an image hit's thumbnail (``thumbnails/<id>.jpg``,
                                   ``id`` the image's chunk id, written by the index job;
                                   users' files are never read). By document id, since
                                   a browser's numbers cannot hold a 63-bit id.

The page itself and its static files are open; the two data routes need the service key
like ``/indexes`` (the page keeps a key typed into it in ``sessionStorage`` and sends it
as ``api-key``). Searching goes through the same ``POST /search`` as every client.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from corpusbeam.asgi.errors import reject
from indexes.storage.ids import chunk_id

if TYPE_CHECKING:
    from corpusbeam.retrieval.searcher import Searcher

__all__ = [
    "HIDDEN_COLUMNS",
    "MAX_VALUES",
    "THUMBNAILS",
    "fields_of",
    "openapi_paths",
    "page_routes",
]

MAX_VALUES = 50  # values listed for a column the page filters by choice
THUMBNAILS = "thumbnails"  # the index folder's thumbnails (pipeline.graph.THUMBNAILS)
# Columns not offered as filters: ids, positions, hashes, and the text itself.
HIDDEN_COLUMNS = frozenset({"id", "chunk", "text", "char_start", "char_end", "content_hash"})
_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


def _static(name: str) -> bytes:
    return resources.files("corpusbeam.retrieval.service").joinpath("static", name).read_bytes()


def _kind(t: pa.DataType) -> str | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "number"
    return None  # lists, structs: not offered


def fields_of(searcher: Searcher) -> dict[str, Any]:
    """What the page's filters and features need to know about one open index."""
    table = searcher.folder.metadata()
    columns = []
    for name in table.column_names:
        kind = _kind(table.schema.field(name).type)
        if name in HIDDEN_COLUMNS or kind is None:
            continue
        col = table.column(name)
        entry: dict[str, Any] = {"name": name, "type": kind}
        if kind == "number" or (kind == "integer" and pc.count_distinct(col).as_py() > MAX_VALUES):
            mm = pc.min_max(col).as_py()
            entry.update(min=mm["min"], max=mm["max"])
        else:
            counts = pc.value_counts(pc.drop_null(col)).to_pylist()
            # A choice among all of a column's values, when it has a few that rows share
            # (not an id-like column such as uri, nor a constant one).
            if not 2 <= len(counts) <= min(MAX_VALUES, table.num_rows // 2):
                continue
            counts.sort(key=lambda c: (-c["counts"], str(c["values"])))
            entry["values"] = [c["values"] for c in counts]
        columns.append(entry)
    manifest = orjson.loads(searcher.manifest.to_json())
    lexical = bool(manifest.get("lexical")) or any(searcher.path.glob("lexical*"))
    return {
        "name": searcher.name,
        "version": searcher.version,
        "count": searcher.manifest.count,
        "columns": columns,
        "thumbnails": (searcher.path / THUMBNAILS).is_dir(),
        "lexical": lexical,
    }


def page_routes(
    searchers: Callable[[], dict[str, Searcher]], require_key: Callable[[Request], None]
) -> list[Route]:
    """The page's routes; ``searchers()`` gives the live ``Searcher`` of every index by name."""
    cache: dict[str, tuple[str | None, dict]] = {}  # index name -> (version, fields)

    def searcher(request: Request) -> Searcher:
        require_key(request)
        name = request.path_params["name"]
        live = searchers()
        if name not in live:
            raise reject(
                404, "index_not_found", f"no index {name!r}; have {sorted(live)}", target="index"
            )
        return live[name]

    async def page(request: Request) -> Response:
        return HTMLResponse(_static("index.html"))

    async def static(request: Request) -> Response:
        name = request.path_params["file"]
        if name not in _STATIC:
            raise reject(404, "not_found", f"no static file {name!r}")
        return Response(_static(name), media_type=_STATIC[name])

    async def fields(request: Request) -> Response:
        s = searcher(request)
        if s.name not in cache or cache[s.name][0] != s.version:
            cache[s.name] = (s.version, await anyio.to_thread.run_sync(fields_of, s))
        return Response(orjson.dumps(cache[s.name][1]), media_type="application/json")

    async def thumbnail(request: Request) -> Response:
        s = searcher(request)
        document = request.query_params.get("document")
        if not document:
            raise reject(400, "invalid_request", "give ?document=ID", target="document")
        path: Path = s.path / THUMBNAILS / f"{chunk_id(document, 0)}.jpg"
        if not path.is_file():
            raise reject(
                404,
                "not_found",
                f"index {s.name} has no thumbnail for {document!r}",
                target="document",
            )
        return Response(
            path.read_bytes(),
            media_type="image/jpeg",
            headers={"cache-control": "private, max-age=3600"},
        )

    return [
        Route("/", page, methods=["GET"]),
        Route("/static/{file}", static, methods=["GET"]),
        Route("/indexes/{name}/fields", fields, methods=["GET"]),
        Route("/thumbnails/{name}", thumbnail, methods=["GET"]),
    ]


def openapi_paths() -> dict[str, Any]:
    """The page's routes in the service's OpenAPI document."""

    def error(description: str) -> dict:
        schema = {"$ref": "#/components/schemas/Error"}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    secured = [{"apiKey": []}, {"bearer": []}, {}]
    obj = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/": {
            "get": {
                "summary": "The search page",
                "responses": {
                    "200": {
                        "description": "the page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/indexes/{name}/fields": {
            "get": {
                "summary": "An index's metadata columns, for the page's filters",
                "security": secured,
                "parameters": [name],
                "responses": {
                    "200": {"description": "columns, thumbnails, lexical", **obj},
                    "401": error("api key missing or wrong"),
                    "404": error("no such index"),
                },
            }
        },
        "/thumbnails/{name}": {
            "get": {
                "summary": "An image hit's thumbnail, stored in the index folder",
                "security": secured,
                "parameters": [
                    name,
                    {"name": "document", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "a JPEG",
                        "content": {"image/jpeg": {"schema": {"type": "string"}}},
                    },
                    "400": error("no document given"),
                    "401": error("api key missing or wrong"),
                    "404": error("no such index, or no thumbnail for the document"),
                },
            }
        },
    }
