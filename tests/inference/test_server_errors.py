"""Every way the endpoint refuses a request: status, spec error shape, code and target."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from corpusbeam.inference.server import API_VERSION
from tests.support.endpoints import BLOCKED, KEY, SMALL_LIMITS, data_url
from tests.support.images import scene

V = {"api-version": API_VERSION}


def assert_error(r, status: int, code: str, target: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert r.headers["x-ms-error-code"] == code
    assert r.headers["x-request-id"]
    if target is None:
        assert "target" not in error
    else:
        assert error["target"] == target
    assert KEY not in r.text
    return error


# -- api-version and auth -------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/embeddings", "/images/embeddings"])
@pytest.mark.parametrize("params", [{}, {"api-version": ""}])
def test_api_version_is_required(bare_client, route, params):
    r = bare_client.post(route, params=params, headers={"api-key": KEY}, json={"input": ["x"]})
    assert_error(r, 400, "missing_api_version", "api-version")


def test_api_version_is_required_on_info(bare_client):
    assert_error(
        bare_client.get("/info", headers={"api-key": KEY}),
        400,
        "missing_api_version",
        "api-version",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"api-key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},  # no scheme
        {"Authorization": f"Basic {KEY}"},
        {"api-key": ""},
    ],
    ids=["none", "wrong-api-key", "wrong-bearer", "no-scheme", "basic", "empty"],
)
@pytest.mark.parametrize("route", ["/embeddings", "/images/embeddings", "/info"])
def test_a_missing_or_wrong_key_is_401(bare_client, headers, route):
    if route == "/info":
        r = bare_client.get(route, params=V, headers=headers)
    else:
        r = bare_client.post(route, params=V, headers=headers, json={"input": ["x"]})
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        {"api-key": KEY},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {KEY}"},
        {"api-key": "wrong", "Authorization": f"Bearer {KEY}"},  # either may carry it
    ],
    ids=["api-key", "bearer", "bearer-lowercase", "both"],
)
def test_the_right_key_in_either_header_is_accepted(bare_client, headers):
    r = bare_client.post("/embeddings", params=V, headers=headers, json={"input": ["x"]})
    assert r.status_code == 200, r.text


def test_auth_is_checked_before_api_version(bare_client):
    assert_error(bare_client.post("/embeddings", json={"input": ["x"]}), 401, "unauthorized")


# -- extra-parameters -----------------------------------------------------------------------


def test_unknown_keys_are_rejected_by_default(client):
    r = client.post("/embeddings", json={"input": ["x"], "truncate": "END", "alpha": 1})
    error = assert_error(r, 400, "extra_parameters_not_allowed", "alpha")
    assert "truncate" in error["message"] and "alpha" in error["message"]


def test_extra_parameters_error_rejects(client):
    r = client.post(
        "/embeddings", headers={"extra-parameters": "error"}, json={"input": ["x"], "foo": 1}
    )
    assert_error(r, 400, "extra_parameters_not_allowed", "foo")


@pytest.mark.parametrize("mode", ["drop", "pass-through"])
def test_extra_parameters_drop_and_pass_through_accept(client, mode):
    plain = client.post("/embeddings", json={"input": ["x"]}).json()["data"]
    r = client.post(
        "/embeddings", headers={"extra-parameters": mode}, json={"input": ["x"], "foo": 1}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"] == plain


@pytest.mark.parametrize("value", ["ignore", "", "ERROR"])
def test_unknown_extra_parameters_value_is_400(client, value):
    r = client.post("/embeddings", headers={"extra-parameters": value}, json={"input": ["x"]})
    assert_error(r, 400, "invalid_header", "extra-parameters")


def test_deployment_header_is_accepted(client):
    r = client.post(
        "/embeddings", headers={"azureml-model-deployment": "blue"}, json={"input": ["x"]}
    )
    assert r.status_code == 200


# -- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "target"),
    [
        ({}, "missing_input", "input"),
        ({"input": None}, "missing_input", "input"),
        ({"input": 5}, "invalid_request", "input"),
        ({"input": {"a": 1}}, "invalid_request", "input"),
        ({"input": []}, "empty_input", "input"),
        ({"input": ["ok", 3]}, "invalid_request", "input[1]"),
        ({"input": ["ok", ""]}, "empty_input", "input[1]"),
        ({"input": ["   \n"]}, "empty_input", "input[0]"),
        ({"input": ["x"], "dimensions": "64"}, "invalid_request", "dimensions"),
        ({"input": ["x"], "dimensions": 64.5}, "invalid_request", "dimensions"),
        ({"input": ["x"], "dimensions": True}, "invalid_request", "dimensions"),
        ({"input": ["x"], "encoding_format": 1}, "invalid_request", "encoding_format"),
        ({"input": ["x"], "input_type": ["query"]}, "invalid_request", "input_type"),
        ({"input": ["x"], "model": 3}, "invalid_request", "model"),
    ],
)
def test_malformed_text_requests_are_400(client, body, code, target):
    assert_error(client.post("/embeddings", json=body), 400, code, target)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(client, raw):
    r = client.post("/embeddings", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] in ("invalid_json", "invalid_request")


@pytest.mark.parametrize(
    ("item", "code", "target"),
    [
        ("data:image/png;base64,AAAA", "invalid_image", "input[0].image"),
        ({"text": "no image"}, "invalid_request", "input[0].image"),
        ({"image": 5}, "invalid_request", "input[0].image"),
        ({"image": "http://example.com/a.png"}, "invalid_image", "input[0].image"),
        ({"image": "data:text/plain;base64,aGk="}, "invalid_image", "input[0].image"),
        ({"image": "data:image/png;base64,not base64!"}, "invalid_image", "input[0].image"),
        ({"image": "data:image/png;base64,aGVsbG8="}, "invalid_image", "input[0].image"),
    ],
)
def test_bad_image_inputs_are_400(client, item, code, target):
    if isinstance(item, str):
        item = {"image": item}
    assert_error(client.post("/images/embeddings", json={"input": [item]}), 400, code, target)


def test_bad_image_names_its_index(client):
    good = data_url(scene(0))
    truncated_png = good[: len(good) // 2 // 4 * 4]
    r = client.post(
        "/images/embeddings", json={"input": [{"image": good}, {"image": truncated_png}]}
    )
    assert_error(r, 400, "invalid_image", "input[1].image")


def test_image_text_must_be_a_string(client):
    r = client.post(
        "/images/embeddings", json={"input": [{"image": data_url(scene(0)), "text": 3}]}
    )
    assert_error(r, 400, "invalid_request", "input[0].text")


# -- 422: values the model does not support -------------------------------------------------


@pytest.mark.parametrize("dims", [0, 7, 12, 257, 512, -8])
@pytest.mark.parametrize("route", ["/embeddings", "/images/embeddings"])
def test_unsupported_dimensions_are_422(client, dims, route):
    item = "x" if route == "/embeddings" else {"image": data_url(scene(0))}
    error = assert_error(
        client.post(route, json={"input": [item], "dimensions": dims}),
        422,
        "unsupported_parameter",
        "dimensions",
    )
    assert str(dims) in error["message"]


@pytest.mark.parametrize("fmt", ["float16", "FLOAT", "bit", ""])
def test_unsupported_encoding_format_is_422(client, fmt):
    error = assert_error(
        client.post("/embeddings", json={"input": ["x"], "encoding_format": fmt}),
        422,
        "unsupported_parameter",
        "encoding_format",
    )
    assert repr(fmt) in error["message"]


@pytest.mark.parametrize("value", ["search_query", "search_document", "classification", ""])
def test_unsupported_input_type_is_422(client, value):
    error = assert_error(
        client.post("/embeddings", json={"input": ["x"], "input_type": value}),
        422,
        "unsupported_parameter",
        "input_type",
    )
    assert repr(value) in error["message"]


# -- 413: limits a client fixes by splitting ------------------------------------------------


def test_too_many_inputs_is_413(client):
    n = SMALL_LIMITS["max_inputs"]
    assert client.post("/embeddings", json={"input": ["x"] * n}).status_code == 200
    r = client.post("/embeddings", json={"input": ["x"] * (n + 1)})
    assert_error(r, 413, "too_many_inputs", "input")


def test_too_many_images_is_413(client):
    n = SMALL_LIMITS["max_inputs"]
    url = data_url(Image.new("RGB", (4, 4)))
    r = client.post("/images/embeddings", json={"input": [{"image": url}] * (n + 1)})
    assert_error(r, 413, "too_many_inputs", "input")


def test_an_input_over_the_token_limit_is_413(client):
    limit = SMALL_LIMITS["max_input_tokens"]
    ok = " ".join(["w"] * limit)
    assert client.post("/embeddings", json={"input": [ok]}).status_code == 200
    r = client.post("/embeddings", json={"input": ["short", ok + " w"]})
    error = assert_error(r, 413, "input_too_long", "input[1]")
    assert str(limit) in error["message"]


def test_image_text_over_the_token_limit_is_413(client):
    long_text = " ".join(["w"] * (SMALL_LIMITS["max_input_tokens"] + 1))
    r = client.post(
        "/images/embeddings", json={"input": [{"image": data_url(scene(0)), "text": long_text}]}
    )
    assert_error(r, 413, "input_too_long", "input[0].text")


def test_a_body_over_the_byte_limit_is_413(client):
    big = "word " * (SMALL_LIMITS["max_request_bytes"] // 5 + 10)
    assert_error(
        client.post("/embeddings", json={"input": [big]}), 413, "request_too_large", "body"
    )


def test_a_chunked_body_over_the_byte_limit_is_413(client):
    big = json.dumps({"input": ["word " * (SMALL_LIMITS["max_request_bytes"] // 5 + 10)]})

    def chunks():
        data = big.encode()
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = client.post("/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "request_too_large", "body")


def _noise_png(w: int, h: int) -> bytes:
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_an_image_over_the_byte_limit_is_413(client):
    raw = _noise_png(200, 200)  # ~120 kB of noise, over the 100 kB limit
    assert len(raw) > SMALL_LIMITS["max_image_bytes"]
    url = "data:image/png;base64," + base64.b64encode(raw).decode()
    small = data_url(scene(0))
    r = client.post("/images/embeddings", json={"input": [{"image": small}, {"image": url}]})
    assert_error(r, 413, "image_too_large", "input[1].image")


def test_an_image_over_the_pixel_limit_is_413(client):
    url = data_url(Image.new("RGB", (1001, 1000), (9, 9, 9)))  # compresses to a few kB
    r = client.post("/images/embeddings", json={"input": [{"image": url}]})
    error = assert_error(r, 413, "image_too_large", "input[0].image")
    assert "1001x1000" in error["message"]


# -- content filter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "texts", [[BLOCKED], ["fine", f"this has {BLOCKED.upper()} in it"], [f"({BLOCKED})"]]
)
def test_a_blocked_word_is_refused_without_saying_which_input(client, texts):
    error = assert_error(
        client.post("/embeddings", json={"input": texts}), 400, "content_filter", "input"
    )
    assert BLOCKED not in error["message"].lower()
    for i in range(len(texts)):
        assert f"[{i}]" not in error["message"]


def test_a_blocked_word_inside_another_word_passes(client):
    assert client.post("/embeddings", json={"input": [f"x{BLOCKED}y"]}).status_code == 200


def test_a_blocked_word_in_image_text_is_refused(client):
    r = client.post(
        "/images/embeddings", json={"input": [{"image": data_url(scene(0)), "text": BLOCKED}]}
    )
    assert_error(r, 400, "content_filter", "input")


# -- routes -----------------------------------------------------------------------------------


def test_unknown_route_is_404_in_spec_shape(client):
    assert_error(client.post("/chat/completions", json={}), 404, "not_found")


def test_wrong_method_is_405_in_spec_shape(client):
    r = client.get("/embeddings")
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


@pytest.mark.parametrize("mode", ["I;16", "F", "CMYK", "LA", "1", "P"])
def test_unusual_image_modes_are_embedded(client, mode):
    base = scene(0, (100, 80))
    im = base.convert("L").convert(mode) if mode in ("I;16", "F") else base.convert(mode)
    fmt = "TIFF" if mode in ("F", "CMYK") else "PNG"
    r = client.post("/images/embeddings", json={"input": [{"image": data_url(im, fmt)}]})
    assert r.status_code == 200, r.text


def test_exif_orientation_is_applied(client):
    im = scene(1)
    rotated = im.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to view": undoes the ROTATE_90 (counter-clockwise) above
    urls = [data_url(im, "JPEG", quality=95), data_url(rotated, "JPEG", quality=95, exif=exif)]
    body = client.post("/images/embeddings", json={"input": [{"image": u} for u in urls]}).json()
    a, b = (np.array(d["embedding"]) for d in body["data"])
    assert a @ b > 0.95
    assert body["usage"]["prompt_patches"] == 2 * 14 * 11  # both seen as 320x240
