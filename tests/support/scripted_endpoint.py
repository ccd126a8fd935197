"""A scripted endpoint on loopback, for answers the reference endpoint never gives.

It is a real HTTP server (uvicorn): each request takes the next scripted answer, or,
once the script is used up, gets a valid embeddings answer (one float per input, the
input's position). Used to test retry-header variants (``x-ms-retry-after-ms``, an
HTTP-date ``Retry-After``) and statuses (403, 408, 502, 504) the reference endpoint
has no reason to send.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn

from corpusbeam.asgi.serving import uvicorn_in_thread


async def request_body(receive) -> bytes:
    """An ASGI request's whole body (its ``http.request`` messages joined)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@dataclass
class Answer:
    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedEndpoint:
    def __init__(self) -> None:
        self.script: deque[Answer] = deque()
        self.requests: list[dict] = []
        self.url = ""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        payload = json.loads(body) if body else None
        self.requests.append({"path": scope["path"], "headers": headers, "body": payload})
        if self.script:
            answer = self.script.popleft()
        else:
            n = len(payload["input"])
            answer = Answer(
                200,
                {
                    "id": "scripted",
                    "object": "list",
                    "model": "scripted",
                    "usage": {"prompt_tokens": n, "total_tokens": n},
                    "data": [
                        {"index": i, "object": "embedding", "embedding": [float(i)]}
                        for i in range(n)
                    ],
                },
            )
        content = json.dumps(answer.body).encode()
        raw_headers = [(b"content-type", b"application/json")]
        raw_headers += [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})


@contextlib.contextmanager
def scripted_endpoint() -> Iterator[ScriptedEndpoint]:
    app = ScriptedEndpoint()
    config = uvicorn.Config(app, host="127.0.0.1", log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    with uvicorn_in_thread(server, name="scripted-endpoint") as (url, alive):
        deadline = time.monotonic() + 10
        while not server.started:  # any request would consume a scripted answer
            if time.monotonic() > deadline or not alive():
                raise RuntimeError("scripted endpoint did not start")
            time.sleep(0.01)
        app.url = url
        yield app
