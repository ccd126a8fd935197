"""What to ask the endpoint for, and what to derive locally, for an index's encoding.

An index's encoding (what FAISS stores) and the wire encoding (what each request asks
for) need not be the same. A binary index searched on its bits alone loses much of float
search's top 10; rescoring its candidates with int8 vectors keeps nearly all of it. So a
binary index asks the endpoint for ``float`` once and derives both here, with the
quantiser the reference endpoint uses (``corpusbeam.inference.codec.quantize``): the packed sign
bits equal the endpoint's own ``ubinary`` answer bit for bit, and the int8 rescoring
vectors its ``int8`` answer.

===================  ==================  =========================================
index encoding       wire (default)      stored
===================  ==================  =========================================
float, base64        the same            float32 vectors
int8, uint8          the same            the bytes (they rescore themselves)
binary, ubinary      ``float``           packed bits + int8 rescoring vectors
binary, ubinary      binary / ubinary    packed bits only: *unrescored* (opt-in)
===================  ==================  =========================================

Other pairs that work: a ``base64`` wire for anything (floats, smaller on the wire); an
``int8``/``uint8`` wire for an int8, uint8 or bit index (bits are then the int8 values'
signs, and the int8 values rescore). Every other pair is a ``ConfigError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from corpusbeam.inference.protocol import BIT_ENCODINGS

__all__ = [
    "EncodingPlan",
    "default_wire_encoding",
    "derive_vectors",
    "is_rescored",
    "wire_encoding_for",
]

_FLOATS = ("float", "base64")
_INTS = ("int8", "uint8")


def default_wire_encoding(encoding: str) -> str:
    """What to request for an index of ``encoding`` when the user names no wire format."""
    codec.check_encoding(encoding)
    return "float" if encoding in BIT_ENCODINGS else encoding


def wire_encoding_for(encoding: str, wire: str | None = None) -> str:
    """``wire`` checked against the index ``encoding`` (None: the default)."""
    codec.check_encoding(encoding)
    if wire is None:
        return default_wire_encoding(encoding)
    codec.check_encoding(wire)
    allowed = {
        "float": _FLOATS,
        "base64": _FLOATS,
        "int8": (*_FLOATS, *_INTS),
        "uint8": (*_FLOATS, *_INTS),
        "binary": (*_FLOATS, *_INTS, *BIT_ENCODINGS),
        "ubinary": (*_FLOATS, *_INTS, *BIT_ENCODINGS),
    }[encoding]
    if wire not in allowed:
        raise ConfigError(
            "wire_encoding",
            wire,
            f"cannot give a {encoding} index its vectors; use one of {', '.join(allowed)}",
        )
    return wire


def is_rescored(encoding: str, wire: str) -> bool:
    """Whether an index of ``encoding`` fed by ``wire`` answers have rescoring vectors."""
    if encoding in BIT_ENCODINGS:
        return wire not in BIT_ENCODINGS
    return encoding in _INTS


@dataclass(frozen=True)
class EncodingPlan:
    """An index's encoding and the wire encoding that feeds it, decided once.

    ``EncodingPlan.of`` is the one place a job works the pair out (the table above);
    everything after it (the requests, the decoding, the reuse check, the manifest, the
    report) reads these fields instead of deriving them again.
    """

    index: str  # what FAISS stores
    wire: str  # what each request asks for
    rescored: bool  # whether the index keeps rescoring vectors

    @classmethod
    def of(cls, index: str, wire: str | None = None) -> EncodingPlan:
        """The plan for an ``index`` encoding fed by ``wire`` (None: the default); a pair
        that cannot work is a ``ConfigError`` naming ``wire_encoding``."""
        wire = wire_encoding_for(index, wire)
        return cls(index=index, wire=wire, rescored=is_rescored(index, wire))


def _as_int8(x: np.ndarray, wire: str) -> np.ndarray:
    if wire == "uint8":
        return (x.astype(np.int16) - 128).astype(np.int8)
    return x.astype(np.int8, copy=False)


def derive_vectors(x: np.ndarray, encoding: str, wire: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Decoded ``wire`` answers ``(n, width)`` to (the index's vectors in ``encoding``'s
    natural dtype, int8 rescoring vectors ``(n, d)`` or None).

    Rescoring vectors are returned only for bit indexes (int8 and uint8 indexes rescore
    with their own bytes, so they need no second copy).
    """
    wire_encoding_for(encoding, wire)
    x = np.asarray(x)
    if x.ndim != 2:
        raise ConfigError("vectors", x.shape, "expected a 2-D array, one row an input")
    if wire in BIT_ENCODINGS or (encoding == wire):
        return x.astype(codec.natural_dtype(encoding), copy=False), None
    if wire in _FLOATS:
        xb = codec.quantize(x, encoding)
        rescore = codec.quantize(x, "int8") if encoding in BIT_ENCODINGS else None
        return xb, rescore
    q = _as_int8(x, wire)  # an int8 or uint8 wire
    if encoding in BIT_ENCODINGS:
        return np.packbits(q > 0, axis=1), q
    if encoding == "uint8":
        return (q.astype(np.int16) + 128).astype(np.uint8), None
    return q, None
