"""A valid manifest with only the fields a test cares about set."""

from __future__ import annotations

from typing import Any

from indexes.storage.manifest import Manifest

__all__ = ["small_manifest"]

_REQUIRED = {
    "model": "m",
    "dimensions": 8,
    "encoding": "float",
    "index_factory": "Flat",
    "count": 0,
    "metric": "inner_product",
}


def small_manifest(**fields: Any) -> Manifest:
    """``Manifest`` of a small float ``Flat`` index, ``fields`` overriding the defaults."""
    return Manifest(**{**_REQUIRED, **fields})
