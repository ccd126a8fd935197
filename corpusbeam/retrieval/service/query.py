"""Reading a ``POST /search`` body into a ``Query``, or a 400/404 naming what is wrong.

The checks run in a fixed order, so a body with several faults is answered about the
first: unknown fields, the kind of query (exactly one of query, image, vector), ``k``,
``filter``, ``index``, ``mode``, ``fusion``, the page's options (``group``,
``per_document``, ``diversity``, ``snippet``, ``cursor``:
``corpusbeam.retrieval.results.PageOptions``), then the query itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from corpusbeam.asgi.errors import reject
from corpusbeam.errors import ConfigError
from corpusbeam.inference.client.images import sniff_image_format
from corpusbeam.retrieval.hybrid import MODES
from corpusbeam.retrieval.results import PageOptions
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.fusion_request import parse_fusion

__all__ = ["Query", "parse_query"]

_PAGE_KEYS = ("group", "per_document", "diversity", "snippet", "cursor")
_BODY_KEYS = frozenset(
    {"query", "image", "vector", "k", "filter", "index", "mode", "fusion", *_PAGE_KEYS}
)
_KINDS = ("query", "image", "vector")


@dataclass(frozen=True)
class Query:
    """One search request, checked: exactly one of ``query``, ``image``, ``vector``."""

    query: str | None
    image: bytes | None
    vector: np.ndarray | None  # (1, d) float32
    k: int
    filter: dict | None
    index: str | None  # None: every index, hits merged
    mode: str | None = None
    fusion: dict | None = None  # Searcher.fusion_for keywords: fusion, weights, rrf_k
    page: PageOptions = field(default_factory=PageOptions)


def parse_query(data: dict, config: ServiceConfig, index_names: Collection[str]) -> Query:
    """``data`` (a JSON object) as a ``Query`` for a service serving ``index_names``."""
    unknown = sorted(set(data) - _BODY_KEYS)
    if unknown:
        raise reject(400, "unknown_field", f"unknown fields {unknown}", target=unknown[0])
    kind = _kind(data)
    k = _k(data, config)
    flt = _filter(data)
    index = _index(data, index_names)
    mode = _mode(data, kind)
    fusion = parse_fusion(data.get("fusion"), mode, kind)
    page = _page(data, k)
    query = image = vector = None
    if kind == "query":
        query = _text(data["query"], config)
    elif kind == "image":
        image = _data_url_bytes(data["image"])
    else:
        vector = _vector(data["vector"])
    return Query(query, image, vector, k, flt, index, mode, fusion=fusion, page=page)


def _page(data: dict, k: int) -> PageOptions:
    given = {name: data[name] for name in _PAGE_KEYS if data.get(name) is not None}
    try:
        return PageOptions(k=k, **given)
    except ConfigError as exc:
        code = "invalid_cursor" if exc.field == "cursor" else "invalid_request"
        raise reject(400, code, str(exc), target=exc.field) from None


def _kind(data: dict) -> str:
    given = [name for name in _KINDS if data.get(name) is not None]
    if len(given) != 1:
        raise reject(
            400, "invalid_request", "give exactly one of query, image, vector", target="query"
        )
    return given[0]


def _k(data: dict, config: ServiceConfig) -> int:
    k = data.get("k", config.default_k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= config.max_k:
        raise reject(400, "invalid_k", f"k must be an integer in [1, {config.max_k}]", target="k")
    return k


def _filter(data: dict) -> dict | None:
    flt = data.get("filter")
    if flt is not None and (not isinstance(flt, dict) or not flt):
        raise reject(400, "invalid_filter", "filter must be a non-empty object", target="filter")
    return flt


def _index(data: dict, index_names: Collection[str]) -> str | None:
    index = data.get("index")
    if index is not None and not isinstance(index, str):
        raise reject(400, "invalid_request", "index must be an index's name", target="index")
    if index is not None and index not in index_names:
        raise reject(
            404,
            "index_not_found",
            f"no index {index!r}; have {sorted(index_names)}",
            target="index",
        )
    return index


def _mode(data: dict, kind: str) -> str | None:
    mode = data.get("mode")
    if mode is not None and mode not in MODES:
        raise reject(
            400,
            "invalid_mode",
            f"unknown mode {mode!r}; use one of {', '.join(MODES)}",
            target="mode",
        )
    if mode not in (None, "dense") and kind != "query":
        raise reject(
            400,
            "invalid_mode",
            f"mode {mode!r} needs a text query; image and vector queries are dense",
            target="mode",
        )
    return mode


def _text(query: object, config: ServiceConfig) -> str:
    if not isinstance(query, str) or not query.strip():
        raise reject(400, "invalid_query", "query must be a non-empty string", target="query")
    if len(query) > config.max_query_chars:
        raise reject(
            400,
            "query_too_long",
            f"query has {len(query)} characters; the limit is {config.max_query_chars}",
            target="query",
        )
    return query


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
