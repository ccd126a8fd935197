"""An index that follows its ``CURRENT`` pointer: new versions swap in, requests go on.

``LiveIndex(root)`` opens a ``Searcher`` for ``root`` (an index folder, or an index job's
output directory). ``refresh()`` reads ``CURRENT``; when it names a version other than
the one being served, the new version is opened and verified completely *first*, and only
then does one attribute assignment make it the ``current`` searcher. A request that took
the old searcher keeps it until it is done (Python keeps the object alive while it is
referenced), so no request fails or sees half a swap. A version that cannot be opened is
logged, counted and skipped until ``CURRENT`` changes again; the old one stays live.

The service calls ``refresh()`` every ``poll_interval`` seconds from a background task;
tests and scripts may call it directly.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from corpusbeam.errors import CorpusbeamError
from corpusbeam.retrieval.embedder import EmbedderPool
from corpusbeam.retrieval.paging import DEFAULT_CURSOR_TTL, DEFAULT_KEPT_VERSIONS, KeptVersions
from corpusbeam.retrieval.searcher import Searcher
from indexes.storage.files import MANIFEST
from indexes.storage.versions import is_url, read_current

__all__ = ["LiveIndex"]

log = logging.getLogger(__name__)


class LiveIndex:
    """The live ``Searcher`` of one index root, swapped when ``CURRENT`` moves.

    ``embedders`` is shared by every version (and usually every index of a service), so
    a swap opens no new connections and starts no second local endpoint. A replaced
    version stays open for cursors (``at``): the ``keep_versions`` most recent, each for
    ``cursor_ttl`` seconds (``corpusbeam.retrieval.paging.KeptVersions``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        name: str | None = None,
        embedders: EmbedderPool,
        verify: bool = True,
        mmap: bool = True,
        rescore: bool | None = None,
        keep_versions: int = DEFAULT_KEPT_VERSIONS,
        cursor_ttl: float = DEFAULT_CURSOR_TTL,
    ) -> None:
        self.root = root.rstrip("/") if is_url(root) else Path(root)
        self.embedders = embedders
        self._options = {"embedders": embedders, "verify": verify, "mmap": mmap, "rescore": rescore}
        self.current: Searcher = Searcher(self.root, name=name, **self._options)
        self.name = self.current.name
        self.follows = is_url(self.root) or not (self.root / MANIFEST).is_file()
        self.swaps = 0
        self.failed_swaps = 0
        self.last_error: str | None = None
        self._failed_version: str | None = None
        self._lock = threading.Lock()  # one refresh at a time
        self.kept: KeptVersions[Searcher] = KeptVersions(keep_versions, cursor_ttl)

    @property
    def version(self) -> str | None:
        return self.current.version

    def at(self, version: str | None) -> Searcher:
        """The searcher of ``version``: the current one, or a kept one (else
        ``CursorExpiredError`` saying why it is gone)."""
        current = self.current
        if version == current.version:
            return current
        return self.kept.get(str(version))

    def refresh(self) -> bool:
        """Swap to the version ``CURRENT`` names if it changed; True when swapped."""
        if not self.follows:
            return False
        with self._lock:
            try:
                wanted = read_current(self.root)
            except CorpusbeamError as exc:
                self._failed(None, exc)
                return False
            if wanted is None or wanted in (self.current.version, self._failed_version):
                return False
            try:
                searcher = Searcher(self.root, name=self.name, **self._options)
            except CorpusbeamError as exc:
                self._failed(wanted, exc)
                return False
            old = self.current
            self.kept.retire(old.version, old)  # first: a cursor on it never misses it
            self.current = searcher  # the swap: one assignment
            self.swaps += 1
            self._failed_version = None
            self.last_error = None
            log.info("index %s: now serving %s (was %s)", self.name, searcher.version, old.version)
            return True

    def _failed(self, version: str | None, exc: Exception) -> None:
        self.failed_swaps += 1
        self._failed_version = version
        self.last_error = str(exc)
        log.warning(
            "index %s: keeping %s; cannot open %s: %s", self.name, self.version, version, exc
        )
