"""Client parts that need no endpoint: error bodies, retry headers, credentials, images,
settings validation and the throttle's arithmetic under injected time."""

import asyncio
import json
import pickle
from email.utils import formatdate

import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import (
    ApiKey,
    ClientSettings,
    EntraToken,
    EnvApiKey,
    RetryPolicy,
    Throttle,
    image_data_url,
    parse_error,
    retry_after_seconds,
    sniff_image_format,
)
from corpusbeam.inference.client.responses import input_position, parse_embeddings
from corpusbeam.inference.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    UnprocessableError,
)
from tests.support.credentials import FakeTokenCredential
from tests.support.faketime import FakeTime


def _err(status, body, headers=None):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_error(status, headers or {}, content)


# ---- every error-body shape in protocol.md ----------------------------------------------


def test_spec_shape():
    e = _err(
        422,
        {"error": {"code": "invalid_dimensions", "message": "bad dims", "target": "dimensions"}},
        {"x-request-id": "r-1"},
    )
    assert isinstance(e, UnprocessableError)
    assert (e.code, e.param, e.request_id) == ("invalid_dimensions", "dimensions", "r-1")
    assert "bad dims" in str(e) and "param=dimensions" in str(e) and "r-1" in str(e)


def test_reference_doc_shape_401_404_429():
    e = _err(401, {"error": "Unauthorized", "message": "bad key", "status": 401})
    assert isinstance(e, AuthenticationError) and e.code == "Unauthorized"
    assert isinstance(
        _err(404, {"error": "NotFound", "message": "x", "status": 404}), NotFoundError
    )
    assert isinstance(
        _err(429, {"error": "TooMany", "message": "x", "status": 429}), RateLimitError
    )


def test_reference_doc_422_with_detail_dict():
    e = _err(
        422,
        {
            "code": "UserError",
            "detail": {"loc": ["body", "dimensions"], "value": 7},
            "error": "Unprocessable",
            "message": "dims not supported",
            "status": 422,
        },
    )
    assert e.param == "dimensions" and e.value == 7 and e.code == "UserError"
    e2 = _err(422, {"detail": {"loc": ["body", "input_type"], "input": "x"}, "message": "m"})
    assert e2.param == "input_type" and e2.value == "x"


def test_fastapi_shapes():
    e = _err(
        422,
        {
            "detail": [
                {
                    "type": "int_parsing",
                    "loc": ["body", "dimensions"],
                    "msg": "Input should be a valid integer",
                    "input": "abc",
                }
            ]
        },
    )
    assert (e.param, e.value, e.code) == ("dimensions", "abc", "int_parsing")
    assert "valid integer" in e.message
    e = _err(400, {"detail": "Extra parameters ['foo'] are not allowed"})
    assert isinstance(e, BadRequestError) and "foo" in e.message


def test_content_filter_shape():
    e = _err(
        400, {"status": 400, "code": "content_filter", "message": "filtered", "param": "input"}
    )
    assert isinstance(e, ContentFilterError) and e.param == "input"


def test_code_from_header_and_non_json_body():
    e = _err(503, b"<html>upstream down</html>", {"x-ms-error-code": "ServiceUnavailable"})
    assert isinstance(e, ServerError) and e.code == "ServiceUnavailable"
    assert "upstream down" in e.message


def test_size_refusals_become_payload_too_large():
    assert isinstance(_err(413, {"error": {"code": "x", "message": "y"}}), PayloadTooLargeError)
    e = _err(400, {"message": "too many texts: batch exceeds the maximum of 96 inputs"})
    assert isinstance(e, PayloadTooLargeError)
    e = _err(
        422,
        {
            "error": {
                "code": "input_too_long",
                "message": "input has 900 tokens",
                "target": "input[3]",
            }
        },
    )
    assert isinstance(e, PayloadTooLargeError) and input_position(e) == 3
    assert isinstance(_err(400, {"message": "too many cooks"}), BadRequestError)


# ---- retry headers ------------------------------------------------------------------------


def test_retry_after_headers_in_order_of_precision():
    now = 1_700_000_000.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "3"}, now) == 0.25
    assert retry_after_seconds({"x-ms-retry-after-ms": "1500"}, now) == 1.5
    assert retry_after_seconds({"retry-after": "7"}, now) == 7.0
    date = formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now) == pytest.approx(30, abs=1)
    assert retry_after_seconds({"retry-after": formatdate(now - 30, usegmt=True)}, now) == 0
    assert retry_after_seconds({"retry-after": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None


def test_retry_policy_validation_and_backoff():
    import random

    with pytest.raises(ConfigError, match="never retried"):
        RetryPolicy(retry_statuses=frozenset({429, 422}))
    with pytest.raises(ConfigError, match="max_attempts=0"):
        RetryPolicy(max_attempts=0)
    p = RetryPolicy(initial_backoff=1, max_backoff=8)
    rng = random.Random(0)
    waits = [p.backoff(i, rng) for i in range(1, 8)]
    assert all(0.5 <= waits[0] <= 1 for _ in [0])
    assert all(w <= 8 for w in waits) and waits[-1] >= 4


# ---- credentials: never shown, never pickled ---------------------------------------------


def test_api_key_is_masked_and_not_picklable():
    key = ApiKey("sekrit-123")
    assert "sekrit" not in repr(key)
    assert key.headers() == {"api-key": "sekrit-123", "Authorization": "Bearer sekrit-123"}
    assert ApiKey("k", header="api-key").headers() == {"api-key": "k"}
    assert ApiKey("k", header="bearer").headers() == {"Authorization": "Bearer k"}
    with pytest.raises(TypeError, match="EnvApiKey"):
        pickle.dumps(key)
    settings = ClientSettings(endpoint="http://x", credential=key)
    assert "sekrit" not in repr(settings)
    with pytest.raises(ConfigError, match="header='cookie'"):
        ApiKey("k", header="cookie")  # type: ignore[arg-type]


def test_env_api_key_reads_at_use_and_pickles_without_the_secret(monkeypatch):
    cred = EnvApiKey(var="CB_TEST_KEY")
    blob = pickle.dumps(cred)
    assert b"from-env" not in blob
    monkeypatch.setenv("CB_TEST_KEY", "from-env")
    assert pickle.loads(blob).headers()["api-key"] == "from-env"
    monkeypatch.delenv("CB_TEST_KEY")
    with pytest.raises(ConfigError, match=r"CB_TEST_KEY.*not set"):
        cred.headers()


def test_entra_token_is_cached_and_refreshed_before_expiry():
    t = FakeTime(wall=1_700_000_000.0)
    fake = FakeTokenCredential()
    cred = EntraToken(fake, wallclock=t.wallclock)
    assert cred.headers() == {"Authorization": "Bearer token-1"}
    assert fake.scopes == ("https://ml.azure.com/.default",)
    t.now += 3000  # 10 minutes before expiry: cached
    assert cred.headers()["Authorization"] == "Bearer token-1"
    t.now += 400  # inside the 5-minute margin: refreshed
    assert cred.headers()["Authorization"] == "Bearer token-2"
    assert "token" not in repr(cred).replace("EntraToken", "")


# ---- images ----------------------------------------------------------------------------


def test_image_format_sniffed_from_bytes_not_name(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
    assert sniff_image_format(png) == "png"
    assert sniff_image_format(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff_image_format(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert sniff_image_format(b"GIF89a...") == "gif"
    path = tmp_path / "photo.jpg"
    path.write_bytes(png)
    assert image_data_url(path).startswith("data:image/png;base64,")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ConfigError, match=r"notes\.png.*is not a png"):
        image_data_url(tmp_path / "notes.png")
    with pytest.raises(ConfigError, match="cannot be read"):
        image_data_url(tmp_path / "missing.png")


# ---- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"endpoint": "ftp://x"}, "endpoint='ftp://x'"),
        ({"encoding_format": "int4"}, "encoding_format='int4'"),
        ({"input_type": "search_query"}, "input_type='search_query'"),
        ({"extra_parameters": "ignore"}, "extra_parameters='ignore'"),
        ({"encoding_format": "binary", "dimensions": 12}, "multiple of 8"),
        ({"max_concurrency": 0}, "max_concurrency=0"),
        ({"extras": {"input": 1}}, "extras="),
    ],
)
def test_settings_name_the_bad_field(kwargs, needle):
    kwargs = {"endpoint": "http://127.0.0.1:1", **kwargs}
    with pytest.raises(ConfigError) as info:
        ClientSettings(**kwargs)
    assert needle in str(info.value)


def test_extras_switch_on_pass_through():
    s = ClientSettings(endpoint="http://h/", extras={"truncate": "END"}, deployment="d1")
    assert s.endpoint == "http://h"
    h = s.request_headers()
    assert h["extra-parameters"] == "pass-through" and h["azureml-model-deployment"] == "d1"


# ---- responses -----------------------------------------------------------------------------


def test_results_are_ordered_by_index_and_checked():
    body = {
        "id": "x",
        "model": "m",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
    }
    r = parse_embeddings(json.dumps(body).encode(), n_inputs=2, encoding="float", dimensions=None)
    assert r.vectors[:, 0].tolist() == [1.0, 2.0] and r.usage.prompt_tokens == 3
    for data, needle in [
        ([{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}], "repeats index 0"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [2.0]}], "valid index"),
        ([{"index": 0, "embedding": [1.0]}], "1 embeddings for 2 inputs"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}], "item 1"),
    ]:
        with pytest.raises(ResponseFormatError, match=needle):
            parse_embeddings(
                json.dumps({**body, "data": data}).encode(),
                n_inputs=2,
                encoding="float",
                dimensions=None,
            )
    with pytest.raises(ResponseFormatError, match="not JSON"):
        parse_embeddings(b'{"data": [', n_inputs=1, encoding="float", dimensions=None)


# ---- throttle ------------------------------------------------------------------------------


def test_throttle_aimd_and_pause_gate():
    t = FakeTime()

    async def scenario():
        th = Throttle(max_concurrency=8, clock=t.clock, sleep=t.sleep)
        tickets = [await th.acquire() for _ in range(8)]
        assert th.in_flight == 8
        # Two 429s from the same window halve the limit once, and pause every sender.
        await th.release(tickets[0], throttled=True, retry_after=2.0)
        await th.release(tickets[1], throttled=True, retry_after=2.0)
        assert th.limit == 4.0
        before = t.now
        for tk in tickets[2:]:
            await th.release(tk, ok=True)
        ticket = await th.acquire()
        assert t.now - before >= 2.0  # waited for the gate
        assert th.rate is not None  # pacing switched on
        await th.release(ticket, ok=True)
        assert 5.0 < th.limit < 6.0  # additive increase: +1/limit for each of 7 successes

    asyncio.run(scenario())


def test_throttle_budget_paces_requests():
    t = FakeTime()

    async def scenario():
        th = Throttle(max_concurrency=4, clock=t.clock, sleep=t.sleep, rpm=60)
        start = t.now
        for _ in range(30):
            await th.release(await th.acquire(), ok=True)
        # 10 s of burst (10 requests) then one a second: 30 requests take about 20 s.
        assert 19 <= t.now - start <= 21

    asyncio.run(scenario())


def test_requests_are_packed_by_count_and_weight():
    from corpusbeam.inference.client.packing import pack_requests

    assert pack_requests([1] * 5, 2, None) == [[0, 1], [2, 3], [4]]
    assert pack_requests([3, 3, 3, 10, 1], 10, 6) == [[0, 1], [2], [3], [4]]
    assert pack_requests([], 4, 4) == []
