"""Bits and int8 vectors derived from one float answer equal the endpoint's own answers."""

from __future__ import annotations

import numpy as np
import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from corpusbeam.inference.client import ClientSettings, EmbeddingsClient
from corpusbeam.inference.derive import derive_vectors, is_rescored, wire_encoding_for
from tests.support.endpoints import KEY

TEXTS = [
    "Binary codes keep one bit a dimension.",
    "The cat sat on the mat in the afternoon sun.",
    "Rescoring ranks candidates by their int8 dot product.",
    "ok",
    *(f"Sentence {i} talks about topic {i % 7} and the number {i * 13}." for i in range(40)),
]


def _embed(url: str, encoding: str, *, key: str | None = None) -> np.ndarray:
    from corpusbeam.inference.client import ApiKey

    settings = ClientSettings(
        endpoint=url,
        credential=ApiKey(key) if key else None,
        encoding_format=encoding,
        input_type="document",
        max_inputs=len(TEXTS),
    )
    with EmbeddingsClient(settings) as client:
        return client.embed_texts(TEXTS).vectors


def _check_against(url: str, key: str | None) -> None:
    xf = _embed(url, "float", key=key)
    for encoding in ("ubinary", "binary"):
        bits, rescore = derive_vectors(xf, encoding, "float")
        assert np.array_equal(bits, _embed(url, encoding, key=key))
        assert np.array_equal(rescore, _embed(url, "int8", key=key))
    b64 = _embed(url, "base64", key=key)
    bits = derive_vectors(b64, "ubinary", "base64")[0]
    assert np.array_equal(bits, _embed(url, "ubinary", key=key))
    assert np.array_equal(derive_vectors(xf, "uint8", "float")[0], _embed(url, "uint8", key=key))


def test_derived_bits_equal_the_hash_endpoints_answers(endpoint):
    _check_against(endpoint.url, KEY)


def test_derived_bits_equal_the_minilm_endpoints_answers(minilm_endpoint):
    _check_against(minilm_endpoint.url, None)


def test_wire_defaults_and_refusals():
    assert wire_encoding_for("ubinary") == "float"
    assert wire_encoding_for("binary") == "float"
    assert wire_encoding_for("int8") == "int8"
    assert wire_encoding_for("float") == "float"
    assert is_rescored("ubinary", "float") and not is_rescored("ubinary", "ubinary")
    assert is_rescored("int8", "int8") and not is_rescored("float", "float")
    with pytest.raises(ConfigError, match=r"wire_encoding.*float index"):
        wire_encoding_for("float", "int8")
    with pytest.raises(ConfigError, match="wire_encoding"):
        wire_encoding_for("int8", "ubinary")


def test_int8_wire_gives_bits_of_its_signs_and_rescores_with_itself():
    q = np.array([[5, -3, 0, 1, -128, 127, 2, -1]], dtype=np.int8)
    bits, rescore = derive_vectors(q, "ubinary", "int8")
    assert bits.tolist() == [[0b10010110]]
    assert np.array_equal(rescore, q)
    u = (q.astype(np.int16) + 128).astype(np.uint8)
    assert np.array_equal(derive_vectors(u, "ubinary", "uint8")[1], q)
    assert np.array_equal(derive_vectors(q, "uint8", "int8")[0], u)
    assert derive_vectors(q, "int8", "int8")[1] is None


def test_derived_bits_follow_the_protocol_example():
    x = np.array([[0.5, -0.1, 0.2, 0.0, -0.3, 0.9, -0.7, 0.1]], dtype=np.float32)
    bits, rescore = derive_vectors(x, "ubinary", "float")
    assert bits.tolist() == [[165]]
    assert np.array_equal(rescore, codec.quantize(x, "int8"))


def test_encoding_plan_is_the_table_decided_once():
    from corpusbeam.inference.derive import EncodingPlan

    assert EncodingPlan.of("ubinary") == EncodingPlan("ubinary", "float", True)
    assert EncodingPlan.of("ubinary", "ubinary") == EncodingPlan("ubinary", "ubinary", False)
    assert EncodingPlan.of("int8") == EncodingPlan("int8", "int8", True)
    assert EncodingPlan.of("float", "base64") == EncodingPlan("float", "base64", False)
    with pytest.raises(ConfigError, match="wire_encoding"):
        EncodingPlan.of("float", "int8")
