"""Credentials for the embeddings endpoint: API keys and Entra ID tokens.

A credential turns into request headers at send time and never shows its secret:
``repr`` masks it, and a literal ``ApiKey`` refuses to be pickled, so it cannot end up in
a Beam pipeline graph by accident. Jobs that run on workers use ``EnvApiKey``, which
carries only the *name* of an environment variable and reads it where it is used.

    ApiKey("k")                   the key itself (sent as both headers by default)
    EnvApiKey("AZURE_AI_KEY")     the key read from an environment variable, at use
    EntraToken(credential)        any azure.core TokenCredential, refreshed before expiry
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from corpusbeam.errors import ConfigError

__all__ = [
    "DEFAULT_SCOPE",
    "ApiKey",
    "Credential",
    "EntraToken",
    "EnvApiKey",
    "KeyHeader",
]

KeyHeader = Literal["both", "api-key", "bearer"]
_KEY_HEADERS = ("both", "api-key", "bearer")
DEFAULT_SCOPE = "https://ml.azure.com/.default"


class Credential(Protocol):
    """Anything that can produce the auth headers for one request."""

    def headers(self) -> dict[str, str]: ...


def _key_headers(key: str, header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if header in ("both", "api-key"):
        out["api-key"] = key
    if header in ("both", "bearer"):
        out["Authorization"] = f"Bearer {key}"
    return out


def _check_header(header: str) -> None:
    if header not in _KEY_HEADERS:
        raise ConfigError("header", header, f"must be one of {', '.join(_KEY_HEADERS)}")


class ApiKey:
    """An API key, sent as ``api-key`` and/or ``Authorization: Bearer`` (both by default,
    as the official SDK does)."""

    __slots__ = ("_key", "header")

    def __init__(self, key: str, header: KeyHeader = "both") -> None:
        if not isinstance(key, str) or not key:
            raise ConfigError("key", "***", "an API key must be a non-empty string")
        _check_header(header)
        self._key = key
        self.header = header

    def headers(self) -> dict[str, str]:
        return _key_headers(self._key, self.header)

    def __repr__(self) -> str:
        return f"ApiKey(key='***', header={self.header!r})"

    def __reduce__(self):
        raise TypeError(
            "ApiKey holds a secret and is not picklable; use EnvApiKey('VAR') for pipelines"
        )


@dataclass(frozen=True, kw_only=True)
class EnvApiKey:
    """An API key read from the environment variable ``var`` each time it is needed."""

    var: str
    header: KeyHeader = "both"

    def __post_init__(self) -> None:
        if not self.var:
            raise ConfigError("var", self.var, "name an environment variable")
        _check_header(self.header)

    def headers(self) -> dict[str, str]:
        key = os.environ.get(self.var)
        if not key:
            raise ConfigError("var", self.var, "the environment variable is not set or empty")
        return _key_headers(key, self.header)


class _TokenCredential(Protocol):
    def get_token(self, *scopes: str): ...  # returns an azure.core AccessToken


class EntraToken:
    """An Entra ID token from any ``azure.core`` TokenCredential (``azure-identity``).

    The token is cached and fetched again ``refresh_margin`` seconds before it expires.
    """

    def __init__(
        self,
        credential: _TokenCredential,
        *,
        scopes: tuple[str, ...] = (DEFAULT_SCOPE,),
        refresh_margin: float = 300.0,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        if not hasattr(credential, "get_token"):
            raise ConfigError("credential", type(credential).__name__, "needs a get_token method")
        self._credential = credential
        self._scopes = tuple(scopes)
        self._margin = refresh_margin
        self._wallclock = wallclock
        self._token: str | None = None
        self._expires_on = 0.0

    def headers(self) -> dict[str, str]:
        if self._token is None or self._wallclock() >= self._expires_on - self._margin:
            access = self._credential.get_token(*self._scopes)
            self._token, self._expires_on = access.token, float(access.expires_on)
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return f"EntraToken(scopes={self._scopes!r})"

    def __reduce__(self):
        raise TypeError("EntraToken holds a live credential and is not picklable")
