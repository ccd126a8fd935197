"""TokenCap: a run's embedding tokens, capped across all its worker processes.

``--max-embed-tokens N`` stops a run before it would pass N tokens, as the endpoint
counts them (``usage.prompt_tokens``). Each worker process keeps one ledger file under
the run's staging, ``<staging>/budget/<process>.json``, holding what it has committed: the
tokens its endpoint answers measured, plus the estimates of its batches still in flight.
Before sending a batch a process estimates the batch's tokens (the job's
``TokenBudget``, calibrated from ``usage``; else ``estimate_tokens``), reads the other
processes' ledgers and sends the batch only if everything committed plus the batch stays
within N. Once a batch does not fit, the process sends nothing more: the rest of its
inputs are left for the next run (counted ``inputs_over_budget``, not failures). Ledgers
are read afresh before each batch, so the overshoot is at most one batch a process (an
estimate below its measure, or two processes deciding at once).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from corpusbeam.errors import ConfigError
from corpusbeam.inference.token_budget import TokenBudget, estimate_tokens

__all__ = ["BUDGET", "IMAGE_TOKENS", "TokenCap", "estimate_batch", "ledger", "spent"]

BUDGET = "budget"  # the ledgers' folder in the run's staging
IMAGE_TOKENS = 1000  # an image's estimate (the client's, for its throttle)


@dataclass(frozen=True)
class TokenCap:
    """At most ``limit`` tokens for the run; the ledgers under ``<staging>/budget``."""

    limit: int
    staging: str

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError("max_embed_tokens", self.limit, "must be a whole number >= 1")

    @property
    def folder(self) -> str:
        return f"{self.staging.rstrip('/')}/{BUDGET}"


def estimate_batch(items: Sequence, budget: TokenBudget | None) -> int:
    """A batch's tokens before it is sent: chunks' texts by the budget's count (or the
    plain estimate), images at ``IMAGE_TOKENS`` plus their caption."""
    total = 0
    for item in items:
        text = getattr(item, "text", None) or ""
        if hasattr(item, "data"):  # an image
            total += IMAGE_TOKENS + estimate_tokens(text)
        else:
            total += budget.cost(text) if budget is not None else estimate_tokens(text)
    return total


def _read_ledger(path: str) -> int:
    try:
        with FileSystems.open(path) as f:
            return int(json.loads(f.read().decode())["committed"])
    except Exception:  # half-written elsewhere (an object store's put is whole): skip it
        return 0


def spent(cap: TokenCap, skip: str | None = None) -> int:
    """Tokens every process's ledger says are committed (``skip``: a path left out)."""
    try:
        found = FileSystems.match([f"{cap.folder}/*.json"])[0].metadata_list
    except Exception:
        return 0
    return sum(_read_ledger(m.path) for m in found if m.path != skip)


class _Ledger:
    """One process's side of a ``TokenCap`` (shared by its DoFn instances)."""

    def __init__(self, cap: TokenCap) -> None:
        self.cap = cap
        self.path = f"{cap.folder}/{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.measured = 0  # prompt tokens the endpoint's answers counted
        self.reserved = 0  # estimates of batches in flight
        self.estimated = 0  # estimates of every batch sent
        self.stopped = False
        self.lock = threading.Lock()

    def _write(self) -> None:
        body = json.dumps({"committed": self.measured + self.reserved}).encode()
        if "://" in self.path:
            with FileSystems.create(self.path) as f:
                f.write(body)
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, self.path)

    def admit(self, estimate: int) -> bool:
        """Whether a batch of ``estimate`` tokens may be sent (reserved if so)."""
        with self.lock:
            if self.stopped:
                return False
            others = spent(self.cap, skip=self.path)
            if others + self.measured + self.reserved + estimate > self.cap.limit:
                self.stopped = True
                return False
            self.reserved += estimate
            self.estimated += estimate
            self._write()
            return True

    def settle(self, estimate: int, used: int) -> None:
        """A batch is back: its estimate released, the ``used`` tokens (as the endpoint
        counted them) recorded."""
        with self.lock:
            self.reserved = max(0, self.reserved - estimate)
            self.measured += used
            self._write()


_LEDGERS: dict[TokenCap, _Ledger] = {}
_LOCK = threading.Lock()


def ledger(cap: TokenCap) -> _Ledger:
    """This process's ledger for ``cap`` (one a process)."""
    with _LOCK:
        if cap not in _LEDGERS:
            _LEDGERS[cap] = _Ledger(cap)
        return _LEDGERS[cap]
