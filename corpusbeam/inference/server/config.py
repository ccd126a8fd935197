"""The endpoint's settings: one frozen keyword-only dataclass, validated on construction.

Everything the local reference endpoint does differently from its defaults is a field of
``EndpointConfig``; the command line (``corpusbeam.inference.server.flags``) only builds one of
these.
Load shaping (latency, concurrency, rate budgets, faults) is off by default.

The API key is held but never shown: ``repr`` leaves it out and no error message names it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from corpusbeam.errors import ConfigError

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_INPUTS",
    "DEFAULT_MAX_INPUT_TOKENS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "MODELS",
    "EndpointConfig",
    "FaultRates",
    "parse_faults",
    "parse_latency",
]

MODELS: tuple[str, ...] = ("hash", "minilm")
DEFAULT_DIMENSIONS = 256
DEFAULT_MAX_INPUTS = 96  # Cohere on Azure: 96 texts a request
DEFAULT_MAX_INPUT_TOKENS = 512  # Cohere embed v3: 512 tokens an input
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024  # Cohere v4 on Azure: 20 MB a request
DEFAULT_MAX_IMAGE_BYTES = 5 * 1000 * 1000  # Cohere v3: 5 MB an image (decoded)
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000  # 25 megapixels, well under Pillow's bomb guard


@dataclass(frozen=True, kw_only=True)
class FaultRates:
    """Probabilities, each in [0, 1], that a request to an embeddings route misbehaves.

    ``server_error``: answer 500 or 503; ``drop``: close the connection with no answer;
    ``truncate``: send 200 and part of the body, then close; ``stall``: answer only after
    ``EndpointConfig.stall_seconds``. At most one fault applies to a request; the sum must
    not exceed 1.
    """

    server_error: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    stall: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0
            ):
                raise ConfigError(f"faults.{f.name}", value, "must be a number in [0, 1]")
        if self.total() > 1.0 + 1e-9:
            raise ConfigError("faults", self.total(), "the fault rates must add up to at most 1")

    def total(self) -> float:
        """The probability that some fault applies."""
        return self.server_error + self.drop + self.truncate + self.stall


# Names used by ``--faults`` (5xx=0.05,drop=0.02,...) for each FaultRates field.
_FAULT_NAMES = {"5xx": "server_error", "drop": "drop", "truncate": "truncate", "stall": "stall"}


def parse_faults(text: str) -> FaultRates:
    """``"5xx=0.05,drop=0.02,truncate=0.01,stall=0.01"`` to FaultRates (empty: none)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        key = _FAULT_NAMES.get(name.strip())
        if not sep or key is None:
            raise ConfigError(
                "faults", part, f"expected NAME=RATE with NAME one of {', '.join(_FAULT_NAMES)}"
            )
        try:
            rates[key] = float(value)
        except ValueError:
            raise ConfigError("faults", part, "the rate must be a number") from None
    return FaultRates(**rates)


def parse_latency(text: str) -> tuple[float, float]:
    """``"200"`` to (200, 200) and ``"100-300"`` to (100, 300), in milliseconds."""
    lo, sep, hi = text.partition("-")
    try:
        bounds = (float(lo), float(hi) if sep else float(lo))
    except ValueError:
        raise ConfigError("latency_ms", text, "expected MS or MIN-MAX in milliseconds") from None
    return bounds


def _positive_int(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, value, "must be a positive integer")


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """How the local reference endpoint behaves. Every field is validated on construction.

    ``dimensions`` is the model's native dimension: for ``hash`` any multiple of 8 (default
    256); ``minilm`` is always 384 (None or 384 accepted).

    ``max_input_tokens=None`` means the model's own maximum (512 for ``hash``, 256 for
    ``minilm``); a larger value is capped at the model's maximum, since a longer input would
    be truncated silently by the model.
    """

    model: str = "hash"
    dimensions: int | None = None
    api_key: str | None = field(default=None, repr=False)
    latency_ms: tuple[float, float] = (0.0, 0.0)
    max_concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    rate_window_seconds: float = 60.0
    faults: FaultRates = field(default_factory=FaultRates)
    stall_seconds: float = 30.0
    seed: int = 0
    blocked_words: tuple[str, ...] = ()
    max_inputs: int = DEFAULT_MAX_INPUTS
    max_input_tokens: int | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError("model", self.model, f"must be one of {', '.join(MODELS)}")
        _positive_int("dimensions", self.dimensions, optional=True)
        if self.model == "hash" and self.dimensions is not None and self.dimensions % 8:
            raise ConfigError("dimensions", self.dimensions, "must be a multiple of 8")
        if self.model == "minilm" and self.dimensions not in (None, 384):
            raise ConfigError("dimensions", self.dimensions, "minilm has 384 dimensions")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ConfigError("api_key", "<hidden>", "must be a non-empty string or None")
        self._check_latency()
        for name in ("max_concurrency", "rpm", "tpm", "max_input_tokens"):
            _positive_int(name, getattr(self, name), optional=True)
        for name in (
            "max_inputs",
            "max_request_bytes",
            "max_image_bytes",
            "max_image_pixels",
        ):
            _positive_int(name, getattr(self, name))
        window = self.rate_window_seconds
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ConfigError("rate_window_seconds", window, "must be a positive number")
        if not isinstance(self.faults, FaultRates):
            raise ConfigError("faults", self.faults, "must be a FaultRates")
        if (
            isinstance(self.stall_seconds, bool)
            or not isinstance(self.stall_seconds, int | float)
            or not (0 <= self.stall_seconds < math.inf)
        ):
            raise ConfigError("stall_seconds", self.stall_seconds, "must be a number >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed", self.seed, "must be an integer")
        words = self.blocked_words
        if not isinstance(words, tuple) or not all(isinstance(w, str) and w for w in words):
            raise ConfigError("blocked_words", words, "must be a tuple of non-empty strings")

    def _check_latency(self) -> None:
        lat = self.latency_ms
        ok = (
            isinstance(lat, tuple)
            and len(lat) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in lat)
            and 0 <= lat[0] <= lat[1] < math.inf
        )
        if not ok:
            raise ConfigError("latency_ms", lat, "must be (min, max) with 0 <= min <= max")
