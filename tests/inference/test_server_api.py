"""The endpoint's successful answers: shapes, order, usage, encodings, /info, /metrics."""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pytest

from corpusbeam.inference import codec
from corpusbeam.inference.server import API_VERSION
from tests.support.endpoints import KEY, data_url
from tests.support.images import near_duplicate, scene

TEXTS = ["the cat sat on the mat", "a dog barked at the mailman", "quarterly revenue rose 10%"]


def embed(client, texts=TEXTS, **params):
    r = client.post("/embeddings", json={"input": texts, **params})
    assert r.status_code == 200, r.text
    return r.json()


def floats(body) -> np.ndarray:
    data = sorted(body["data"], key=lambda d: d["index"])
    return codec.decode([d["embedding"] for d in data], "float")


def test_text_response_shape(client):
    body = embed(client)
    assert set(body) == {"id", "object", "data", "model", "usage"}
    assert body["object"] == "list"
    assert body["model"] == "corpusbeam-hash"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in body["data"])
    xb = floats(body)
    assert xb.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1.0, rtol=1e-5)


def test_response_headers_carry_a_request_id(client):
    r = client.post("/embeddings", json={"input": ["x"]})
    rid = r.headers["x-request-id"]
    assert uuid.UUID(rid) and r.headers["apim-request-id"] == rid
    assert r.json()["id"] == rid


def test_data_follows_input_order(client):
    one_by_one = np.vstack([floats(embed(client, [t])) for t in TEXTS])
    np.testing.assert_allclose(floats(embed(client)), one_by_one, atol=1e-6)
    reversed_ = floats(embed(client, TEXTS[::-1]))
    np.testing.assert_allclose(reversed_[::-1], one_by_one, atol=1e-6)


def test_usage_counts_tokens(client):
    # "the cat sat on the mat" = 6, "a dog barked at the mailman" = 6,
    # "quarterly revenue rose 10%" = 5 (10 and % are two tokens)
    assert embed(client)["usage"] == {"prompt_tokens": 17, "total_tokens": 17}


def test_single_string_input_is_accepted(client):
    body = embed(client, "just one text")
    assert len(body["data"]) == 1
    np.testing.assert_allclose(floats(body), floats(embed(client, ["just one text"])), atol=1e-6)


def test_null_options_mean_defaults(client):
    body = embed(client, dimensions=None, encoding_format=None, input_type=None, model=None)
    np.testing.assert_allclose(floats(body), floats(embed(client)), atol=1e-6)


def test_model_field_is_ignored(client):
    np.testing.assert_allclose(
        floats(embed(client, model="some-other-model")), floats(embed(client)), atol=1e-6
    )


@pytest.mark.parametrize("fmt", codec.ENCODINGS)
@pytest.mark.parametrize("dims", [256, 64])
def test_every_encoding_matches_the_float_answer(client, fmt, dims):
    xf = floats(embed(client, dimensions=dims))
    body = embed(client, dimensions=dims, encoding_format=fmt)
    got = codec.decode(
        [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])],
        fmt,
        dimensions=dims,
    )
    if fmt in ("float", "base64"):
        np.testing.assert_array_equal(got, xf)
    elif fmt in codec.BIT_ENCODINGS:
        np.testing.assert_array_equal(codec.unpack_bits(got, dims), (xf > 0).astype(np.uint8))
    else:
        np.testing.assert_array_equal(got, codec.quantize(xf, fmt))
        # and the quantised values track the floats
        q = got.astype(np.float32) - (128 if fmt == "uint8" else 0)
        assert np.corrcoef(q.ravel(), xf.ravel())[0, 1] > 0.95


def test_base64_is_little_endian_float32(client):
    body = embed(client, ["x"], encoding_format="base64")
    assert isinstance(body["data"][0]["embedding"], str)


def test_dimensions_truncate_and_renormalise(client):
    full = floats(embed(client))
    short = floats(embed(client, dimensions=32))
    assert short.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, rtol=1e-5)
    expected = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-6)


def test_input_type_changes_the_vector(client):
    text, query, doc = (floats(embed(client, input_type=t)) for t in ("text", "query", "document"))
    assert not np.allclose(query, doc) and not np.allclose(query, text)
    assert (query * doc).sum(axis=1).min() > 0.9  # still the same texts
    # and queries still find their documents
    assert ((query @ doc.T).argmax(axis=1) == np.arange(3)).all()


def test_image_route_shape_usage_and_order(client):
    images = [scene(0), scene(1, (200, 100)), scene(2, (50, 400))]
    r = client.post(
        "/images/embeddings",
        json={"input": [{"image": data_url(im)} for im in images], "dimensions": 128},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    # 320x240 -> 224x168: 14*11; 200x100 -> 224x112: 14*7; 50x400 -> 28x224: 2*14
    patches = 14 * 11 + 14 * 7 + 2 * 14
    assert body["usage"] == {
        "prompt_tokens": patches,
        "total_tokens": patches,
        "prompt_patches": patches,
        "total_patches": patches,
    }
    xb = floats(body)
    assert xb.shape == (3, 128)


def test_image_with_text_adds_text_tokens(client):
    url = data_url(scene(0, (224, 224)))
    alone = client.post("/images/embeddings", json={"input": [{"image": url}]}).json()
    both = client.post(
        "/images/embeddings", json={"input": [{"image": url, "text": "red square"}]}
    ).json()
    assert alone["usage"]["prompt_tokens"] == 196
    assert both["usage"]["prompt_tokens"] == 198 and both["usage"]["prompt_patches"] == 196
    assert not np.allclose(floats(alone), floats(both))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_image_formats(client, fmt):
    r = client.post("/images/embeddings", json={"input": [{"image": data_url(scene(1), fmt)}]})
    assert r.status_code == 200, r.text


def test_near_duplicate_image_is_closer_than_a_different_one(client):
    urls = [
        data_url(scene(0)),
        data_url(near_duplicate(scene(0)), "JPEG", quality=70),
        data_url(scene(1)),
    ]
    xb = floats(
        client.post("/images/embeddings", json={"input": [{"image": u} for u in urls]}).json()
    )
    assert xb[0] @ xb[1] > 0.9
    assert xb[0] @ xb[1] > xb[0] @ xb[2] + 0.3


def test_info(client):
    r = client.get("/info")
    assert r.status_code == 200
    assert r.json() == {
        "model_name": "corpusbeam-hash",
        "model_type": "embeddings",
        "model_provider_name": "corpusbeam",
    }


def test_any_api_version_is_accepted(bare_client):
    for version in ("2024-04-01-preview", "2025-04-01", "anything"):
        r = bare_client.post(
            "/embeddings",
            params={"api-version": version},
            headers={"api-key": KEY},
            json={"input": ["x"]},
        )
        assert r.status_code == 200


def test_metrics_count_requests_inputs_tokens_and_errors(endpoint, client):
    before = endpoint.metrics()
    embed(client, ["one two", "three"])
    client.post("/embeddings", json={"input": ["x"], "dimensions": 7})
    after = endpoint.metrics()

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    assert delta('corpusbeam_requests_total{route="/embeddings",status="200"}') == 1
    assert delta('corpusbeam_requests_total{route="/embeddings",status="422"}') == 1
    assert delta('corpusbeam_inputs_total{route="/embeddings"}') == 2
    assert delta('corpusbeam_tokens_total{route="/embeddings"}') == 3
    assert delta('corpusbeam_errors_total{code="unsupported_parameter"}') == 1


def test_metrics_text_format(bare_client):
    r = bare_client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE corpusbeam_requests_total counter" in r.text


def test_api_version_constant():
    assert API_VERSION == "2024-05-01-preview"


def test_request_log_line_names_deployment_and_pass_through_but_not_the_key(client, caplog):
    caplog.set_level(logging.INFO, logger="corpusbeam.inference.server")
    r = client.post(
        "/embeddings",
        headers={"azureml-model-deployment": "blue-7", "extra-parameters": "pass-through"},
        json={"input": ["x"], "truncate": "END"},
    )
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 5  # the server logs just after the answer has gone out
    while not (lines := [m.getMessage() for m in caplog.records if rid in m.getMessage()]):
        assert time.monotonic() < deadline, "no request log line"
        time.sleep(0.01)
    (line,) = lines
    assert line.startswith("POST /embeddings 200 ")
    assert "deployment=blue-7" in line and "pass_through=truncate" in line
    assert KEY not in caplog.text
