"""``parse_body`` directly, for rules no built-in model can reach over HTTP."""

from __future__ import annotations

import json

import pytest

from corpusbeam.inference.errors import PayloadTooLargeError, UnprocessableError
from corpusbeam.inference.server.hashmodel import HashModel
from corpusbeam.inference.server.validation import parse_body


class OddDimensionsModel(HashModel):
    """A hash model that claims to support 12 dimensions (not a multiple of 8)."""

    def __init__(self) -> None:
        super().__init__(16)
        self.supported_dimensions = frozenset({12, 16})


def parse(body: dict, model=None, **kw):
    return parse_body(
        json.dumps(body).encode(),
        image_route=False,
        extra_mode="error",
        model=model or HashModel(16),
        max_inputs=4,
        **kw,
    )


@pytest.mark.parametrize("fmt", ["binary", "ubinary"])
def test_bit_formats_need_a_multiple_of_8_dimensions(fmt):
    model = OddDimensionsModel()
    assert parse({"input": ["x"], "dimensions": 12}, model).dimensions == 12
    with pytest.raises(UnprocessableError) as info:
        parse({"input": ["x"], "dimensions": 12, "encoding_format": fmt}, model)
    assert info.value.status == 422 and info.value.param == "dimensions"
    assert "12" in info.value.message and fmt in info.value.message


def test_defaults_and_pass_through_names():
    req = parse_body(
        b'{"input": "one", "seed": 1}',
        image_route=False,
        extra_mode="pass-through",
        model=HashModel(16),
        max_inputs=4,
    )
    assert (req.texts, req.dimensions, req.encoding_format, req.input_type) == (
        ("one",),
        16,
        "float",
        "text",
    )
    assert req.extra_keys == ("seed",)


def test_rejections_are_the_status_error_tree():
    with pytest.raises(PayloadTooLargeError) as info:
        parse({"input": ["x"] * 5})
    assert info.value.status == 413 and info.value.code == "too_many_inputs"
