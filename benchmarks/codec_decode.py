"""Decode throughput of each ``encoding_format`` at d=1024, batch 96, in vectors a second.

The payload is what ``json.loads`` gives for a real answer (lists of numbers, or base64
strings), made with ``corpusbeam.inference.codec.encode`` from seeded unit vectors. The baseline,
the limit for any decoder, is ``numpy.frombuffer`` over the same vectors' bytes in the decoded dtype
(float32 for float/base64, one byte a value for int8/uint8, packed bits for binary), copied into an
owned ``(96, width)`` array as ``decode`` returns (``frombuffer`` alone does not copy, so it would
time only a function call).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._common import best_rate, emit
from corpusbeam.inference import codec

__all__ = ["main"]

D, N = 1024, 96


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run")
    args = parser.parse_args(argv)
    budget = 0.05 if args.quick else 0.5
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((N, D)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    for fmt in codec.ENCODINGS:
        payload = codec.encode(xb, fmt)
        raw = codec.quantize(xb, fmt).tobytes()
        dtype = codec.natural_dtype(fmt)
        decoded = best_rate(
            lambda p=payload, f=fmt: codec.decode(p, f, dimensions=D), items=N, budget=budget
        )
        limit = best_rate(
            lambda r=raw, t=dtype: np.frombuffer(r, dtype=t).reshape(N, -1).copy(),
            items=N,
            budget=budget,
        )
        emit(
            "codec_decode",
            f"{fmt}_vectors_per_s",
            round(decoded, 1),
            "vectors/s",
            ratio=round(decoded / limit, 6),
            baseline="numpy.frombuffer+copy",
            baseline_value=round(limit, 1),
            dimensions=D,
            batch=N,
        )


if __name__ == "__main__":
    main()
