"""The search service's OpenAPI 3.1 document, written out (no framework generates it), and
a self-contained page that renders it (no CDN: the service may run offline)."""

from __future__ import annotations

import html
import json
from typing import Any

from corpusbeam.retrieval.service.page import openapi_paths as page_openapi_paths

__all__ = ["docs_page", "openapi_document"]


def _error_response(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(config: Any) -> dict:
    """The document for a service with ``config`` (a ``ServiceConfig``: limits shown)."""
    hit = {
        "type": "object",
        "required": ["id", "score", "document_id", "uri", "text", "metadata"],
        "properties": {
            "id": {"type": "integer", "description": "the chunk's int64 id"},
            "score": {"type": "number", "description": "higher is better"},
            "document_id": {"type": ["string", "null"]},
            "uri": {"type": ["string", "null"]},
            "text": {"type": ["string", "null"], "description": "chunk text or image caption"},
            "metadata": {
                "type": "object",
                "description": "chunk, modality, char_start, char_end, content_hash and the "
                "user's metadata columns",
            },
            "index": {"type": "string", "description": "the index the hit came from"},
            "ranks": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1},
                "description": "lexical and hybrid searches: the hit's rank in each ranking "
                'it came from, e.g. {"dense": 3, "lexical": 1}',
            },
            "snippet": {
                "type": "object",
                "description": "with snippet > 0: the best window of text (characters "
                "start:end) and the query terms' [start, end] offsets in it, no stopwords",
                "properties": {
                    "text": {"type": "string"},
                    "start": {"type": "integer"},
                    "end": {"type": "integer"},
                    "highlights": {"type": "array", "items": {"type": "array"}},
                },
            },
        },
    }
    request = {
        "type": "object",
        "additionalProperties": False,
        "description": "exactly one of query, image, vector",
        "oneOf": [{"required": ["query"]}, {"required": ["image"]}, {"required": ["vector"]}],
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": config.max_query_chars},
            "image": {"type": "string", "description": "data:image/<png|jpeg|webp|gif>;base64,..."},
            "vector": {
                "type": "array",
                "items": {"type": "number"},
                "description": "a float query vector of the index's dimensions",
            },
            "k": {"type": "integer", "minimum": 1, "maximum": config.max_k, "default": 10},
            "filter": {
                "type": "object",
                "description": 'metadata filter: {"lang": "en", "year": {"$gte": 2020}}, '
                "$eq $ne $gt $gte $lt $lte $in $nin $and $or $not",
            },
            "index": {"type": "string", "description": "search this index only"},
            "mode": {
                "type": "string",
                "enum": ["dense", "lexical", "hybrid"],
                "description": "how a text query is searched: the vector index, BM25 over "
                "the chunks' text, or both fused (see fusion); default "
                "hybrid when every index searched has a lexical index, else dense. Image and "
                "vector queries are dense only.",
            },
            "fusion": _fusion_request(),
            **_page_properties(),
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "target": {"type": "string"},
                },
            }
        },
    }
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    plain_json = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "corpusbeam search",
            "version": "1",
            "description": "Query-time retrieval over corpusbeam index folders.",
        },
        "components": {
            "schemas": {
                "SearchRequest": request,
                "Hit": hit,
                "Group": _GROUP,
                "Error": error,
            },
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": {
            "/search": {
                "post": {
                    "summary": "Search the indexes with a text, an image or a vector",
                    "security": [{"apiKey": []}, {"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SearchRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "hits, best first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["hits"],
                                        "properties": {
                                            "hits": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Hit"},
                                            },
                                            "indexes": {"type": "array"},
                                            "took_ms": {"type": "number"},
                                            "embed_ms": {"type": ["number", "null"]},
                                            "mode": {"type": "string"},
                                            "fusion": {
                                                "oneOf": [_fusion_answered(), {"type": "null"}],
                                                "description": "the fusion that answered a "
                                                "hybrid search (null for dense and lexical)",
                                            },
                                            "next_cursor": {
                                                "type": ["string", "null"],
                                                "description": "send it with the same "
                                                "request for the next page; null: the last",
                                            },
                                            "groups": {
                                                "type": "array",
                                                "description": "with group: the documents",
                                                "items": {"$ref": "#/components/schemas/Group"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error_response("invalid request, filter, k, query or vector"),
                        "401": _error_response("api key missing or wrong"),
                        "404": _error_response("no such index"),
                        "410": _error_response("the cursor's version is no longer kept"),
                        "413": _error_response(f"body over {config.max_request_bytes} bytes"),
                        "502": _error_response("the embeddings endpoint failed"),
                    },
                }
            },
            "/indexes": {
                "get": {
                    "summary": "The indexes served: name, version, manifest",
                    "security": [{"apiKey": []}, {"bearer": []}, {}],
                    "responses": {"200": {"description": "indexes", **plain_json}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": {"description": "alive", **plain_json}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: indexes open, embedders started",
                    "responses": {
                        "200": {"description": "ready", **plain_json},
                        "503": {"description": "starting", **plain_json},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "metrics", **text}},
                }
            },
            **page_openapi_paths(),
        },
    }


_WEIGHTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dense": {"type": "number", "minimum": 0},
        "lexical": {"type": "number", "minimum": 0},
    },
    "description": "a weight a ranking (at least one > 0)",
}
_METHOD = {"type": "string", "enum": ["rrf", "convex"]}
_RRF_K = {"type": "number", "exclusiveMinimum": 0, "description": "RRF's k (60)"}


def _fusion_request() -> dict:
    return {
        "description": "hybrid only: how the dense and lexical rankings are fused, a method "
        "(convex: a convex combination of min-max normalised scores; rrf: Reciprocal Rank "
        "Fusion) or an object with its weights. Default: the index's tuned fusion "
        "(corpusbeam evaluate --tune), else convex with dense 0.3, lexical 0.7.",
        "oneOf": [
            _METHOD,
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"method": _METHOD, "weights": _WEIGHTS, "rrf_k": _RRF_K},
            },
        ],
    }


def _fusion_answered() -> dict:
    return {
        "type": "object",
        "required": ["method", "weights", "tuned"],
        "properties": {
            "method": _METHOD,
            "weights": _WEIGHTS,
            "tuned": {"type": "boolean", "description": "chosen by evaluate --tune"},
            "rrf_k": _RRF_K,
        },
    }


_GROUP = {
    "type": "object",
    "required": ["document_id", "score", "count", "hits"],
    "properties": {
        "document_id": {"type": ["string", "null"]},
        "score": {"type": "number", "description": "its best chunk's score"},
        "count": {"type": "integer", "description": "its chunks among the candidates ranked"},
        "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
        "index": {"type": "string"},
    },
}


def _page_properties() -> dict:
    """The request's page options (``corpusbeam.retrieval.results.PageOptions``)."""
    return {
        "group": {
            "type": "boolean",
            "default": False,
            "description": "group by document: k documents, each with its best chunks "
            "(per_document) and a count of its chunks among the candidates",
        },
        "per_document": {"type": "integer", "minimum": 1, "default": 3},
        "diversity": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0,
            "description": "MMR over the candidates' vectors: 0 off, towards 1 more diverse",
        },
        "snippet": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "words in each hit's snippet, the best window of its text with "
            "the query terms highlighted (0: none)",
        },
        "cursor": {
            "type": "string",
            "description": "the previous answer's next_cursor, with the same request: the "
            "next page, from the versions that answered the first (410 once let go)",
        },
    }


def docs_page(document: dict) -> str:
    """A plain HTML page listing the routes and schemas of ``document``."""
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{codes}</td></tr>"
            )
    schemas = html.escape(json.dumps(document["components"]["schemas"], indent=2))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>corpusbeam search</title>"
        "</head><body><h1>corpusbeam search</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        "<table border='1' cellpadding='4'><tr><th>route</th><th>what</th><th>answers</th>"
        f"</tr>{''.join(rows)}</table><h2>Schemas</h2><pre>{schemas}</pre></body></html>"
    )
