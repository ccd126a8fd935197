"""Package names that load their module on first use (PEP 562).

A package's ``__init__`` lists its public names and the module each comes from; importing
the package then costs nothing until a name is used, so ``import corpusbeam.inference.errors`` loads
no numpy and ``corpusbeam --help`` starts at once. Imports only the standard library::

    __all__ = ["decode", "encode"]
    __getattr__, __dir__ = lazy_exports(__name__, {"decode": "corpusbeam.inference.codec", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose name ``n`` is ``exports[n]``'s."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
