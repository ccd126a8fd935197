"""What the reference endpoint and the search service share through ``corpusbeam.asgi``,
checked on both over real HTTP: the API key, and a 500 envelope for an unexpected error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.asgi.serving import uvicorn_in_thread, uvicorn_server, wait_until_ready
from corpusbeam.inference.server import API_VERSION, EndpointConfig, create_app
from corpusbeam.inference.server.models import load_model
from corpusbeam.inference.server.run import RunningEndpoint
from corpusbeam.retrieval.searcher import Searcher
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import RunningService, running_service
from tests.support.endpoints import KEY
from tests.support.folders import D

SERVICE_KEY = "service-key-0123"
SECRET = "sk-never-in-an-answer"


@dataclass(frozen=True)
class Guarded:
    """One keyed app and one call to a route that needs the key."""

    name: str
    url: str
    key: str
    method: str
    path: str
    params: dict
    json: dict | None


@pytest.fixture(scope="module")
def keyed_service(float_folder) -> Iterator[RunningService]:
    config = ServiceConfig(api_key=SERVICE_KEY, poll_interval=0)
    with running_service([float_folder], config=config) as svc:
        yield svc


@pytest.fixture(params=["endpoint", "service"])
def guarded(request, endpoint: RunningEndpoint) -> Guarded:
    if request.param == "endpoint":
        params = {"api-version": API_VERSION}
        return Guarded("endpoint", endpoint.url, KEY, "POST", "/embeddings", params, {"input": "a"})
    svc = request.getfixturevalue("keyed_service")
    body = {"vector": [0.1] * D, "k": 1}
    return Guarded("service", svc.url, SERVICE_KEY, "POST", "/search", {}, body)


def _matrix(key: str) -> list[tuple[str, dict, int]]:
    return [
        ("api-key", {"api-key": key}, 200),
        ("bearer", {"Authorization": f"Bearer {key}"}, 200),
        ("bearer-lowercase", {"Authorization": f"bearer {key}"}, 200),
        ("right-bearer-wrong-api-key", {"Authorization": f"Bearer {key}", "api-key": "no"}, 200),
        ("wrong-bearer-right-api-key", {"Authorization": "Bearer no", "api-key": key}, 200),
        ("both-wrong", {"Authorization": "Bearer no", "api-key": "no"}, 401),
        ("none", {}, 401),
    ]


def test_the_same_auth_matrix_on_both_apps(guarded: Guarded):
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        for case, headers, status in _matrix(guarded.key):
            r = c.request(
                guarded.method,
                guarded.path,
                params=guarded.params,
                json=guarded.json,
                headers=headers,
            )
            assert r.status_code == status, (guarded.name, case, r.text)
            if status == 401:
                assert r.json()["error"]["code"] == "unauthorized", (guarded.name, case)
                assert r.headers["x-ms-error-code"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"
                assert guarded.key not in r.text


def _boom(*args, **kwargs):
    raise RuntimeError(f"something inside broke; the token was {SECRET}")


def test_an_unexpected_error_in_the_endpoint_is_a_500_envelope(monkeypatch, caplog):
    model = load_model(EndpointConfig())
    monkeypatch.setattr(model, "embed_texts", _boom)
    app = create_app(EndpointConfig(), model=model)
    server = uvicorn_server(app, log_level="warning", own_logging=False, http="h11", lifespan="off")
    with uvicorn_in_thread(server, name="broken-endpoint") as (url, alive):
        params = {"api-version": API_VERSION}
        wait_until_ready(f"{url}/info", alive, 30, what="endpoint", params=params)
        with caplog.at_level(logging.ERROR):
            r = httpx.post(f"{url}/embeddings", params=params, json={"input": ["a"]}, timeout=30)
        metrics = parse_metrics(httpx.get(f"{url}/metrics", timeout=30).text)
    assert r.status_code == 500
    assert r.json() == {
        "error": {"code": "internal_server_error", "message": "the endpoint failed unexpectedly"}
    }
    assert r.headers["x-ms-error-code"] == "internal_server_error"
    assert SECRET not in r.text
    # Logged once with its traceback, by the catch-all; uvicorn saw no exception.
    (record,) = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert record.name == "corpusbeam.inference.server" and record.exc_info is not None
    assert "POST /embeddings" in record.getMessage()
    assert metrics['corpusbeam_errors_total{code="internal_server_error"}'] == 1


def test_an_unexpected_error_in_the_service_is_a_500_envelope(float_folder, monkeypatch, caplog):
    config = ServiceConfig(poll_interval=0)
    with running_service([float_folder], config=config) as svc:
        monkeypatch.setattr(Searcher, "hits", _boom)  # every dense answer makes hits
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            with caplog.at_level(logging.ERROR):
                r = c.post("/search", json={"vector": [0.1] * D, "k": 1})
            metrics = parse_metrics(c.get("/metrics").text)
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "code": "internal_server_error",
            "message": "the search service failed unexpectedly",
        }
    }
    assert r.headers["x-ms-error-code"] == "internal_server_error"
    assert SECRET not in r.text
    (record,) = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert record.name == "corpusbeam.retrieval.service.app" and record.exc_info is not None
    assert "POST /search" in record.getMessage()
    assert metrics['corpusbeam_search_requests_total{status="500"}'] == 1
