"""The client against real endpoints on loopback: the local reference endpoint, and a
scripted server for answers the reference endpoint never gives. Time is injected, so
backoff and Retry-After waits are recorded rather than slept."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import numpy as np
import pytest

from corpusbeam.inference import codec
from corpusbeam.inference.client import (
    ApiKey,
    AsyncEmbeddingsClient,
    ClientSettings,
    EmbeddingsClient,
    EntraToken,
    EnvApiKey,
    ImageInput,
    RetryPolicy,
    Timeouts,
)
from corpusbeam.inference.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectError,
    ContentFilterError,
    DeadlineExceeded,
    EmbeddingError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    StatusError,
    UnprocessableError,
)
from corpusbeam.inference.server import EndpointConfig, FaultRates, running_endpoint
from tests.support.credentials import FakeTokenCredential
from tests.support.faketime import FakeTime
from tests.support.scripted_endpoint import Answer, scripted_endpoint

KEY = "test-key-not-secret"
TEXTS = [
    f"document number {i} about {topic}"
    for i, topic in enumerate(
        ["cats", "dogs", "boats", "trains", "rain", "snow", "tea", "bread"] * 3
    )
]


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig(api_key=KEY, dimensions=64)) as ep:
        yield ep


def client_for(url, *, time: FakeTime | None = None, credential=None, **settings):
    t = time or FakeTime()
    s = ClientSettings(endpoint=url, credential=credential, **settings)
    return EmbeddingsClient(s, clock=t.clock, sleep=t.sleep, wallclock=t.wallclock, seed=1)


# ---- encodings ----------------------------------------------------------------------------


def test_every_encoding_matches_the_float_answer(endpoint):
    with client_for(endpoint.url, credential=ApiKey(KEY)) as c:
        ref = c.embed_texts(TEXTS).vectors
        assert ref.shape == (len(TEXTS), 64) and ref.dtype == np.float32
        for fmt in codec.ENCODINGS:
            r = c.embed_texts(TEXTS, encoding_format=fmt)
            assert r.encoding_format == fmt and r.dimensions == 64
            assert r.vectors.dtype == codec.natural_dtype(fmt)
            np.testing.assert_array_equal(r.vectors, codec.quantize(ref, fmt))
        assert c.embed_texts(TEXTS[:3], dimensions=32).vectors.shape == (3, 32)
        q = c.embed_texts(TEXTS[:3], input_type="query").vectors
        assert not np.array_equal(q, ref[:3])
        assert c.stats.inputs_embedded > 0 and c.stats.prompt_tokens > 0


def test_many_requests_stay_in_input_order(endpoint):
    texts = [f"text {i} " + "word " * (i % 7) for i in range(500)]
    with client_for(endpoint.url, credential=ApiKey(KEY), max_inputs=16) as c:
        together = c.embed_texts(texts).vectors
        singly = c.embed_texts(texts[:20:3]).vectors
        assert c.stats.requests >= 32
    np.testing.assert_array_equal(together[:20:3], singly)


def test_images_and_image_with_text(endpoint, tmp_path):
    from PIL import Image

    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        p = tmp_path / f"im{i}.jpg"  # saved as PNG under a .jpg name: sniffed, not trusted
        Image.new("RGB", (32, 32), colour).save(p, format="PNG")
        paths.append(str(p))
    with client_for(endpoint.url, credential=ApiKey(KEY)) as c:
        r = c.embed_images([paths[0], ImageInput(image=paths[1], text="a blue square")])
        assert r.vectors.shape == (2, 64)
        assert r.usage.prompt_patches > 0


def test_async_client_directly(endpoint):
    async def go():
        s = ClientSettings(endpoint=endpoint.url, credential=ApiKey(KEY))
        async with AsyncEmbeddingsClient(s) as c:
            info = await c.info()
            r = await c.embed_texts(TEXTS[:4], encoding_format="ubinary")
        return info, r

    info, r = asyncio.run(go())
    assert info["model_name"] and r.vectors.shape == (4, 8)


# ---- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["both", "api-key", "bearer"])
def test_each_key_header(endpoint, header):
    with client_for(endpoint.url, credential=ApiKey(KEY, header=header)) as c:
        assert c.embed_texts(["hello"]).vectors.shape == (1, 64)


def test_key_from_environment_and_entra_token(endpoint, monkeypatch):
    monkeypatch.setenv("CB_ENDPOINT_KEY", KEY)
    with client_for(endpoint.url, credential=EnvApiKey(var="CB_ENDPOINT_KEY")) as c:
        assert len(c.embed_texts(["hello"])) == 1

    class KeyAsToken(FakeTokenCredential):
        def get_token(self, *scopes):
            token = super().get_token(*scopes)
            return type(token)(KEY, token.expires_on)

    with client_for(endpoint.url, credential=EntraToken(KeyAsToken())) as c:
        assert len(c.embed_texts(["hello"])) == 1


def test_wrong_key_is_not_retried_and_not_shown(endpoint):
    with client_for(endpoint.url, credential=ApiKey("wrong-key-xyz")) as c:
        with pytest.raises(AuthenticationError) as info:
            c.embed_texts(["hello"])
        assert c.stats.requests == 1
    assert info.value.status == 401 and info.value.code
    assert "wrong-key-xyz" not in str(info.value) and "wrong-key-xyz" not in repr(c)


# ---- retries: every header, every retried status --------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"x-ms-retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ("date", 20.0),
    ],
)
def test_each_retry_header_is_honoured(headers, expected_wait):
    t = FakeTime()
    if headers == "date":
        headers = {"retry-after": formatdate(t.wallclock() + 20, usegmt=True)}
    with scripted_endpoint() as ep:
        ep.script.append(Answer(429, {"error": {"code": "rate", "message": "slow down"}}, headers))
        with client_for(ep.url, time=t) as c:
            r = c.embed_texts(["a", "b"])
            assert c.stats.throttled == 1 and c.stats.retries == 1
        assert r.vectors[:, 0].tolist() == [0.0, 1.0]
    assert sum(t.sleeps) == pytest.approx(expected_wait, abs=1.0 if headers == "date" else 1e-6)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retried_statuses_back_off_without_a_header(status):
    t = FakeTime()
    with scripted_endpoint() as ep:
        for _ in range(3):
            ep.script.append(Answer(status, {"error": {"code": "x", "message": "again"}}))
        with client_for(ep.url, time=t, retry=RetryPolicy(initial_backoff=1, max_backoff=4)) as c:
            c.embed_texts(["a"])
            assert c.stats.retries == 3
    # Full jitter in [cap/2, cap] with caps 1, 2, 4.
    assert 3.5 <= sum(t.sleeps) <= 7.0 and len(ep.requests) == 4


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": {"code": "bad", "message": "no"}}, BadRequestError),
        (401, {"error": "Unauthorized", "message": "no", "status": 401}, AuthenticationError),
        (403, {"error": {"code": "Forbidden", "message": "no"}}, AuthenticationError),
        (404, {"error": "NotFound", "message": "no", "status": 404}, NotFoundError),
        (
            422,
            {"detail": [{"type": "x", "loc": ["body", "dimensions"], "msg": "no", "input": 7}]},
            UnprocessableError,
        ),
    ],
)
def test_never_retried_statuses(status, body, error):
    with scripted_endpoint() as ep:
        ep.script.append(Answer(status, body, {"x-request-id": "req-42"}))
        with client_for(ep.url) as c, pytest.raises(error) as info:
            c.embed_texts(["a", "b"])
        assert len(ep.requests) == 1
    assert info.value.status == status and "req-42" in str(info.value)


def test_422_names_the_parameter(endpoint):
    with client_for(endpoint.url, credential=ApiKey(KEY)) as c:
        with pytest.raises(UnprocessableError) as info:
            c.embed_texts(["a"], dimensions=1000)
        assert c.stats.requests == 1
    assert info.value.param == "dimensions" and "dimensions" in str(info.value)


def test_413_splits_instead_of_retrying(endpoint):
    # The reference endpoint takes 96 inputs a request; this client sends 200 at once.
    texts = [f"t{i}" for i in range(200)]
    with client_for(endpoint.url, credential=ApiKey(KEY), max_inputs=200) as c:
        r = c.embed_texts(texts)
        assert c.stats.splits >= 1 and c.stats.retries == 0
    assert r.vectors.shape == (200, 64) and not r.failures


def test_metadata_headers_and_extras_reach_the_endpoint():
    with scripted_endpoint() as ep:
        with client_for(
            ep.url,
            credential=ApiKey("k", header="api-key"),
            deployment="dep-1",
            model="m1",
            extras={"truncate": "END"},
            api_version="2025-04-01",
            input_type="document",
            encoding_format="int8",
        ) as c:
            c.embed_texts(["a"], encoding_format="float")
        (req,) = ep.requests
    assert req["headers"]["azureml-model-deployment"] == "dep-1"
    assert req["headers"]["extra-parameters"] == "pass-through"
    assert req["headers"]["api-key"] == "k" and "authorization" not in req["headers"]
    assert req["body"] == {
        "input": ["a"],
        "truncate": "END",
        "input_type": "document",
        "model": "m1",
    }


# ---- faults on the reference endpoint ---------------------------------------------------------


@pytest.mark.parametrize("fault", ["server_error", "drop", "truncate"])
def test_faults_are_retried_until_success(fault):
    faults = FaultRates(**{fault: 0.5})
    with running_endpoint(EndpointConfig(faults=faults, seed=3, dimensions=16)) as ep:
        with client_for(ep.url, max_inputs=4) as c:
            r = c.embed_texts(TEXTS, errors="raise")
            assert c.stats.retries > 0
        with client_for(ep.url) as c:
            clean = c.embed_texts(TEXTS[:4])
    assert r.vectors.shape == (len(TEXTS), 16)
    # Identical to what a fault-free exchange gives: nothing was garbled on the way.
    assert np.array_equal(r.vectors[:4], clean.vectors) or fault != "truncate"


def test_dropped_connection_is_a_connect_error_and_deadline_bounds_it():
    t = FakeTime()
    with running_endpoint(EndpointConfig(faults=FaultRates(drop=1.0), dimensions=16)) as ep:
        with client_for(
            ep.url, time=t, retry=RetryPolicy(deadline=20, initial_backoff=1, max_backoff=8)
        ) as c:
            with pytest.raises(DeadlineExceeded) as info:
                c.embed_texts(["a"])
            attempts = c.stats.requests
    assert isinstance(info.value.last, ConnectError)
    assert sum(t.sleeps) <= 20 and attempts >= 3


def test_stall_times_out_and_collect_mode_records_inputs():
    t = FakeTime()
    cfg = EndpointConfig(faults=FaultRates(stall=1.0), stall_seconds=5.0, dimensions=16)
    with (
        running_endpoint(cfg) as ep,
        client_for(
            ep.url,
            time=t,
            timeouts=Timeouts(read=0.2),
            retry=RetryPolicy(max_attempts=2, initial_backoff=0.1),
        ) as c,
    ):
        r = c.embed_texts(["a", "b", "c"], errors="collect")
    assert set(r.failures) == {0, 1, 2}
    assert all(isinstance(e, EmbeddingError) for e in r.failures.values())
    assert not r.ok.any()


# ---- one bad input never costs its neighbours --------------------------------------------------


def test_content_filter_is_bisected_to_the_one_input():
    texts = list(TEXTS)
    texts[13] = "this one says forbidden things"
    with running_endpoint(EndpointConfig(blocked_words=("forbidden",), dimensions=16)) as ep:
        with client_for(ep.url) as c:
            r = c.embed_texts(texts, errors="collect")
            assert c.stats.splits >= 3
            alone = c.embed_texts([texts[0], texts[23]]).vectors
            with pytest.raises(ContentFilterError) as info:
                c.embed_texts(texts)
    assert list(r.failures) == [13] and isinstance(r.failures[13], ContentFilterError)
    assert r.ok.sum() == len(texts) - 1
    np.testing.assert_array_equal(r.vectors[[0, 23]], alone)
    assert not r.vectors[13].any()
    assert any("input 13" in note for note in info.value.__notes__)


def test_an_input_named_by_the_error_fails_alone(endpoint):
    texts = ["short", "word " * 2000, "also short"]
    with client_for(endpoint.url, credential=ApiKey(KEY)) as c:
        r = c.embed_texts(texts, errors="collect")
    assert list(r.failures) == [1]
    assert isinstance(r.failures[1], PayloadTooLargeError | StatusError)
    assert r.ok.tolist() == [True, False, True]


def test_server_errors_exhausting_retries_are_collected_per_input():
    with scripted_endpoint() as ep:
        for _ in range(5):
            ep.script.append(Answer(500, {"error": {"code": "boom", "message": "down"}}))
        with client_for(ep.url, retry=RetryPolicy(max_attempts=2), max_inputs=2) as c:
            r = c.embed_texts(["a", "b", "c", "d"], errors="collect")
    # Chunk [a, b] got two 500s; chunk [c, d] got a 500 then more 500s or success.
    assert all(isinstance(e, ServerError) for e in r.failures.values())
    assert len(r.failures) + int(r.ok.sum()) == 4 and 0 in r.failures
