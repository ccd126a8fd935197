"""Error answers in the spec's shape, built from ``inference.errors.StatusError``.

The server rejects a request by raising a ``StatusError`` subclass (the same tree the client
raises from), carrying the HTTP ``status``, the service ``code``, the ``param`` it is about
(sent as ``error.target``) and, for 429, ``retry_after``. ``error_response`` turns one into
``{"error": {"code", "message", "target"?}}`` with the ``x-ms-error-code`` header (and
``Retry-After`` / ``retry-after-ms`` for a 429). Messages never contain the API key.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from inference.errors import StatusError, status_error_class

__all__ = ["error_body", "error_response", "reject"]


def reject(
    status: int,
    code: str,
    message: str,
    *,
    target: str | None = None,
    value: object = None,
    retry_after: float | None = None,
) -> StatusError:
    """The StatusError to raise for an error answer (``raise reject(...)``)."""
    cls = status_error_class(status, code)
    return cls(
        message,
        status=status,
        code=code,
        param=target,
        value=value,
        retry_after=retry_after,
    )


def error_body(code: str, message: str, target: str | None = None) -> dict:
    """The spec's ErrorResponse: ``{"error": {"code", "message", "target"?}}``."""
    error: dict[str, str] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    return {"error": error}


def error_response(exc: StatusError) -> JSONResponse:
    """The HTTP answer for a rejection raised with ``reject``."""
    code = exc.code or "error"
    headers = {"x-ms-error-code": code}
    if exc.retry_after is not None:
        wait = max(0.0, exc.retry_after)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    return JSONResponse(
        error_body(code, exc.message, exc.param), status_code=exc.status, headers=headers
    )
