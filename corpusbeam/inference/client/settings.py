"""The client's settings: one small frozen object, validated on construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from corpusbeam.inference.client.credentials import Credential
from corpusbeam.inference.client.retry import RetryPolicy
from corpusbeam.inference.protocol import API_VERSION, INPUT_TYPES

__all__ = ["DEFAULT_API_VERSION", "ClientSettings", "Timeouts"]

DEFAULT_API_VERSION = API_VERSION
EXTRA_PARAMETERS = ("error", "drop", "pass-through")


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds to connect, and to wait for each read of an answer."""

    connect: float = 10.0
    read: float = 120.0
    write: float = 60.0
    pool: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"timeouts.{name}", getattr(self, name), "must be positive")


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """Everything the embeddings client needs to know, except time.

    ``endpoint`` is the base URL (the client appends ``/embeddings`` and
    ``/images/embeddings``). ``credential`` is an ``ApiKey``, ``EnvApiKey``, ``EntraToken``
    or None for an open endpoint. ``extras`` are extra body keys sent to the model; with
    them, ``extra_parameters`` defaults to ``pass-through``. ``max_inputs`` is the most
    inputs sent in one request (Cohere on Azure: 96; one image a request for Cohere v3);
    requests are also packed under ``max_request_tokens`` estimated tokens (texts) and
    ``max_request_bytes`` of data URLs (images).
    """

    endpoint: str
    credential: Credential | None = None
    api_version: str = DEFAULT_API_VERSION
    model: str | None = None
    deployment: str | None = None
    extra_parameters: str | None = None
    extras: Mapping[str, object] = field(default_factory=dict)
    dimensions: int | None = None
    encoding_format: str = "float"
    input_type: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_concurrency: int = 8
    max_inputs: int = 96
    max_images: int = 96
    max_request_tokens: int | None = None
    max_request_bytes: int | None = 4_000_000
    rpm: float | None = None
    tpm: float | None = None

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError("endpoint", self.endpoint, "must be an http:// or https:// URL")
        object.__setattr__(self, "endpoint", self.endpoint.rstrip("/"))
        if not self.api_version:
            raise ConfigError("api_version", self.api_version, "must not be empty")
        codec.check_encoding(self.encoding_format)
        if self.input_type is not None and self.input_type not in INPUT_TYPES:
            raise ConfigError("input_type", self.input_type, f"must be one of {INPUT_TYPES}")
        if self.extra_parameters is not None and self.extra_parameters not in EXTRA_PARAMETERS:
            raise ConfigError(
                "extra_parameters", self.extra_parameters, f"must be one of {EXTRA_PARAMETERS}"
            )
        if self.dimensions is not None:
            if self.dimensions < 1:
                raise ConfigError("dimensions", self.dimensions, "must be positive")
            codec.wire_width(self.encoding_format, self.dimensions)
        for name in ("max_concurrency", "max_inputs", "max_images"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must be at least 1")
        for name in ("max_request_tokens", "max_request_bytes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must be at least 1")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(name, value, "must be positive")
        reserved = {"input", "dimensions", "encoding_format", "input_type", "model"}
        clash = reserved & set(self.extras)
        if clash:
            raise ConfigError("extras", sorted(clash), "use the settings of the same name")
        object.__setattr__(self, "extras", dict(self.extras))

    def request_headers(self) -> dict[str, str]:
        """Headers other than auth: deployment routing and extra-parameters."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.deployment:
            headers["azureml-model-deployment"] = self.deployment
        mode = self.extra_parameters or ("pass-through" if self.extras else None)
        if mode:
            headers["extra-parameters"] = mode
        return headers
