"""A proxy in front of the reference endpoint that stops answering after K requests.

``kill_switch(target_url)`` serves on loopback and forwards every request to the
reference endpoint; it counts embedding requests and the inputs the endpoint answered.
With ``fail_after = K`` set, the requests after the K-th are refused with 401 (which the
client never retries, so the run fails: a run killed part way through, in process).
Setting it back to None heals it. Both runs of a resume test go through the same proxy,
so they name the same endpoint (checkpoints are keyed by it).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import uvicorn

from corpusbeam.asgi.serving import uvicorn_in_thread
from tests.support.scripted_endpoint import request_body

__all__ = ["KillSwitch", "kill_switch"]


class KillSwitch:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.url = ""
        self.fail_after: int | None = None
        self.requests = 0  # embedding requests received
        self.inputs = 0  # inputs the endpoint answered (200)
        self.seen: Counter[str] = Counter()  # how often each input text was answered
        self._lock = threading.Lock()

    def reset(self) -> tuple[int, int]:
        """(requests, inputs) so far, and the counts set back to zero."""
        with self._lock:
            out = (self.requests, self.inputs)
            self.requests = self.inputs = 0
            self.seen = Counter()
            return out

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        embeds = scope["path"].endswith("embeddings")
        refused = False
        if embeds:
            with self._lock:
                self.requests += 1
                refused = self.fail_after is not None and self.requests > self.fail_after
        if refused:
            content = json.dumps({"error": {"code": "Unauthorized", "message": "killed"}})
            status, headers = 401, [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content.encode()})
            return
        query = scope.get("query_string", b"").decode()
        url = f"{self.target}{scope['path']}" + (f"?{query}" if query else "")
        fwd = {k.decode(): v.decode() for k, v in scope["headers"] if k.lower() != b"host"}
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.request(scope["method"], url, content=body, headers=fwd)
        if embeds and r.status_code == 200:
            with self._lock:
                texts = json.loads(body)["input"]
                self.inputs += len(texts)
                self.seen.update(t for t in texts if isinstance(t, str))
        headers = [(b"content-type", r.headers.get("content-type", "application/json").encode())]
        await send({"type": "http.response.start", "status": r.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": r.content})


@contextlib.contextmanager
def kill_switch(target: str) -> Iterator[KillSwitch]:
    app = KillSwitch(target)
    config = uvicorn.Config(app, host="127.0.0.1", log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    with uvicorn_in_thread(server, name="kill-switch") as (url, alive):
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not alive():
                raise RuntimeError("the kill switch did not start")
            time.sleep(0.01)
        app.url = url
        yield app
