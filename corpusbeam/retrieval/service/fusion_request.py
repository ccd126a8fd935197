"""The ``fusion`` field of a ``POST /search`` body: a method, or an object with its weights.

    "fusion": "convex"
    "fusion": {"method": "convex", "weights": {"dense": 0.3, "lexical": 0.7}}
    "fusion": {"method": "rrf", "rrf_k": 20}

It applies to hybrid searches only: with ``mode`` dense or lexical, or an image or vector
query, it is refused (400 ``invalid_fusion``). The answer names the fusion that answered
in its own ``fusion`` field (``corpusbeam.retrieval.fusion.Fusion.describe``).
"""

from __future__ import annotations

from corpusbeam.asgi.errors import reject
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.fusion import METHODS, Fusion
from corpusbeam.retrieval.hybrid import check_weights

__all__ = ["parse_fusion"]

_KEYS = frozenset({"method", "weights", "rrf_k"})


def _bad(message: str):
    return reject(400, "invalid_fusion", message, target="fusion")


def parse_fusion(value: object, mode: str | None, kind: str) -> dict | None:
    """``value`` checked, as ``Searcher.fusion_for`` keywords (None when absent)."""
    if value is None:
        return None
    if kind != "query" or mode in ("dense", "lexical"):
        raise _bad(f"fusion applies to hybrid text searches, not to a {mode or kind} search")
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, dict) or not value or set(value) - _KEYS:
        raise _bad(f"fusion must be one of {list(METHODS)} or an object of {sorted(_KEYS)}")
    method = value.get("method")
    if method is not None and method not in METHODS:
        raise _bad(f"unknown fusion method {method!r}; use one of {', '.join(METHODS)}")
    weights, rrf_k = value.get("weights"), value.get("rrf_k")
    try:
        if weights is not None:
            if not isinstance(weights, dict):
                raise ConfigError("weights", weights, "must be an object")
            weights = check_weights(weights)
        Fusion(
            method=method or "rrf",
            weights=weights or {},
            **({} if rrf_k is None else {"rrf_k": rrf_k}),
        )
    except ConfigError as exc:
        raise _bad(str(exc)) from None
    return {"fusion": method, "weights": weights, "rrf_k": rrf_k}
