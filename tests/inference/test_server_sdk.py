"""The official Python SDK (azure-ai-inference) against the local endpoint.

The SDK sends ``api-version=2024-05-01-preview`` and, with an ``AzureKeyCredential``, the key
in both ``api-key`` and ``Authorization: Bearer``. It returns base64 embeddings as the string
it received (it does not decode them), and the integer formats as lists of ints.
"""

from __future__ import annotations

import numpy as np
import pytest
from azure.ai.inference import EmbeddingsClient, ImageEmbeddingsClient
from azure.ai.inference.models import (
    EmbeddingEncodingFormat,
    EmbeddingInputType,
    ImageEmbeddingInput,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from corpusbeam.inference import codec
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from tests.support.endpoints import KEY, data_url
from tests.support.images import scene

TEXTS = ["first document about cats", "second about dogs", "third about birds"]


@pytest.fixture(scope="module")
def sdk(endpoint):
    with EmbeddingsClient(endpoint=endpoint.url, credential=AzureKeyCredential(KEY)) as c:
        yield c


def _decode(result, fmt: str, dims: int) -> np.ndarray:
    items = sorted(result.data, key=lambda d: d.index)
    return codec.decode([d.embedding for d in items], fmt, dimensions=dims)


def test_model_info(sdk):
    info = sdk.get_model_info()
    assert info.model_name == "corpusbeam-hash"
    assert info.model_type == "embeddings"
    assert info.model_provider_name == "corpusbeam"


@pytest.mark.parametrize("fmt", list(EmbeddingEncodingFormat))
def test_every_encoding_through_the_sdk(sdk, fmt):
    ref = sdk.embed(input=TEXTS, dimensions=64, input_type=EmbeddingInputType.DOCUMENT)
    xf = _decode(ref, "float", 64)
    result = sdk.embed(
        input=TEXTS, dimensions=64, input_type=EmbeddingInputType.DOCUMENT, encoding_format=fmt
    )
    assert result.model == "corpusbeam-hash"
    assert result.usage.prompt_tokens == result.usage.total_tokens == 10
    got = _decode(result, fmt.value, 64)
    if fmt.value in ("float", "base64"):
        np.testing.assert_array_equal(got, xf)
    elif fmt.value in codec.BIT_ENCODINGS:
        np.testing.assert_array_equal(codec.unpack_bits(got), (xf > 0).astype(np.uint8))
    else:
        np.testing.assert_array_equal(got, codec.quantize(xf, fmt.value))


def test_input_type_through_the_sdk(sdk):
    q = _decode(sdk.embed(input=TEXTS, input_type="query"), "float", 256)
    d = _decode(sdk.embed(input=TEXTS, input_type="document"), "float", 256)
    assert not np.allclose(q, d)


def test_image_embeddings_through_the_sdk(endpoint):
    with ImageEmbeddingsClient(endpoint=endpoint.url, credential=AzureKeyCredential(KEY)) as c:
        result = c.embed(
            input=[
                ImageEmbeddingInput(image=data_url(scene(0))),
                ImageEmbeddingInput(image=data_url(scene(1)), text="a green picture"),
            ],
            dimensions=32,
            encoding_format="ubinary",
        )
    assert [d.index for d in result.data] == [0, 1]
    assert _decode(result, "ubinary", 32).shape == (2, 4)
    assert result.usage.prompt_tokens > 0


def test_model_extras_are_passed_through(sdk):
    result = sdk.embed(input=["x"], model_extras={"truncate": "END"})
    assert len(result.data) == 1


def test_401_is_parsed_by_the_sdk(endpoint):
    credential = AzureKeyCredential("wrong")
    with (
        EmbeddingsClient(endpoint=endpoint.url, credential=credential) as c,
        pytest.raises(ClientAuthenticationError) as info,
    ):
        c.embed(input=["x"])
    assert info.value.status_code == 401
    assert info.value.error.code == "unauthorized"


def test_422_is_parsed_by_the_sdk(sdk):
    with pytest.raises(HttpResponseError) as info:
        sdk.embed(input=["x"], dimensions=12)
    assert info.value.status_code == 422
    assert info.value.error.code == "unsupported_parameter"
    assert info.value.error.target == "dimensions"


def test_429_is_parsed_by_the_sdk():
    # retry_total=0: azure-core would otherwise wait out Retry-After (about a minute)
    with (
        running_endpoint(EndpointConfig(rpm=1, api_key=KEY)) as ep,
        EmbeddingsClient(endpoint=ep.url, credential=AzureKeyCredential(KEY), retry_total=0) as c,
    ):
        c.embed(input=["x"])
        with pytest.raises(HttpResponseError) as info:
            c.embed(input=["x"])
    assert info.value.status_code == 429
    assert info.value.error.code == "too_many_requests"
    assert int(info.value.response.headers["Retry-After"]) >= 1
