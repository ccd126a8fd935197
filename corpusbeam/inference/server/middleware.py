"""Raw ASGI around the app: request ids, the request log, per-route metrics, and faults.

Every HTTP answer gets ``x-request-id`` and ``apim-request-id`` (one uuid4), is counted in
``corpusbeam_requests_total{route, status}`` (and ``corpusbeam_errors_total{code}`` from
``x-ms-error-code``), and is logged in one line: method, path, status, milliseconds,
request id, and, when sent, the ``azureml-model-deployment`` and the names of passed-through
parameters. Headers are never logged, so neither is a key.

Faults (embeddings routes only, decided in arrival order by ``FaultPicker``):

- ``500`` / ``503``: answered at once in the spec's error shape;
- ``drop``: the TCP connection is closed with no answer at all;
- ``truncate``: the app's answer (200, for a valid request) is sent with its full
  ``Content-Length`` but only half of the body, then the connection is closed;
- ``stall``: the answer comes after ``stall_seconds``.

Drop and truncate close the socket itself: under uvicorn the ``send`` callable is a method
of the connection's request cycle, whose ``transport`` is closed directly, then the app waits
for ``http.disconnect`` so that uvicorn neither logs an error nor answers 500. Under another
server the fallback raises, which closes the connection after any bytes already sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from corpusbeam.asgi.errors import error_body
from corpusbeam.inference.protocol import IMAGE_ROUTE, TEXT_ROUTE
from corpusbeam.inference.server.metrics import Metrics
from corpusbeam.inference.server.shaping import FaultPicker

__all__ = ["EndpointMiddleware", "log_fields"]

log = logging.getLogger("corpusbeam.inference.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_FIELDS = "corpusbeam.log"
_ROUTES = frozenset({TEXT_ROUTE, IMAGE_ROUTE, "/info", "/metrics"})


def log_fields(scope: Scope) -> dict[str, Any]:
    """The dict of extra request-log fields for this request (the app adds to it)."""
    return scope.setdefault(_FIELDS, {})


class _FaultAbort(Exception):
    """Raised to make a server without a reachable transport close the connection."""


class EndpointMiddleware:
    """Wraps the Starlette app; see the module docstring."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        metrics: Metrics,
        faults: FaultPicker,
        stall_seconds: float,
        fault_paths: frozenset[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.faults = faults
        self.stall_seconds = stall_seconds
        self.fault_paths = fault_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        fields = log_fields(scope)
        fields["request_id"] = request_id
        path = scope.get("path", "")
        route = path if path in _ROUTES else "other"
        seen: dict[str, Any] = {"status": None}

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"apim-request-id", request_id.encode()))
                message = {**message, "headers": headers}
                seen["status"] = message["status"]
                for name, value in headers:
                    if name.lower() == b"x-ms-error-code":
                        seen["code"] = value.decode("latin-1")
            await send(message)

        fault = None
        if scope.get("method") == "POST" and path in self.fault_paths:
            fault = self.faults.next()
        try:
            if fault is None:
                await self.app(scope, receive, send_with_ids)
            else:
                self.metrics.inc("corpusbeam_faults_total", kind=fault)
                fields["fault"] = fault
                await self._fault(fault, scope, receive, send, send_with_ids, seen)
        finally:
            status = seen["status"]
            label = "dropped" if fault == "drop" else str(status)
            self.metrics.inc("corpusbeam_requests_total", route=route, status=label)
            if "code" in seen:
                self.metrics.inc("corpusbeam_errors_total", code=seen["code"])
            extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            log.info(
                "%s %s %s %.1fms %s",
                scope.get("method"),
                path,
                label,
                (time.perf_counter() - started) * 1000,
                extra,
            )

    async def _fault(
        self,
        fault: str,
        scope: Scope,
        receive: Receive,
        raw_send: Send,
        send: Send,
        seen: dict[str, Any],
    ) -> None:
        if fault in ("500", "503"):
            code = "internal_server_error" if fault == "500" else "service_unavailable"
            body = json.dumps(error_body(code, f"injected fault: HTTP {fault}")).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": int(fault),
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-ms-error-code", code.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif fault == "drop":
            # Read the request first: closing a socket with unread bytes sends a reset (RST)
            # rather than a plain close (FIN).
            message: Message = {"more_body": True}
            while message.get("more_body", False):
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
            await _close_connection(raw_send, receive)
        elif fault == "truncate":
            await self._truncate(scope, receive, raw_send, send)
        elif fault == "stall":
            await asyncio.sleep(self.stall_seconds)
            await self.app(scope, receive, send)

    async def _truncate(self, scope: Scope, receive: Receive, raw_send: Send, send: Send) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        await _close_connection(raw_send, receive)


async def _close_connection(send: Send, receive: Receive) -> None:
    """Close the client's TCP connection now, with nothing more sent (see module docstring)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not isinstance(transport, asyncio.BaseTransport):
        raise _FaultAbort("injected fault: closing the connection")
    transport.close()
    while True:  # until the server has seen the connection go
        message = await receive()
        if message["type"] == "http.disconnect":
            return
