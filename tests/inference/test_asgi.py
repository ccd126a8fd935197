"""corpusbeam.asgi, the toolkit both HTTP apps share: a small app built from its parts, served
by uvicorn on loopback, and the parts on their own."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corpusbeam.asgi.auth import UNAUTHORIZED_MESSAGE, check_access, has_access, offered_credentials
from corpusbeam.asgi.body import read_body
from corpusbeam.asgi.errors import INTERNAL_ERROR, catch_all, error_body, exception_handlers, reject
from corpusbeam.asgi.prometheus import (
    Counters,
    Histogram,
    family,
    number,
    parse_metrics,
    render,
    sample,
)
from corpusbeam.asgi.serving import (
    bind_socket,
    socket_url,
    uvicorn_in_thread,
    uvicorn_server,
    wait_until_ready,
)
from corpusbeam.errors import ConfigError
from corpusbeam.inference.errors import AuthenticationError, PayloadTooLargeError

ROOT = str(Path(__file__).resolve().parents[2])  # the repository, for child processes
KEY = "toolkit-key-0123"
LIMIT = 1000
SECRET = "sk-do-not-print-me"
log = logging.getLogger("tests.asgi")


def _app() -> Starlette:
    async def echo(request: Request) -> Response:
        check_access(request.headers, KEY)
        return JSONResponse({"size": len(await read_body(request, LIMIT))})

    async def refuse(request: Request) -> Response:
        raise reject(429, "too_many_requests", "slow down", retry_after=1.5)

    async def boom(request: Request) -> Response:
        raise RuntimeError(f"the database password is {SECRET}")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/echo", echo, methods=["POST"]),
            Route("/refuse", refuse, methods=["GET"]),
            Route("/boom", boom, methods=["GET"]),
        ],
        middleware=[catch_all(log, "the toolkit app")],
        exception_handlers=exception_handlers(),
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = uvicorn_server(_app(), log_level="warning", own_logging=False, lifespan="off")
    with uvicorn_in_thread(server, name="asgi-toolkit-test") as (url, alive):
        wait_until_ready(f"{url}/healthz", alive, 10, what="toolkit app")
        yield url


@pytest.fixture(scope="module")
def http(url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10, headers={"api-key": KEY}) as c:
        yield c


# ---- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"api-key": KEY}, True),
        ({"authorization": f"Bearer {KEY}"}, True),
        ({"authorization": f"bearer {KEY}"}, True),
        ({"authorization": f"BEARER   {KEY}  "}, True),
        ({"authorization": f"Bearer {KEY}", "api-key": "wrong"}, True),
        ({"authorization": "Bearer wrong", "api-key": KEY}, True),
        ({"authorization": "Bearer wrong", "api-key": "wrong"}, False),
        ({}, False),
        ({"api-key": ""}, False),
        ({"authorization": KEY}, False),
        ({"authorization": f"Basic {KEY}"}, False),
        ({"api-key": KEY + "x"}, False),
        ({"api-key": "ünïcode"}, False),
    ],
)
def test_auth_matrix(headers, allowed):
    assert has_access(headers, KEY) is allowed
    assert has_access(headers, None)  # no key configured: open
    if allowed:
        check_access(headers, KEY)
    else:
        with pytest.raises(AuthenticationError) as info:
            check_access(headers, KEY)
        assert info.value.status == 401 and info.value.code == "unauthorized"
        assert KEY not in str(info.value)


def test_offered_credentials_are_both_headers():
    headers = {"api-key": "a", "authorization": "Bearer b"}
    assert offered_credentials(headers) == ["a", "b"]
    assert offered_credentials({"authorization": "Token c"}) == []


def test_auth_over_http(http):
    assert http.post("/echo", content=b"x").status_code == 200
    bearer = {"api-key": "wrong", "authorization": f"Bearer {KEY}"}
    assert http.post("/echo", content=b"x", headers=bearer).status_code == 200
    r = http.post("/echo", content=b"x", headers={"api-key": "wrong"})
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthorized", "message": UNAUTHORIZED_MESSAGE}}
    assert r.headers["x-ms-error-code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    assert KEY not in r.text


# ---- body limits ------------------------------------------------------------------------


def test_a_body_at_the_limit_is_read_whole(http):
    r = http.post("/echo", content=b"a" * LIMIT)
    assert r.status_code == 200 and r.json() == {"size": LIMIT}
    chunks = iter([b"a" * 400, b"b" * 400, b"c" * 200])
    assert http.post("/echo", content=chunks).json() == {"size": LIMIT}


def _assert_too_large(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["error"] == {
        "code": "request_too_large",
        "message": f"the request body is over {LIMIT} bytes",
        "target": "body",
    }
    assert r.headers["x-ms-error-code"] == "request_too_large"


def test_a_body_over_the_limit_is_413(http):
    _assert_too_large(http.post("/echo", content=b"a" * (LIMIT + 1)))


def test_a_chunked_body_over_the_limit_is_413(http):
    chunks = iter([b"a" * 600, b"b" * 600])  # no content-length: counted while read
    _assert_too_large(http.post("/echo", content=chunks))


def test_a_declared_length_over_the_limit_is_refused_before_any_body(url):
    # Content-Length says 10 MB and nothing follows: the answer comes at once, without
    # waiting for a body that never arrives.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nhost: x\r\napi-key: " + KEY.encode() + b"\r\n"
            b"content-length: 10000000\r\n\r\n"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b"request_too_large" in answer


def test_a_lying_content_length_is_caught_while_counting():
    # A server that does not enforce Content-Length framing could hand the app more bytes
    # than declared; read_body counts what arrives, whatever the header said.
    messages = [
        {"type": "http.request", "body": b"a" * 800, "more_body": True},
        {"type": "http.request", "body": b"b" * 800, "more_body": False},
    ]

    async def receive() -> dict:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"10")]}
    with pytest.raises(PayloadTooLargeError) as info:
        asyncio.run(read_body(Request(scope, receive), LIMIT))
    assert info.value.status == 413 and info.value.code == "request_too_large"
    assert info.value.param == "body"


# ---- the envelope and the catch-all -----------------------------------------------------


def test_error_body_omits_an_unknown_target():
    assert error_body("bad", "no") == {"error": {"code": "bad", "message": "no"}}
    assert error_body("bad", "no", "k") == {
        "error": {"code": "bad", "message": "no", "target": "k"}
    }


def test_a_rejection_is_the_envelope_with_its_headers(http):
    r = http.get("/refuse")
    assert r.status_code == 429
    assert r.json() == {"error": {"code": "too_many_requests", "message": "slow down"}}
    assert r.headers["x-ms-error-code"] == "too_many_requests"
    assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("2", "1500")


def test_unknown_route_and_wrong_method_are_envelopes(http):
    r = http.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = http.get("/echo")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["x-ms-error-code"] == "method_not_allowed" and "POST" in r.headers["allow"]


def test_an_unexpected_exception_is_a_500_envelope_without_its_text(http, caplog):
    with caplog.at_level(logging.ERROR):
        r = http.get("/boom")
        again = http.get("/healthz")  # the same connection: answered, not dropped
    assert r.status_code == 500
    assert r.json() == {
        "error": {"code": INTERNAL_ERROR, "message": "the toolkit app failed unexpectedly"}
    }
    assert r.headers["x-ms-error-code"] == INTERNAL_ERROR
    assert SECRET not in r.text
    assert again.status_code == 200
    (record,) = caplog.records  # logged once, by the catch-all; uvicorn saw no exception
    assert record.name == "tests.asgi" and record.exc_info is not None
    assert "GET /boom" in record.getMessage()


# ---- Prometheus text --------------------------------------------------------------------


def test_prometheus_round_trip():
    counters = Counters()
    counters.inc("app_requests_total", route="/a", status="200")
    counters.inc("app_requests_total", 2, route="/a", status="200")
    counters.inc("app_errors_total", code='we"ird\\path\nline')
    counters.inc("app_tokens_total", 12_345_678, route="/a")
    counters.set("app_ready", 1, index="texts")
    counters.set("app_ready", 0, index="texts")
    hist = Histogram((0.01, 0.1, 1.0))
    for seconds in (0.005, 0.05, 0.05, 5.0):
        hist.observe(seconds)
    lines = [
        *family(
            "app_requests_total", "counter", "Answers.", counters.samples("app_requests_total")
        ),
        *family("app_errors_total", "counter", "Errors.", counters.samples("app_errors_total")),
        *family("app_tokens_total", "counter", "Tokens.", counters.samples("app_tokens_total")),
        *family("app_ready", "gauge", "Ready.", counters.samples("app_ready")),
        *family("app_seconds", "histogram", "Time.", hist.samples("app_seconds")),
    ]
    text = render(lines)
    assert text.endswith("\n") and "# TYPE app_seconds histogram\n" in text
    assert "12345678" in text  # exact, not 1.23457e+06
    assert parse_metrics(text) == {
        'app_requests_total{route="/a",status="200"}': 3,
        'app_errors_total{code="we\\"ird\\\\path\\nline"}': 1,
        'app_tokens_total{route="/a"}': 12_345_678,
        'app_ready{index="texts"}': 0,
        'app_seconds_bucket{le="0.01"}': 1,
        'app_seconds_bucket{le="0.1"}': 3,
        'app_seconds_bucket{le="1.0"}': 3,
        'app_seconds_bucket{le="+Inf"}': 4,
        "app_seconds_sum": pytest.approx(5.105),
        "app_seconds_count": 4,
    }


def test_prometheus_numbers_and_samples():
    assert [number(v) for v in (0, 3.0, 0.5, 1e-7, 2**53)] == [
        "0",
        "3",
        "0.5",
        "1e-07",
        "9007199254740992",
    ]
    assert sample("up", 1) == "up 1"
    assert sample("x", 2, [("b", "1"), ("a", "2")]) == 'x{b="1",a="2"} 2'
    with pytest.raises(ValueError, match="increasing"):
        Histogram((1.0, 0.5))


# ---- serving ----------------------------------------------------------------------------


def test_bind_socket_refuses_a_port_in_use_and_names_it():
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert socket_url(sock) == f"http://127.0.0.1:{port}"
        with pytest.raises(ConfigError, match=f"port={port}"):
            bind_socket("127.0.0.1", port)


def test_wait_until_ready_stops_when_the_server_is_gone():
    with pytest.raises(ConfigError, match="stopped while starting"):
        wait_until_ready("http://127.0.0.1:9/x", lambda: False, 5, what="service")
    with pytest.raises(ConfigError, match="did not answer"):
        wait_until_ready("http://127.0.0.1:9/x", lambda: True, 0.05, what="service")


def test_the_toolkit_imports_neither_the_apps_nor_beam():
    code = (
        "import sys, corpusbeam.asgi.auth, corpusbeam.asgi.body, corpusbeam.asgi.errors, "
        "corpusbeam.asgi.prometheus, corpusbeam.asgi.serving; "
        "bad = [m for m in sys.modules if m.startswith(('corpusbeam.inference.server', "
        "'corpusbeam.retrieval', 'corpusbeam.cli')) or m.split('.')[0] "
        "in ('apache_beam', 'pipeline', 'transforms', 'faiss')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
