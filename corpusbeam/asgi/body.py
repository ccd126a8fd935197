"""Reading a request body under a byte limit.

``read_body`` refuses with 413 ``request_too_large`` (target ``body``) as soon as the body is
known to be too large: from ``Content-Length`` before reading anything, then by counting while
it streams in, which catches a chunked body and one longer than its ``Content-Length`` said.
"""

from __future__ import annotations

from starlette.requests import Request

from corpusbeam.asgi.errors import reject
from corpusbeam.inference.errors import StatusError

__all__ = ["read_body", "too_large"]


def too_large(limit: int) -> StatusError:
    """The rejection for a body over ``limit`` bytes."""
    return reject(
        413, "request_too_large", f"the request body is over {limit} bytes", target="body"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of ``request``; raises ``too_large(limit)`` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
