"""Compiled loops for the lexical index, compiled on first use and cached on disk.

``njit`` marks a function of a module for numba (``cache=True``: a fresh process loads
the machine code from ``__pycache__`` instead of compiling it again; numba falls back to
its user cache directory where that is read-only). Importing a module that uses it does
not import numba: the first call of any marked function compiles (or loads) every
marked function of that module and puts the compiled ones in the module's namespace, so
compiled functions call each other compiled. ``corpusbeam --help`` and dense searches
never pay numba's import.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["njit"]

_PENDING: dict[str, list[Callable[..., Any]]] = {}
_LOCK = threading.Lock()


def _compile(module: str) -> None:
    import numba

    namespace = sys.modules[module].__dict__
    for fn in _PENDING.pop(module, []):
        namespace[fn.__name__] = numba.njit(cache=True, nogil=True)(fn)


def njit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled by numba on the first call of any marked function of its module."""
    module = fn.__module__
    _PENDING.setdefault(module, []).append(fn)

    @functools.wraps(fn)
    def first_call(*args: Any) -> Any:
        with _LOCK:
            if module in _PENDING:
                _compile(module)
        return sys.modules[module].__dict__[fn.__name__](*args)

    return first_call
