"""The API key: who may call a route.

Offered credentials are ``api-key: KEY`` and ``Authorization: Bearer KEY`` (the scheme in any
case). Access is granted when any offered credential equals the configured key (compared in
constant time, as bytes), so a wrong ``api-key`` beside a right bearer token is no refusal;
with no key configured every request is let in. Neither the key nor an offered credential
ever appears in a message or a log line.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from corpusbeam.asgi.errors import reject

__all__ = ["UNAUTHORIZED_MESSAGE", "check_access", "has_access", "offered_credentials"]

UNAUTHORIZED_MESSAGE = "missing or wrong credential: send api-key: KEY or Authorization: Bearer KEY"


def offered_credentials(headers: Mapping[str, str]) -> list[str]:
    """The credentials a request offers, from ``headers`` (case-insensitive, as Starlette's
    ``Headers``, or a dict with lower-case names)."""
    offered = []
    api_key = headers.get("api-key")
    if api_key is not None:
        offered.append(api_key)
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        offered.append(token.strip())
    return offered


def has_access(headers: Mapping[str, str], key: str | None) -> bool:
    """Whether a request with ``headers`` may pass: no ``key``, or any credential matches."""
    if key is None:
        return True
    expected = key.encode("utf-8")
    # Every credential is compared (no short cut), each in constant time.
    matches = [
        hmac.compare_digest(o.encode("utf-8"), expected) for o in offered_credentials(headers)
    ]
    return any(matches)


def check_access(headers: Mapping[str, str], key: str | None) -> None:
    """Raise a 401 ``unauthorized`` rejection unless ``has_access``."""
    if not has_access(headers, key):
        raise reject(401, "unauthorized", UNAUTHORIZED_MESSAGE)
