"""The six encodings: bit-exact against the protocol notes' worked example, round trips,
and a clear error naming the item for every kind of bad payload."""

import base64
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from corpusbeam.errors import ConfigError, CorpusbeamError
from corpusbeam.inference import codec
from corpusbeam.inference.errors import CodecError

# The protocol notes' worked example: bits 10100101, ubinary [165], binary [37].
EXAMPLE = np.array([[0.5, -0.1, 0.2, 0.0, -0.3, 0.9, -0.7, 0.1]], dtype=np.float32)


def test_worked_example_ubinary_and_binary():
    assert codec.encode(EXAMPLE, "ubinary") == [[165]]
    assert codec.encode(EXAMPLE, "binary") == [[37]]
    assert codec.decode([[165]], "ubinary").tolist() == [[165]]
    assert codec.decode([[37]], "binary").tolist() == [[165]]
    assert codec.unpack_bits(codec.decode([[37]], "binary")).tolist() == [[1, 0, 1, 0, 0, 1, 0, 1]]


def test_worked_example_float_and_base64():
    assert codec.decode(codec.encode(EXAMPLE, "float"), "float").tolist() == EXAMPLE.tolist()
    (b64,) = codec.encode(EXAMPLE, "base64")
    raw = base64.b64decode(b64)
    assert raw == struct.pack("<8f", *EXAMPLE[0].tolist())  # little-endian float32, in order
    np.testing.assert_array_equal(codec.decode([b64], "base64"), EXAMPLE)


def test_worked_example_int8_and_uint8():
    i8 = codec.encode(EXAMPLE, "int8")
    u8 = codec.encode(EXAMPLE, "uint8")
    assert [v + 128 for v in i8[0]] == u8[0]
    # Signs are kept and the largest magnitude maps furthest from zero.
    assert np.sign(i8[0]).tolist() == np.sign(EXAMPLE[0]).astype(int).tolist()
    assert abs(i8[0][5]) == max(abs(v) for v in i8[0])
    assert codec.decode(i8, "int8").dtype == np.int8
    assert codec.decode(u8, "uint8").dtype == np.uint8


def test_zero_is_a_zero_bit():
    # protocol.md: 1 where the value is positive; exactly 0 gives 0 (sentence-transformers' > 0).
    assert codec.encode(np.zeros((1, 8), np.float32), "ubinary") == [[0]]


@pytest.mark.parametrize("fmt", codec.ENCODINGS)
def test_natural_dtypes_and_shapes(fmt):
    xb = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    out = codec.decode(codec.encode(xb, fmt), fmt, dimensions=16)
    assert out.dtype == codec.natural_dtype(fmt)
    assert out.shape == (5, 2 if fmt in codec.BIT_ENCODINGS else 16)


def test_binary_and_ubinary_decode_to_the_same_bits():
    xb = np.random.default_rng(1).standard_normal((7, 64)).astype(np.float32)
    a = codec.decode(codec.encode(xb, "binary"), "binary")
    b = codec.decode(codec.encode(xb, "ubinary"), "ubinary")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(codec.unpack_bits(a), (xb > 0).astype(np.uint8))


vectors = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 8).map(lambda k: 8 * k)),
    elements=st.floats(-1, 1, width=32, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(vectors)
def test_float_and_base64_round_trip_exactly(xb):
    for fmt in ("float", "base64"):
        np.testing.assert_array_equal(codec.decode(codec.encode(xb, fmt), fmt), xb)


@settings(max_examples=60, deadline=None)
@given(vectors)
def test_bit_formats_round_trip_the_sign_bits(xb):
    for fmt in ("binary", "ubinary"):
        bits = codec.unpack_bits(codec.decode(codec.encode(xb, fmt), fmt))
        np.testing.assert_array_equal(bits, (xb > 0).astype(np.uint8))


@settings(max_examples=60, deadline=None)
@given(vectors)
def test_int_formats_round_trip_their_quantised_values(xb):
    for fmt in ("int8", "uint8"):
        q = codec.quantize(xb, fmt)
        np.testing.assert_array_equal(codec.decode(codec.encode(xb, fmt), fmt), q)
        # Dequantised values are within half a step of the clipped input.
        step = codec.int8_range(xb.shape[1]) / 127
        deq = (q.astype(np.float32) - (128 if fmt == "uint8" else 0)) * step
        clipped = np.clip(xb, -128 * step, 127 * step)
        assert np.all(np.abs(deq - clipped) <= step / 2 + 1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-128, 127), min_size=3, max_size=3), min_size=1, max_size=5))
def test_binary_wire_values_map_to_bytes_plus_128(items):
    out = codec.decode(items, "binary")
    assert out.tolist() == [[v + 128 for v in row] for row in items]


# ---- errors: each names the item index --------------------------------------------------


@pytest.mark.parametrize(
    ("items", "fmt", "dims", "needle", "index"),
    [
        ([[1.0, 2.0], [1.0]], "float", None, "has 1 values, item 0 has 2", 1),
        ([[1.0, 2.0], [1.0, 2.0, 3.0]], "float", None, "has 3 values", 1),
        ([[1.0, 2.0]], "float", 3, "has 2 values, expected 3", 0),
        ([[1, 2], [3, 200]], "int8", None, "value 200 at position 1 is outside [-128, 127]", 1),
        ([[0, -1]], "uint8", None, "outside [0, 255]", 0),
        ([[1, 2], [3, 4.5]], "int8", None, "values must be integers", 1),
        ([[256]], "ubinary", None, "outside [0, 255]", 0),
        ([[-129]], "binary", None, "outside [-128, 127]", 0),
        ([[1.0], ["x"]], "float", None, "values must be numbers", 1),
        ([[1.0], "abc"], "float", None, "expected a list of numbers, got str", 1),
        (["AAAAAA==", "!!!!!!=="], "base64", None, "not valid base64", 1),
        (["AAAAAAA="], "base64", None, "whole number of float32", 0),
        (["AAAAAA==", "AAAAAAA="], "base64", None, "whole number of float32", 1),
        ([[1.0, 2.0], [1.0, 2.0]], "base64", None, "expected a base64 string, got list", 0),
        (["AAAAAA==", "AAAAAAAAAAA="[:8] + "AAAAAAAA"], "base64", None, "has 3 values", 1),
        ([[]], "float", None, "empty embedding", 0),
        ([[1.0, float("nan")]], "float", None, "NaN or infinity", 0),
        (
            [base64.b64encode(struct.pack("<f", float("inf"))).decode()],
            "base64",
            None,
            "NaN or infinity",
            0,
        ),
        ([[1, 2], [3, 4]], "ubinary", 24, "has 2 values, expected 3", 0),
    ],
)
def test_bad_payloads_name_the_item(items, fmt, dims, needle, index):
    with pytest.raises(CodecError) as info:
        codec.decode(items, fmt, dimensions=dims)
    assert needle in str(info.value)
    assert info.value.index == index
    assert f"item {index}" in str(info.value)
    assert isinstance(info.value, CorpusbeamError)


def test_bit_formats_need_a_multiple_of_8_dimensions():
    with pytest.raises(ConfigError, match="multiple of 8"):
        codec.decode([[1, 2]], "ubinary", dimensions=12)
    with pytest.raises(ConfigError, match="multiple of 8"):
        codec.encode(np.ones((1, 12), np.float32), "binary")


def test_unknown_format_and_non_list_payload():
    with pytest.raises(ConfigError, match="encoding_format='int4'"):
        codec.decode([[1]], "int4")
    with pytest.raises(CodecError, match="expected a list of embeddings, got dict"):
        codec.decode({"a": 1}, "float")  # type: ignore[arg-type]


def test_empty_batch_decodes_to_an_empty_array():
    out = codec.decode([], "float", dimensions=4)
    assert out.shape == (0, 4) and out.dtype == np.float32


@pytest.mark.parametrize("fmt", codec.ENCODINGS)
def test_wire_values_serialise_like_encode(fmt):
    import json

    import orjson

    xb = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    fast = orjson.loads(orjson.dumps(codec.wire_values(xb, fmt), option=orjson.OPT_SERIALIZE_NUMPY))
    slow = json.loads(json.dumps(codec.encode(xb, fmt)))
    # float32 written in shortest form by orjson: other digits, the same float32 values.
    np.testing.assert_array_equal(codec.decode(fast, fmt), codec.decode(slow, fmt))
    np.testing.assert_array_equal(codec.decode(fast, fmt), codec.quantize(xb, fmt))
