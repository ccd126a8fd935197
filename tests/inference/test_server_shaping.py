"""Load shaping as a client sees it: 429 budgets, faults, stalls, latency, concurrency."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from corpusbeam.inference.server import API_VERSION, EndpointConfig, FaultRates, running_endpoint

V = {"api-version": API_VERSION}


def post(ep, texts=("x",), timeout=10.0, **kw) -> httpx.Response:
    return httpx.post(
        f"{ep.url}/embeddings", params=V, json={"input": list(texts)}, timeout=timeout, **kw
    )


def test_rpm_budget_answers_429_with_retry_after():
    with running_endpoint(EndpointConfig(rpm=3)) as ep:
        assert [post(ep).status_code for _ in range(3)] == [200, 200, 200]
        r = post(ep)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "too_many_requests"
        assert r.headers["x-ms-error-code"] == "too_many_requests"
        retry_after = int(r.headers["Retry-After"])
        retry_ms = int(r.headers["retry-after-ms"])
        assert 1 <= retry_after <= 60
        assert 55_000 < retry_ms <= 60_000  # the first request frees its slot in ~60 s
        assert retry_after == math.ceil(retry_ms / 1000)
        # the refused request did not use the budget, and other routes are not limited
        assert httpx.get(f"{ep.url}/info", params=V).status_code == 200
        assert ep.metrics()['corpusbeam_errors_total{code="too_many_requests"}'] == 1


def test_tpm_budget_answers_429_and_an_oversized_request_413():
    with running_endpoint(EndpointConfig(tpm=10)) as ep:
        six = ["one two three four five six"]
        assert post(ep, six).status_code == 200
        r = post(ep, six)
        assert r.status_code == 429 and "Retry-After" in r.headers
        assert post(ep, ["four more tokens here"]).status_code == 200  # 6 + 4 = 10 fits
        r = post(ep, [" ".join(["w"] * 11)])
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_too_large"


def test_server_error_fault_answers_500_or_503_in_spec_shape():
    with running_endpoint(EndpointConfig(faults=FaultRates(server_error=1.0), seed=3)) as ep:
        statuses = set()
        for _ in range(12):
            r = post(ep)
            statuses.add(r.status_code)
            code = r.json()["error"]["code"]
            assert code in ("internal_server_error", "service_unavailable")
            assert r.headers["x-ms-error-code"] == code
        assert statuses == {500, 503}
        # faults apply to the embeddings routes only
        assert httpx.get(f"{ep.url}/info", params=V).status_code == 200


def test_drop_fault_closes_the_connection_without_an_answer():
    with running_endpoint(EndpointConfig(faults=FaultRates(drop=1.0))) as ep:
        for _ in range(5):
            # Normally "Server disconnected without sending a response"; a reset is a drop too.
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                post(ep)
        assert ep.metrics()['corpusbeam_requests_total{route="/embeddings",status="dropped"}'] == 5


def test_truncate_fault_sends_part_of_a_200_body():
    cfg = EndpointConfig(faults=FaultRates(truncate=1.0))
    with running_endpoint(cfg) as ep, httpx.Client(timeout=10) as c:
        with c.stream("POST", f"{ep.url}/embeddings", params=V, json={"input": ["x"]}) as r:
            assert r.status_code == 200
            declared = int(r.headers["content-length"])
            got = bytearray()
            with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
                for chunk in r.iter_raw():
                    got += chunk
            assert 0 < len(got) < declared
        # and the plain way raises too
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(f"{ep.url}/embeddings", params=V, json={"input": ["x"]})


def test_stall_fault_answers_late():
    cfg = EndpointConfig(faults=FaultRates(stall=1.0), stall_seconds=0.4)
    with running_endpoint(cfg) as ep:
        with pytest.raises(httpx.ReadTimeout):
            post(ep, timeout=0.2)
        started = time.perf_counter()
        r = post(ep, timeout=5)
        assert r.status_code == 200
        assert time.perf_counter() - started >= 0.35


def test_faults_are_repeatable_with_a_seed():
    def outcomes(seed):
        cfg = EndpointConfig(faults=FaultRates(server_error=0.5), seed=seed)
        with running_endpoint(cfg) as ep:
            return [post(ep).status_code for _ in range(16)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert 200 in first and (500 in first or 503 in first)


def test_latency_is_added():
    with running_endpoint(EndpointConfig(latency_ms=(150.0, 200.0))) as ep:
        started = time.perf_counter()
        assert post(ep).status_code == 200
        assert 0.15 <= time.perf_counter() - started < 2


def test_max_concurrency_queues_requests():
    with running_endpoint(EndpointConfig(latency_ms=(300.0, 300.0), max_concurrency=1)) as ep:
        started = time.perf_counter()
        with ThreadPoolExecutor(3) as pool:
            statuses = list(pool.map(lambda _: post(ep).status_code, range(3)))
        assert statuses == [200, 200, 200]
        assert time.perf_counter() - started >= 0.9  # one at a time
    with running_endpoint(EndpointConfig(latency_ms=(300.0, 300.0))) as ep:
        started = time.perf_counter()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda _: post(ep).status_code, range(3)))
        assert time.perf_counter() - started < 0.85  # all at once
