"""The checks a query passes before it is searched: query vectors, text lists, and exactly one
query of text, image and vector (``corpusbeam.retrieval.searcher``, ``multi``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from corpusbeam.errors import ConfigError

__all__ = ["check_one_query", "checked_texts", "checked_vectors"]


def checked_vectors(xq: np.ndarray) -> np.ndarray:
    """``xq`` as (nq, d) finite query vectors (a (d,) vector is one query)."""
    xq = np.asarray(xq)
    if xq.ndim == 1:
        xq = xq[None, :]
    if xq.ndim != 2 or xq.shape[0] == 0:
        raise ConfigError("xq", xq.shape, "expected (nq, d) query vectors")
    if xq.dtype.kind == "f" and not np.isfinite(xq).all():
        raise ConfigError("xq", "NaN/inf", "query vectors must be finite")
    return xq


def checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("texts", texts[:40], "pass a list of strings, not one string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str) or not t.strip():
            raise ConfigError(f"texts[{i}]", t, "must be a non-empty string")
    return out


def check_one_query(query: object, image: object, vector: object) -> None:
    named = (("query", query), ("image", image), ("vector", vector))
    given = [n for n, v in named if v is not None]
    if len(given) != 1:
        raise ConfigError("query", given or None, "give exactly one of query, image, vector")
