"""Token budgets: the limit known, learned from refusals and usage, counted with the
model's tokenizer; refusals of too-long inputs read in every shape services use."""

from __future__ import annotations

import pickle

import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import (
    ApiKey,
    ClientSettings,
    EmbeddingsClient,
    parse_error,
    read_model_info,
)
from corpusbeam.inference.errors import PayloadTooLargeError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.inference.token_budget import (
    LengthRefusal,
    TokenBudget,
    estimate_tokens,
    known_limit,
    length_refusal,
)
from tests.support.endpoints import KEY
from tests.support.scripted_endpoint import Answer, scripted_endpoint

LONG = " ".join(f"word{i}" for i in range(120))  # 120 hash tokens
SHORT = "a short text"


def _error(status: int, body: bytes):
    return parse_error(status, {}, body)


def test_length_refusals_in_each_shape():
    ref = _error(
        413,
        b'{"error":{"code":"input_too_long","message":"input 3 has 397 tokens, at most 256 '
        b'allowed","target":"input[3]"}}',
    )
    assert length_refusal(ref) == LengthRefusal(count=397, limit=256)
    tei = _error(
        413,
        b'{"error":"Input validation error: `inputs` must have less than 512 tokens. '
        b'Given: 785","error_type":"Validation"}',
    )
    assert length_refusal(tei) == LengthRefusal(count=785, limit=511)
    openai = _error(
        400,
        b'{"error":{"message":"This model\'s maximum context length is 8192 tokens, however '
        b'you requested 9000 tokens (9000 in your prompt; 0 for the completion).",'
        b'"type":"invalid_request_error","param":null,"code":null}}',
    )
    assert isinstance(openai, PayloadTooLargeError)
    assert length_refusal(openai) == LengthRefusal(count=9000, limit=8192)
    coded = _error(413, b'{"error":{"code":"input_too_long","message":"too long"}}')
    assert length_refusal(coded) == LengthRefusal(count=None, limit=None)
    # A whole request too large, too many inputs or a big image is not about one input's length.
    for code in ("request_too_large", "too_many_inputs", "image_too_large"):
        body = f'{{"error":{{"code":"{code}","message":"too large: 99 tokens"}}}}'.encode()
        assert length_refusal(_error(413, body)) is None
    assert length_refusal(ValueError("input has 5 tokens, at most 2")) is None


def test_known_limits_match_model_names():
    assert known_limit("all-MiniLM-L6-v2") == 256
    assert known_limit("sentence-transformers/all-MiniLM-L6-v2") == 256
    assert known_limit("Cohere-embed-v3-english") == 512
    assert known_limit("text-embedding-3-large") == 8192
    assert known_limit("some-unknown-model") is None and known_limit(None) is None


def test_the_budget_learns_the_limit_and_ratio_from_a_refusal():
    budget = TokenBudget(mode="calibrated")
    assert budget.usable() is None and budget.fits(LONG)
    text = "x" * 400  # estimate 100
    budget.observe_refusal(text, LengthRefusal(count=300, limit=64))
    assert budget.limit == 64 and budget.ratio == pytest.approx(3.0)
    assert budget.cost(text) == 300 and not budget.fits(text)
    assert budget.usable() == int(64 * budget.margin)
    # usage showing fewer tokens never lowers the ratio below what a refusal proved
    budget.observe_usage(1000, 500)
    assert budget.ratio == pytest.approx(3.0)
    # without a ratio to learn ("estimate"), only the limit is learnt
    bare = TokenBudget(mode="estimate")
    bare.observe_refusal(text, LengthRefusal(count=300, limit=64))
    assert (bare.limit, bare.ratio) == (64, 1.0)
    # an unstated limit: less than what was refused
    quiet = TokenBudget(mode="calibrated")
    quiet.observe_refusal(text, LengthRefusal(count=None, limit=None))
    assert quiet.limit == 99


def test_usage_calibrates_the_estimate():
    budget = TokenBudget(512, mode="calibrated")
    budget.observe_usage(1000, 1500)
    assert budget.ratio == pytest.approx(1.5)
    assert budget.cost("x" * 400) == 150


def test_minilm_tokenizer_counts_what_the_endpoint_counts(minilm_endpoint):
    budget = TokenBudget(256, model="all-MiniLM-L6-v2")
    assert budget.counter is not None and budget.usable() == 256  # exact: no margin
    texts = [SHORT, LONG[:400], "Ünïcödé and emoji 🙂 count too.", "x" * 300]
    with EmbeddingsClient(ClientSettings(endpoint=minilm_endpoint.url)) as client:
        for text in texts:
            usage = client.embed_texts([text]).usage.prompt_tokens
            assert budget.cost(text) == usage, text
    # pickled to the workers without the tokenizer, loaded again there
    again = pickle.loads(pickle.dumps(budget))
    assert again._counter is None and again.cost(LONG) == budget.cost(LONG)


def test_the_client_sends_no_input_it_knows_is_too_long():
    config = EndpointConfig(dimensions=64, max_input_tokens=64)
    texts = [SHORT, LONG, SHORT, LONG, LONG, SHORT, LONG]
    with running_endpoint(config) as ep:
        budget = TokenBudget(mode="calibrated")
        settings = ClientSettings(endpoint=ep.url, max_inputs=16, max_concurrency=1)
        with EmbeddingsClient(settings, budget=budget) as client:
            result = client.embed_texts(texts, errors="collect")
            assert sorted(result.failures) == [1, 3, 4, 6]
            assert all(length_refusal(e) for e in result.failures.values())
            assert client.stats.length_refusals == 1  # the first refusal taught the limit
            assert budget.limit == 64 and budget.cost(LONG) >= 120
            again = client.embed_texts([LONG, SHORT], errors="collect")
            assert list(again.failures) == [0] and client.stats.length_refusals == 1
        refused = ep.metrics()['corpusbeam_requests_total{route="/embeddings",status="413"}']
    assert refused == 1


def test_estimate_is_a_quarter_of_the_bytes():
    assert estimate_tokens("abcd" * 10) == 10 and estimate_tokens("a") == 1


def test_model_info_is_read_and_a_different_model_refused(endpoint):
    settings = ClientSettings(endpoint=endpoint.url, credential=ApiKey(KEY))
    info = read_model_info(settings, expected="CORPUSBEAM-HASH")  # names match case-blind
    assert (info.name, info.type, info.provider) == ("corpusbeam-hash", "embeddings", "corpusbeam")
    with pytest.raises(ConfigError, match=r"model.*serves 'corpusbeam-hash'"):
        read_model_info(settings, expected="text-embedding-3-small")


def test_an_endpoint_without_info_is_recorded_with_its_error():
    with scripted_endpoint() as ep:
        ep.script.append(Answer(404, {"error": {"code": "not_found", "message": "no route"}}))
        info = read_model_info(ClientSettings(endpoint=ep.url), expected="anything")
    assert info.name is None and "404" in info.error
