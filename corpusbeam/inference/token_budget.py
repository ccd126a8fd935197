"""How many tokens a text costs, and how many a model takes: estimated, counted, learned.

One estimate for everything that plans ahead of the endpoint: the chunker's chunk sizes
and the client's tokens-a-minute budget (``estimate_tokens``, UTF-8 bytes / 4). The
endpoint's own count comes back in ``usage``; the local reference endpoint's tokenizer is
``corpusbeam.inference.server.hash_tokenizer``.

``TokenBudget`` is what keeps inputs under a model's limit. It knows the limit (given,
from ``KNOWN_LIMITS`` by the model's name, or learned from a refusal), counts a text with
the model's own tokenizer where one is installed (``corpusbeam.inference.model_tokenizer``),
else scales the estimate by a ratio calibrated from ``usage`` and from the counts refusals state,
and keeps a margin under the limit while it only estimates. ``length_refusal`` reads
the ways services refuse a too-long input (``shared/reference/protocol.md``, "Too-long
inputs") into the count and limit they state.

    budget = TokenBudget(limit=256, model="all-MiniLM-L6-v2")
    budget.fits(text)                         # cost(text) <= usable()
    budget.observe_usage(estimated, counted)  # after a success
    budget.observe_refusal(text, refusal)     # after a 413 input_too_long
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from corpusbeam.errors import ConfigError
from corpusbeam.inference.errors import PayloadTooLargeError, StatusError

__all__ = [
    "COUNT_MODES",
    "KNOWN_LIMITS",
    "LengthRefusal",
    "TokenBudget",
    "estimate_tokens",
    "known_limit",
    "length_refusal",
]


def estimate_tokens(text: str) -> int:
    """About one token for every four UTF-8 bytes (at least one for a non-empty text)."""
    return math.ceil(len(text.encode("utf-8")) / 4)


# Tokens an input, by model name as ``GET /info`` or the user names it (lower case;
# matched whole, then as a prefix of the name). Sources: shared/reference/protocol.md
# and each model's card.
KNOWN_LIMITS: dict[str, int] = {
    "all-minilm-l6-v2": 256,
    "sentence-transformers/all-minilm-l6-v2": 256,
    "corpusbeam-hash": 512,
    "cohere-embed-v3-english": 512,
    "cohere-embed-v3-multilingual": 512,
    "embed-english-v3.0": 512,
    "embed-multilingual-v3.0": 512,
    "embed-english-light-v3.0": 512,
    "embed-multilingual-light-v3.0": 512,
    "embed-v-4-0": 128_000,
    "embed-v4.0": 128_000,
    "text-embedding-3-small": 8192,
    "text-embedding-3-large": 8192,
    "text-embedding-ada-002": 8192,
}

COUNT_MODES = ("auto", "calibrated", "estimate")


def known_limit(model: str | None) -> int | None:
    """The input limit of a model ``KNOWN_LIMITS`` names, else None."""
    if not model:
        return None
    name = model.strip().lower()
    if name in KNOWN_LIMITS:
        return KNOWN_LIMITS[name]
    for known in sorted(KNOWN_LIMITS, key=len, reverse=True):
        if name.startswith(known) or name.endswith("/" + known):
            return KNOWN_LIMITS[known]
    return None


@dataclass(frozen=True)
class LengthRefusal:
    """An endpoint's refusal of an input as too long: the input's token count and the
    limit, each when the message states it."""

    count: int | None
    limit: int | None


_SHAPES = (
    # the local reference endpoint: "input 70 has 397 tokens, at most 256 allowed"
    re.compile(r"has (?P<count>\d+) tokens?, at most (?P<limit>\d+)", re.I),
    # text-embeddings-inference: "must have less than 512 tokens. Given: 785"
    re.compile(r"less than (?P<lessthan>\d+) tokens?\.? Given: (?P<count>\d+)", re.I),
    # OpenAI / Azure OpenAI: "maximum context length is 8192 tokens, however you
    # requested 9000 tokens"
    re.compile(
        r"maximum context length is (?P<limit>\d+) tokens?.*?requested (?P<count>\d+)", re.I
    ),
)
_LENGTH_CODES = ("input_too_long", "context_length_exceeded", "string_above_max_length")
_OTHER_SIZES = ("request_too_large", "too_many_inputs", "image_too_large")


def length_refusal(exc: BaseException) -> LengthRefusal | None:
    """What a refusal says about an input being too long for the model, or None when
    ``exc`` is not such a refusal (a whole request too large is not)."""
    if not isinstance(exc, StatusError) or exc.status not in (400, 413, 422):
        return None
    code = (exc.code or "").lower()
    if code in _OTHER_SIZES or (exc.param or "").endswith(".image"):
        return None
    message = str(exc)
    for shape in _SHAPES:
        m = shape.search(message)
        if m:
            groups = m.groupdict()
            limit = groups.get("limit")
            if groups.get("lessthan"):
                limit = int(groups["lessthan"]) - 1
            return LengthRefusal(count=int(m["count"]), limit=int(limit) if limit else None)
    if code in _LENGTH_CODES:
        return LengthRefusal(count=None, limit=None)
    if isinstance(exc, PayloadTooLargeError) and re.search(r"token", message, re.I):
        return LengthRefusal(count=None, limit=None)
    return None


class TokenBudget:
    """A model's input limit and a text's cost against it (see the module docstring).

    ``mode``: ``auto`` counts with the model's tokenizer when one is installed, else
    calibrates the estimate; ``calibrated`` always calibrates the estimate (bytes / 4
    times a ratio learned from ``usage`` and refusals); ``estimate`` never learns a
    ratio (the limit is still learned from refusals). ``margin`` is the share of the
    limit used while costs are estimates. Thread-safe; pickles without the tokenizer,
    which each process loads again on first use.
    """

    def __init__(
        self,
        limit: int | None = None,
        *,
        model: str | None = None,
        mode: str = "auto",
        margin: float = 0.85,
        counter: Callable[[str], int] | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ConfigError("max_input_tokens", limit, "must be at least 1")
        if mode not in COUNT_MODES:
            raise ConfigError("token_count", mode, f"must be one of {', '.join(COUNT_MODES)}")
        if not 0 < margin <= 1:
            raise ConfigError("margin", margin, "must be in (0, 1]")
        self.limit = limit
        self.model = model
        self.mode = mode
        self.margin = margin
        self.ratio = 1.0  # counted tokens per base token (see ``base``)
        self._refused_ratio = 0.0  # the highest ratio a refusal's stated count showed
        self._counted = 0  # usage seen: tokens the endpoint counted ...
        self._based = 0  # ... for inputs whose base counts summed this
        self._counter = counter
        self._injected = counter is not None
        self._loaded = counter is not None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_lock"] = None
        if not self._injected:  # the model's tokenizer: loaded again where it is used
            state["_counter"], state["_loaded"] = None, False
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"TokenBudget(limit={self.limit}, model={self.model!r}, mode={self.mode!r}, "
            f"ratio={self.ratio:.3f}, tokenizer={self.counter is not None})"
        )

    @property
    def counter(self) -> Callable[[str], int] | None:
        """The counter given, else the model's own when ``mode`` is auto and one is
        installed, else None (costs are then estimates)."""
        if self._injected:
            return self._counter
        if self.mode != "auto":
            return None
        if not self._loaded:
            from corpusbeam.inference.model_tokenizer import token_counter

            self._counter = token_counter(self.model)
            self._loaded = True
        return self._counter

    def base(self, text: str) -> int:
        """The uncalibrated count: the tokenizer's, else the estimate."""
        counter = self.counter
        return counter(text) if counter is not None else estimate_tokens(text)

    def cost(self, text: str) -> int:
        """Tokens ``text`` is expected to cost the endpoint."""
        return math.ceil(self.base(text) * self.ratio)

    def usable(self) -> int | None:
        """The most tokens an input may be given; None without a known limit."""
        if self.limit is None:
            return None
        exact = self.counter is not None and self.ratio == 1.0
        return self.limit if exact else max(1, math.floor(self.limit * self.margin))

    def fits(self, text: str) -> bool:
        usable = self.usable()
        return usable is None or self.cost(text) <= usable

    def observe_usage(self, base_tokens: int, prompt_tokens: int) -> None:
        """A success: inputs whose ``base`` counts summed ``base_tokens`` were counted
        ``prompt_tokens`` by the endpoint; the ratio follows their quotient (never below
        what a refusal showed)."""
        if self.mode == "estimate" or base_tokens <= 0 or prompt_tokens <= 0:
            return
        with self._lock:
            self._counted += prompt_tokens
            self._based += base_tokens
            self.ratio = max(self._counted / self._based, self._refused_ratio)

    def observe_refusal(self, text: str, refusal: LengthRefusal) -> None:
        """``text`` was refused as too long: learn the limit and, from the count the
        refusal states, the ratio (so that this text no longer fits)."""
        with self._lock:
            if refusal.limit is not None and (self.limit is None or refusal.limit < self.limit):
                self.limit = refusal.limit
            base = max(1, self.base(text))
            if refusal.count is not None and self.mode != "estimate":
                self._refused_ratio = max(self._refused_ratio, refusal.count / base)
                self.ratio = max(self.ratio, self._refused_ratio)
            if self.limit is None:  # refused, limit unstated: less than what was sent
                self.limit = max(1, math.ceil(base * self.ratio) - 1)

    def snapshot(self) -> dict:
        """What the run report shows."""
        return {
            "limit": self.limit,
            "mode": self.mode,
            "tokenizer": self.counter is not None,
            "ratio": round(self.ratio, 4),
        }
