"""Paging with a cursor that pins the versions that answered the first page.

    first = page(searchers, "query", k=10)               # corpusbeam.retrieval.results
    again = page(searchers, "query", k=10, cursor=first.next_cursor)

A cursor is opaque to clients (URL-safe base64 of a small JSON object): the version of
each index that answered the first page, the offset of the next page, the candidate
``depth`` the first page ranked with, and a fingerprint of the request. Later pages are
cut from the same ranking of the same versions: a version swap between pages neither
repeats nor skips a hit. The ranking is recomputed for each page (it is deterministic for
one version, one query and one depth), so no server state is kept but the old version.

The service keeps versions that were swapped out for a while (``KeptVersions``: the
``max_versions`` most recent, each for ``ttl`` seconds after it was replaced); a cursor
naming a version no longer kept is ``CursorExpiredError`` (410 ``cursor_expired``),
saying which version and why. A cursor used with another request (another query, mode,
fusion, filter, grouping or diversity) is a ConfigError (400 ``invalid_cursor``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from corpusbeam.errors import ConfigError

__all__ = [
    "DEFAULT_CURSOR_TTL",
    "DEFAULT_KEPT_VERSIONS",
    "MAX_DEPTH",
    "Cursor",
    "CursorExpiredError",
    "KeptVersions",
    "fingerprint",
]

DEFAULT_KEPT_VERSIONS = 2  # replaced versions kept open for cursors, per index
DEFAULT_CURSOR_TTL = 600.0  # seconds a replaced version stays open
MAX_DEPTH = 10_000  # candidates a cursor may ask to rank (the first page asks 10 k, k <= max_k)

T = TypeVar("T")


class CursorExpiredError(ConfigError):
    """A cursor names a version that is no longer kept: start again from the first page."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: ``versions`` (index name -> version), ``offset`` (items
    already answered), ``depth`` (candidates ranked), ``fingerprint`` (of the request)."""

    versions: Mapping[str, str | None]
    offset: int
    depth: int
    fingerprint: str

    def encode(self) -> str:
        data = {"v": dict(self.versions), "o": self.offset, "d": self.depth, "f": self.fingerprint}
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: object) -> Cursor:
        """The cursor ``text`` (as ``encode`` wrote it), or ConfigError naming ``cursor``."""
        if not isinstance(text, str) or not text or len(text) > 4096:
            raise ConfigError("cursor", _short(text), "is not a cursor this service gave")
        try:
            data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            versions, offset, depth, fp = data["v"], data["o"], data["d"], data["f"]
        except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
            raise ConfigError("cursor", _short(text), "is not a cursor this service gave") from None
        ok = (
            isinstance(versions, dict)
            and all(isinstance(v, str | None) for v in versions.values())
            and isinstance(offset, int)
            and isinstance(depth, int)
            and offset > 0
            and 0 < depth <= MAX_DEPTH  # a cursor is the client's: bound the work it asks
            and isinstance(fp, str)
        )
        if not ok:
            raise ConfigError("cursor", _short(text), "is not a cursor this service gave")
        return cls(versions, offset, depth, fp)

    def check(self, request_fingerprint: str) -> None:
        if request_fingerprint != self.fingerprint:
            raise ConfigError(
                "cursor",
                self.encode()[:24] + "...",
                "belongs to another request: send the same query, mode, fusion, filter, index, "
                "grouping and diversity as the first page",
            )


def _short(value: object) -> object:
    return value[:24] + "..." if isinstance(value, str) and len(value) > 24 else value


def fingerprint(request: Mapping[str, Any]) -> str:
    """A short digest of what decides a ranking (``request``: JSON-able values)."""
    raw = orjson.dumps(dict(request), option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return hashlib.sha256(raw).hexdigest()[:16]


class KeptVersions(Generic[T]):
    """Replaced versions of one index, kept for cursors: the ``max_versions`` most recently
    replaced, each until ``ttl`` seconds after it was replaced. ``clock`` is injectable."""

    def __init__(
        self,
        max_versions: int = DEFAULT_KEPT_VERSIONS,
        ttl: float = DEFAULT_CURSOR_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_versions, bool) or not isinstance(max_versions, int) or max_versions < 0:
            raise ConfigError("keep_versions", max_versions, "must be an integer >= 0")
        if not ttl >= 0:
            raise ConfigError("cursor_ttl", ttl, "must be >= 0 seconds")
        self.max_versions = max_versions
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[T, float]] = OrderedDict()
        self._why: dict[str, str] = {}  # versions let go, and why

    def retire(self, version: str | None, value: T) -> None:
        """``value`` (the searcher of ``version``) was just replaced."""
        if version is None:
            return
        with self._lock:
            self._kept[version] = (value, self._clock())
            self._kept.move_to_end(version)
            self._expire()
            while len(self._kept) > self.max_versions:
                old, _ = self._kept.popitem(last=False)
                self._why[old] = f"only the {self.max_versions} most recent versions are kept"

    def get(self, version: str) -> T:
        """The kept value of ``version``, or CursorExpiredError saying why it is gone."""
        with self._lock:
            self._expire()
            if version in self._kept:
                return self._kept[version][0]
            why = self._why.get(version, "this service never served it")
        raise CursorExpiredError(
            "cursor", version, f"version {version} is no longer served ({why}); search again"
        )

    def _expire(self) -> None:
        now = self._clock()
        for version, (_, since) in list(self._kept.items()):
            if now - since > self.ttl:
                del self._kept[version]
                self._why[version] = f"replaced more than {self.ttl:g} s ago"
        while len(self._why) > 1000:  # reasons for the most recent versions let go
            self._why.pop(next(iter(self._why)))
