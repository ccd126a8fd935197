"""The six ``encoding_format`` values, to and from numpy, whole batches at a time.

On the wire (see ``shared/reference/protocol.md``):

=========  ====================  =============================================
format     one vector            meaning
=========  ====================  =============================================
float      d numbers             float32 values
base64     one string            base64 of the d float32 values, little-endian
int8       d ints in [-128,127]  scalar-quantised
uint8      d ints in [0,255]     scalar-quantised (int8 + 128)
ubinary    d/8 ints in [0,255]   one bit a dimension, 1 where the value is > 0,
                                 most significant bit first (numpy ``packbits``)
binary     d/8 ints in [-128,127] the ubinary byte minus 128
=========  ====================  =============================================

Decoded, every format has a *natural dtype*: float32 for float and base64, int8,
uint8, and packed uint8 bits (the ubinary bytes) for both bit formats, so that
binary and ubinary answers for the same vector decode to the same array. Decoders
return ``(n, width)`` arrays, where width is d, or d/8 for the bit formats.

``encode`` is the server's direction: float32 vectors in, JSON-ready payloads out.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference.errors import CodecError
from corpusbeam.inference.protocol import BIT_ENCODINGS, ENCODINGS

__all__ = [
    "BIT_ENCODINGS",
    "ENCODINGS",
    "check_encoding",
    "decode",
    "encode",
    "int8_range",
    "natural_dtype",
    "quantize",
    "unpack_bits",
    "wire_values",
    "wire_width",
]


_DTYPES = {
    "float": np.dtype(np.float32),
    "base64": np.dtype(np.float32),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "binary": np.dtype(np.uint8),
    "ubinary": np.dtype(np.uint8),
}
# Inclusive range of each integer format's numbers on the wire.
_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "binary": (-128, 127), "ubinary": (0, 255)}


def check_encoding(encoding: str) -> str:
    """Return ``encoding`` if it is one of the six formats, else raise ConfigError."""
    if encoding not in _DTYPES:
        raise ConfigError("encoding_format", encoding, f"must be one of {', '.join(ENCODINGS)}")
    return encoding


def natural_dtype(encoding: str) -> np.dtype:
    """The dtype ``decode`` returns for ``encoding``."""
    return _DTYPES[check_encoding(encoding)]


def wire_width(encoding: str, dimensions: int) -> int:
    """Numbers a vector of ``dimensions`` takes on the wire: d, or d/8 for bit formats."""
    check_encoding(encoding)
    if encoding in BIT_ENCODINGS:
        if dimensions % 8:
            raise ConfigError(
                "dimensions", dimensions, f"{encoding} needs a multiple of 8 dimensions"
            )
        return dimensions // 8
    return dimensions


def int8_range(dimensions: int) -> float:
    """The float magnitude that maps to +-127 when quantising unit vectors to int8.

    Components of an L2-normalised d-dimensional vector are about N(0, 1/d), so
    4/sqrt(d) covers them with room to spare while keeping resolution; never above 1.
    """
    return min(1.0, 4.0 / math.sqrt(dimensions))


def quantize(xb: np.ndarray, encoding: str) -> np.ndarray:
    """Float vectors ``(n, d)`` to ``encoding``'s natural dtype (see module docstring)."""
    check_encoding(encoding)
    xb = np.asarray(xb, dtype=np.float32)
    if xb.ndim != 2:
        raise CodecError(f"expected a 2-D array of vectors, got {xb.shape}", encoding=encoding)
    d = xb.shape[1]
    if encoding in ("float", "base64"):
        return np.ascontiguousarray(xb)
    if encoding in BIT_ENCODINGS:
        wire_width(encoding, d)
        return np.packbits(xb > 0, axis=1)
    q = np.clip(np.rint(xb * (127.0 / int8_range(d))), -128, 127)
    if encoding == "int8":
        return q.astype(np.int8)
    return (q + 128).astype(np.uint8)


def wire_values(xb: np.ndarray, encoding: str) -> np.ndarray | list[str]:
    """Float vectors ``(n, d)`` to the values sent on the wire, as numpy where possible.

    A numpy array (float32, int8, uint8, or int16 for binary) for the number formats, a
    list of strings for base64. ``orjson`` with ``OPT_SERIALIZE_NUMPY`` writes the arrays
    directly, float32 in their shortest exact form.
    """
    q = quantize(xb, encoding)
    if encoding == "base64":
        le = q.astype("<f4", copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in le]
    if encoding == "binary":
        return q.astype(np.int16) - 128
    return q


def encode(xb: np.ndarray, encoding: str) -> list:
    """Float vectors ``(n, d)`` to one JSON-ready embedding a row (Python lists)."""
    values = wire_values(xb, encoding)
    return values if isinstance(values, list) else values.tolist()


def decode(items: Sequence[object], encoding: str, *, dimensions: int | None = None) -> np.ndarray:
    """Embeddings as they came on the wire (already in input order) to ``(n, width)``.

    ``dimensions``, when given, is the vector length the caller asked for; each item
    must then have that many dimensions. Every problem raises CodecError naming the
    item index.
    """
    check_encoding(encoding)
    if not isinstance(items, list | tuple):
        raise CodecError(
            f"expected a list of embeddings, got {type(items).__name__}", encoding=encoding
        )
    expected = None if dimensions is None else wire_width(encoding, dimensions)
    if encoding == "base64":
        return _decode_base64(items, expected)
    return _decode_numbers(items, encoding, expected)


def unpack_bits(packed: np.ndarray, dimensions: int | None = None) -> np.ndarray:
    """Packed bit vectors ``(n, d/8)`` to ``(n, d)`` arrays of 0 and 1 (uint8)."""
    packed = np.asarray(packed, dtype=np.uint8)
    bits = np.unpackbits(packed, axis=-1)
    return bits if dimensions is None else bits[..., :dimensions]


def _width_of(items: Sequence[object], encoding: str, expected: int | None, kind: type) -> int:
    """Check each item has type ``kind`` and one common length; return that length."""
    width = expected
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise CodecError(
                f"expected {'a base64 string' if kind is str else 'a list of numbers'}, "
                f"got {type(item).__name__}",
                index=i,
                encoding=encoding,
            )
        size = len(item) if kind is list else _base64_bytes(item, i) // 4
        if width is None:
            width = size
        elif size != width:
            what = "expected" if expected is not None else "item 0 has"
            raise CodecError(f"has {size} values, {what} {width}", index=i, encoding=encoding)
    if width == 0:
        raise CodecError("empty embedding", index=0, encoding=encoding)
    return width if width is not None else 0


def _base64_bytes(item: str, index: int) -> int:
    # A base64 string of length L decodes to 3L/4 bytes minus the padding.
    size = len(item) // 4 * 3 - item[-2:].count("=") if len(item) % 4 == 0 else -1
    if size < 0 or size % 4:
        raise CodecError(
            "base64 does not hold a whole number of float32 values",
            index=index,
            encoding="base64",
        )
    return size


def _decode_base64(items: Sequence[object], expected: int | None) -> np.ndarray:
    width = _width_of(items, "base64", expected, str)
    chunks = []
    for i, item in enumerate(items):
        try:
            chunks.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise CodecError(f"not valid base64 ({exc})", index=i, encoding="base64") from None
    out = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(items), width)
    out = out.astype(np.float32, copy=False)
    _check_finite(out, "base64")
    return out


def _decode_numbers(items: Sequence[object], encoding: str, expected: int | None) -> np.ndarray:
    width = _width_of(items, encoding, expected, list)
    dtype = _DTYPES[encoding]
    if not items:
        return np.empty((0, width), dtype=dtype)
    try:
        raw = np.array(items)
    except (ValueError, TypeError) as exc:  # pragma: no cover - ragged lists are caught above
        raise CodecError(f"not an array of numbers ({exc})", encoding=encoding) from None
    if raw.dtype.kind not in "iuf" or (encoding != "float" and raw.dtype.kind == "f"):
        want = "numbers" if encoding == "float" else "integers"
        bad = _first_bad_item(items, encoding)
        raise CodecError(f"values must be {want}", index=bad, encoding=encoding)
    if encoding == "float":
        out = raw.astype(np.float32)
        _check_finite(out, encoding)
        return out
    lo, hi = _INT_RANGES[encoding]
    outside = (raw < lo) | (raw > hi)
    if outside.any():
        row, col = map(int, np.argwhere(outside)[0])
        raise CodecError(
            f"value {raw[row, col]} at position {col} is outside [{lo}, {hi}]",
            index=row,
            encoding=encoding,
        )
    if encoding == "binary":
        return (raw + 128).astype(np.uint8)
    return raw.astype(dtype)


def _first_bad_item(items: Sequence[object], encoding: str) -> int:
    integral = encoding != "float"
    for i, item in enumerate(items):
        for v in item:  # type: ignore[union-attr]
            if isinstance(v, bool) or not isinstance(v, int | float):
                return i
            if integral and not isinstance(v, int):
                return i
    return 0  # pragma: no cover - only reached when numpy and this scan disagree


def _check_finite(out: np.ndarray, encoding: str) -> None:
    finite = np.isfinite(out)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise CodecError("embedding holds NaN or infinity", index=row, encoding=encoding)
