"""Error answers: the envelope, the exception to raise for one, and the exception handlers.

An app refuses a request by raising ``reject(status, code, message, target=...)``: an
``corpusbeam.inference.errors.StatusError`` subclass (the tree the client raises from), carrying the
HTTP ``status``, the error ``code``, the ``param`` it is about (sent as ``error.target``) and, for
429, ``retry_after``. ``error_response`` turns one into::

    {"error": {"code": ..., "message": ..., "target": ...}}    ("target" only when known)

with the ``x-ms-error-code`` header, ``WWW-Authenticate: Bearer`` on a 401, and
``Retry-After`` / ``retry-after-ms`` on a 429. ``exception_handlers`` gives Starlette the
handlers for rejections and for its own HTTP errors (404, 405). ``catch_all`` is the
middleware for any other exception: a 500 ``internal_server_error`` with a generic message
(the exception's text could hold a secret), logged once with its traceback. It answers and
does not re-raise (Starlette's own 500 handler re-raises, so uvicorn logged the error a second
time and closed the connection); only when the answer had already begun is the exception
raised on, so that the server drops the connection. Messages never contain an API key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from corpusbeam.inference.errors import StatusError, status_error_class

__all__ = [
    "INTERNAL_ERROR",
    "CatchAll",
    "Handler",
    "catch_all",
    "error_body",
    "error_response",
    "exception_handlers",
    "reject",
]

INTERNAL_ERROR = "internal_server_error"  # the catch-all's error code

Handler = Callable[[Request, Exception], Awaitable[Response]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
    """The envelope: ``{"error": {"code", "message", "target"?}}`` (no target when None)."""
    error: dict[str, str] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    return {"error": error}


def error_response(exc: StatusError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """The HTTP answer for a rejection raised with ``reject`` (``headers`` added to it)."""
    code = exc.code or "error"
    out = {**(headers or {}), "x-ms-error-code": code}
    if exc.status == 401:
        out["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        wait = max(0.0, exc.retry_after)
        out["Retry-After"] = str(max(1, math.ceil(wait)))
        out["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    return JSONResponse(
        error_body(code, exc.message, exc.param), status_code=exc.status, headers=out
    )


def exception_handlers() -> dict[Any, Handler]:
    """Starlette's ``exception_handlers``: rejections, and its 404/405 as envelopes."""

    async def status_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StatusError)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        failure = reject(exc.status_code, code, str(exc.detail))
        return error_response(failure, headers=dict(exc.headers or {}))

    return {StatusError: status_error, HTTPException: http_error}


class CatchAll:
    """Raw ASGI: an unexpected exception becomes a logged 500 envelope (module docstring)."""

    def __init__(self, app: ASGIApp, *, log: logging.Logger, what: str) -> None:
        self.app = app
        self.log = log
        self.message = f"{what} failed unexpectedly"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            method, path = scope.get("method"), scope.get("path")
            self.log.exception("unexpected error answering %s %s", method, path)
            if started:
                raise
            response = error_response(reject(500, INTERNAL_ERROR, self.message))
            await response(scope, receive, send)


def catch_all(log: logging.Logger, what: str) -> Middleware:
    """``CatchAll`` for ``Starlette(middleware=[...])``; errors are logged to ``log`` and
    answered "``what`` failed unexpectedly" (say ``"the endpoint"``)."""
    return Middleware(CatchAll, log=log, what=what)
