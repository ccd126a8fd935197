"""``GET /info`` read once before a job embeds anything: which model the endpoint serves.

``read_model_info(settings, expected=...)`` returns a ``ModelInfo`` (name, type, provider);
when the caller names a model (``--model``) and the endpoint serves another, it raises
ConfigError naming both, before any embedding request is sent. An endpoint without the
route (404, or any other failure) gives a ``ModelInfo`` of ``None`` fields and the reason,
so a job can still run and say what it could not learn.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from corpusbeam.errors import ConfigError, CorpusbeamError
from corpusbeam.inference.client.settings import ClientSettings
from corpusbeam.inference.client.sync import EmbeddingsClient
from corpusbeam.inference.errors import AuthenticationError

__all__ = ["ModelInfo", "read_model_info"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What ``GET /info`` said: ``model_name``, ``model_type``, ``model_provider_name``;
    ``error`` is why it said nothing, when it did not."""

    name: str | None = None
    type: str | None = None
    provider: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def read_model_info(settings: ClientSettings, *, expected: str | None = None) -> ModelInfo:
    """The endpoint's model (see the module docstring). Authentication failures raise:
    every embedding request would fail the same way."""
    try:
        with EmbeddingsClient(settings) as client:
            body = client.info()
    except AuthenticationError:
        raise
    except CorpusbeamError as exc:
        log.warning("GET /info failed (%s); the model is not checked", exc)
        return ModelInfo(error=str(exc))
    if not isinstance(body, dict):
        return ModelInfo(error=f"GET /info answered {type(body).__name__}, not an object")
    info = ModelInfo(
        name=_str(body.get("model_name")),
        type=_str(body.get("model_type")),
        provider=_str(body.get("model_provider_name")),
    )
    if expected and info.name and expected.strip().lower() != info.name.strip().lower():
        raise ConfigError(
            "model",
            expected,
            f"the endpoint serves {info.name!r} (GET /info, provider "
            f"{info.provider or 'unknown'}); drop --model or point --endpoint at that model",
        )
    return info
