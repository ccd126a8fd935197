"""The search service over real HTTP on loopback: routes, limits, the API key."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import RunningService, running_service
from indexes import open_index
from tests.support.folders import D
from tests.support.images import scene_png
from tests.support.schemathesis_run import run_schemathesis

SERVICE_KEY = "service-key-0123"
LIMITS = ServiceConfig(max_k=50, max_query_chars=200, max_request_bytes=64 * 1024, poll_interval=0)


@pytest.fixture(scope="module")
def service(float_folder, image_folder) -> Iterator[RunningService]:
    with running_service([float_folder, image_folder], config=LIMITS) as svc:
        yield svc


@pytest.fixture(scope="module")
def http(service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as c:
        yield c


def data_url(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def test_text_query_answers_hits_in_the_cli_shape(http):
    r = http.post("/search", json={"query": "the owl eats mice", "k": 3, "index": "texts"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["hits"]) == 3
    top = body["hits"][0]
    assert set(top) == {"id", "score", "document_id", "uri", "text", "metadata", "index", "ranks"}
    assert top["text"].startswith("the owl eats mice")
    assert body["mode"] == "hybrid"  # the default: the folder has a lexical index
    assert body["indexes"] == [{"name": "texts", "version": None}]
    assert body["embed_ms"] > 0 and body["took_ms"] >= body["embed_ms"]


def test_without_index_all_indexes_are_searched_and_merged(http):
    r = http.post("/search", json={"image": data_url(scene_png(2)), "k": 4})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["index"] == "pictures" and hits[0]["document_id"] == "img-2"
    assert {h["index"] for h in hits} == {"pictures", "texts"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_vector_query_equals_a_direct_search(http, float_folder):
    folder = open_index(float_folder)
    _, xb, _ = folder.vectors()
    want = folder.search(xb[5:6], 5)
    r = http.post("/search", json={"vector": xb[5].tolist(), "k": 5, "index": "texts"})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["hits"]] == want.I[0].tolist()
    assert r.json()["embed_ms"] is None


def test_filters(http):
    r = http.post(
        "/search",
        json={"query": "the cat eats fish", "index": "texts", "filter": {"lang": {"$in": ["fr"]}}},
    )
    assert r.status_code == 200
    assert r.json()["hits"] and all(h["metadata"]["lang"] == "fr" for h in r.json()["hits"])
    r = http.post("/search", json={"query": "x", "index": "texts", "filter": {"colour": "red"}})
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "filter" and "colour" in r.json()["error"]["message"]
    r = http.post(
        "/search", json={"query": "x", "index": "texts", "filter": {"lang": {"$near": 1}}}
    )
    assert r.status_code == 400 and "$near" in r.json()["error"]["message"]
    # A value of the wrong type for the column: pyarrow's error, converted and named.
    body = {"query": "x", "index": "texts", "filter": {"year": {"$gt": "z"}}}
    r = http.post("/search", json=body)
    assert r.status_code == 400 and r.json()["error"]["target"] == "filter"
    assert "year" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code", "target"),
    [
        ({"query": "a", "k": 0}, 400, "invalid_k", "k"),
        ({"query": "a", "k": 51}, 400, "invalid_k", "k"),
        ({"query": "a", "k": "3"}, 400, "invalid_k", "k"),
        ({"query": "a" * 201}, 400, "query_too_long", "query"),
        ({"query": "  "}, 400, "invalid_query", "query"),
        ({}, 400, "invalid_request", "query"),
        ({"query": "a", "vector": [1.0]}, 400, "invalid_request", "query"),
        ({"query": "a", "colour": 1}, 400, "unknown_field", "colour"),
        ({"vector": [0.1] * (D + 1), "index": "texts"}, 400, "invalid_vector", "vector"),
        ({"vector": ["a"]}, 400, "invalid_vector", "vector"),
        ({"vector": [-1.7976931348623157e308] * D}, 400, "invalid_vector", "vector"),
        ({"image": "http://example.com/x.png"}, 400, "invalid_image", "image"),
        ({"image": "data:image/png;base64,!!!"}, 400, "invalid_image", "image"),
        ({"image": data_url(b"not an image at all")}, 400, "invalid_image", "image"),
        ({"query": "a", "filter": []}, 400, "invalid_filter", "filter"),
        ({"query": "a", "index": "nope"}, 404, "index_not_found", "index"),
        ({"query": "a", "index": ["texts"]}, 400, "invalid_request", "index"),
    ],
)
def test_limits_and_bad_requests_are_clear_4xx(http, body, status, code, target):
    r = http.post("/search", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["target"] == target and error["message"]


def test_request_size_limit(http):
    big = data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * 70_000)
    r = http.post("/search", json={"image": big})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    # Without a content-length (chunked), the limit holds while reading.
    r = http.post("/search", content=iter([b'{"query": "', b"a" * 70_000, b'"}']))
    assert r.status_code == 413
    r = http.post("/search", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_health_ready_indexes_metrics_and_docs(http, float_folder):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["indexes"] == {"texts": None, "pictures": None}
    listing = http.get("/indexes").json()["indexes"]
    assert [i["name"] for i in listing] == ["texts", "pictures"]
    assert listing[0]["manifest"]["encoding"] == "float"
    assert listing[0]["manifest"]["endpoint"] == "local://hash"
    http.post("/search", json={"query": "the owl", "index": "texts"})
    http.post("/search", json={"query": "a", "k": 0})
    metrics = parse_metrics(http.get("/metrics").text)
    assert metrics['corpusbeam_search_requests_total{status="200"}'] >= 1
    assert metrics['corpusbeam_search_requests_total{status="400"}'] >= 1
    assert metrics["corpusbeam_search_embed_seconds_count"] >= 1
    assert metrics['corpusbeam_index_info{index="texts",version=""}'] == 1
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/search", "/indexes", "/healthz", "/readyz", "/metrics"} | {
        "/",
        "/indexes/{name}/fields",
        "/thumbnails/{name}",
    }  # the search page's (corpusbeam/retrieval/service/page.py)
    schema = doc["components"]["schemas"]["SearchRequest"]["properties"]
    assert schema["k"]["maximum"] == 50
    assert "POST /search" in http.get("/docs").text


def test_indexes_that_cannot_merge_are_named(float_folder, binary_folder):
    with running_service([float_folder, binary_folder], config=LIMITS) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            r = c.post("/search", json={"query": "the owl eats mice"})
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "indexes_not_mergeable"
            assert "texts-bits" in r.json()["error"]["message"]
            r = c.post("/search", json={"query": "the owl eats mice", "index": "texts-bits"})
            assert r.status_code == 200 and r.json()["hits"][0]["text"].startswith("the owl")


def test_api_key(float_folder, monkeypatch):
    config = ServiceConfig(api_key=SERVICE_KEY, poll_interval=0)
    assert SERVICE_KEY not in repr(config)
    with running_service([float_folder], config=config) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            body = {"query": "the owl eats mice", "k": 1}
            r = c.post("/search", json=body)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
            assert c.post("/search", json=body, headers={"api-key": "nope"}).status_code == 401
            assert c.get("/indexes").status_code == 401
            assert c.post("/search", json=body, headers={"api-key": SERVICE_KEY}).status_code == 200
            bearer = {"Authorization": f"Bearer {SERVICE_KEY}"}
            assert c.post("/search", json=body, headers=bearer).status_code == 200
            assert c.get("/indexes", headers=bearer).status_code == 200
            for open_route in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                assert c.get(open_route).status_code == 200
            assert SERVICE_KEY not in c.get("/metrics").text


def test_service_config_is_validated():
    with pytest.raises(ConfigError, match="max_k"):
        ServiceConfig(max_k=0)
    with pytest.raises(ConfigError, match="default_k"):
        ServiceConfig(max_k=5, default_k=10)
    with pytest.raises(ConfigError, match="poll_interval"):
        ServiceConfig(poll_interval=-1)


def test_vector_scores_are_plain_json_numbers(http):
    r = http.post("/search", json={"vector": list(np.ones(D)), "k": 2, "index": "texts"})
    assert r.status_code == 200 and isinstance(r.json()["hits"][0]["score"], float)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_service_conforms_to_its_openapi_document(service, tmp_path):
    """Schemathesis reads /openapi.json and fuzzes every route: no 5xx, every answer as
    documented (status, content type, body). positive_data_acceptance is off: the schema
    admits images that are not images and vectors of the wrong length, refused by design."""
    result = run_schemathesis(f"{service.url}/openapi.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "8 selected" in result.stdout and " passed" in result.stdout


def test_unknown_routes_and_methods_are_error_envelopes(http):
    r = http.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = http.get("/search")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["x-ms-error-code"] == "method_not_allowed"


def test_the_service_config_is_light_to_import():
    # The command line reads its defaults from here without starting the HTTP stack.
    code = (
        "import sys, corpusbeam.retrieval.service.config; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', "
        "'anyio', 'httpx', 'faiss', 'pyarrow', 'apache_beam') "
        "or m in ('corpusbeam.retrieval.searcher', 'corpusbeam.retrieval.service.app')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mode_is_accepted_and_each_hit_gives_its_ranks(http):
    body = {"query": "the owl eats mice", "k": 3, "index": "texts"}
    lexical = http.post("/search", json={**body, "mode": "lexical"}).json()
    assert lexical["mode"] == "lexical" and lexical["embed_ms"] is None  # nothing embedded
    assert [h["ranks"] for h in lexical["hits"]] == [{"lexical": r} for r in (1, 2, 3)]
    dense = http.post("/search", json={**body, "mode": "dense"}).json()
    assert dense["mode"] == "dense" and "ranks" not in dense["hits"][0]
    hybrid = http.post("/search", json={**body, "mode": "hybrid"}).json()
    assert hybrid["hits"][0]["text"].startswith("the owl eats mice")
    assert hybrid["hits"][0]["ranks"] == {"dense": 1, "lexical": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "the owl", "mode": "fuzzy"}, "unknown mode 'fuzzy'"),
        ({"query": "the owl", "mode": 3}, "unknown mode 3"),
        ({"vector": [0.5] * D, "mode": "lexical"}, "mode 'lexical' needs a text query"),
    ],
)
def test_a_bad_mode_is_a_400_naming_it(http, body, message):
    r = http.post("/search", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_mode" and error["target"] == "mode"
    assert message in error["message"]
    assert r.headers["x-ms-error-code"] == "invalid_mode"


def test_the_openapi_document_lists_the_modes(http):
    doc = http.get("/openapi.json").json()
    mode = doc["components"]["schemas"]["SearchRequest"]["properties"]["mode"]
    assert mode["enum"] == ["dense", "lexical", "hybrid"]
