"""The ``minilm`` model behind the endpoint: real semantics, 384 dimensions, text only."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from corpusbeam.inference import codec
from corpusbeam.inference.server import API_VERSION
from tests.support.endpoints import data_url
from tests.support.images import scene

pytestmark = pytest.mark.minilm

V = {"api-version": API_VERSION}


@pytest.fixture(scope="module")
def mclient(minilm_endpoint):
    with httpx.Client(base_url=minilm_endpoint.url, params=V, timeout=60) as c:
        yield c


def test_info(mclient):
    assert mclient.get("/info").json() == {
        "model_name": "all-MiniLM-L6-v2",
        "model_type": "embeddings",
        "model_provider_name": "sentence-transformers",
    }


def test_embeddings_are_semantic(mclient):
    texts = [
        "A man is playing a guitar.",
        "Someone strums an acoustic instrument.",
        "The stock market fell sharply today.",
    ]
    r = mclient.post("/embeddings", json={"input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    xb = codec.decode([d["embedding"] for d in body["data"]], "float", dimensions=384)
    np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1.0, rtol=1e-4)
    assert xb[0] @ xb[1] > xb[0] @ xb[2] + 0.2
    # WordPiece counts with [CLS] and [SEP]: 8 + 2 for the first text
    assert body["usage"]["prompt_tokens"] > 3 * 2


@pytest.mark.parametrize("fmt", ["ubinary", "int8", "base64"])
def test_encodings(mclient, fmt):
    xf = mclient.post("/embeddings", json={"input": ["hello world"]}).json()["data"][0]
    body = mclient.post("/embeddings", json={"input": ["hello world"], "encoding_format": fmt})
    got = codec.decode([body.json()["data"][0]["embedding"]], fmt, dimensions=384)
    ref = np.array([xf["embedding"]], dtype=np.float32)
    if fmt == "ubinary":
        np.testing.assert_array_equal(codec.unpack_bits(got), (ref > 0).astype(np.uint8))
    elif fmt == "int8":
        np.testing.assert_array_equal(got, codec.quantize(ref, "int8"))
    else:
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dims", [256, 128, 768])
def test_other_dimensions_are_422(mclient, dims):
    r = mclient.post("/embeddings", json={"input": ["x"], "dimensions": dims})
    assert r.status_code == 422
    assert r.json()["error"]["target"] == "dimensions"


def test_384_dimensions_are_accepted(mclient):
    assert mclient.post("/embeddings", json={"input": ["x"], "dimensions": 384}).status_code == 200


def test_images_are_404_modality_not_supported(mclient):
    r = mclient.post("/images/embeddings", json={"input": [{"image": data_url(scene(0))}]})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "modality_not_supported"
    assert r.headers["x-ms-error-code"] == "modality_not_supported"


def test_token_limit_is_the_models_256(mclient):
    ok = " ".join(["word"] * 254)  # + [CLS] and [SEP] = 256
    assert mclient.post("/embeddings", json={"input": [ok]}).status_code == 200
    r = mclient.post("/embeddings", json={"input": ["fine", ok + " word"]})
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "input_too_long" and error["target"] == "input[1]"
    assert "256" in error["message"]
