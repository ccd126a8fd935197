"""Starting the endpoint: ``serve`` (blocking, for the command line) and ``running_endpoint``.

``running_endpoint(config)`` runs uvicorn on 127.0.0.1 on a free port, in a background
thread (default) or in a child process (``subprocess=True``: ``python -m
corpusbeam.inference.server`` with the same settings as flags, so a benchmark's client does not
share the server's GIL). It yields once ``GET /info`` answers and stops the server cleanly on exit.
The child gets the API key through an environment variable, never on its command line.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess as sp
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.asgi.serving import (
    bind_socket,
    socket_url,
    uvicorn_in_thread,
    uvicorn_server,
    wait_until_ready,
)
from corpusbeam.errors import ConfigError
from corpusbeam.inference.protocol import API_VERSION
from corpusbeam.inference.server.app import create_app
from corpusbeam.inference.server.config import EndpointConfig

__all__ = ["API_VERSION", "KEY_ENV", "RunningEndpoint", "running_endpoint", "serve"]

KEY_ENV = "CORPUSBEAM_ENDPOINT_KEY"  # how running_endpoint hands the key to a child process
_READY_LINE = "corpusbeam endpoint: listening on "


@dataclass(frozen=True)
class RunningEndpoint:
    """A started endpoint: its ``url``, and ``metrics()`` read from ``/metrics``."""

    url: str
    config: EndpointConfig
    api_key: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """Headers that authenticate to this endpoint (empty without a key)."""
        return {} if self.api_key is None else {"api-key": self.api_key}

    def metrics(self) -> dict[str, float]:
        """The counters of ``/metrics`` as ``{'name{labels}': value}``."""
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return parse_metrics(response.text)


def _uvicorn(app, log_level: str, *, own_logging: bool) -> uvicorn.Server:
    return uvicorn_server(
        app,
        log_level=log_level,
        own_logging=own_logging,
        # Pinned: dropped connections and truncated bodies (the faults) are made on h11's
        # transport; "auto" would switch to httptools/uvloop when installed.
        http="h11",
        loop="asyncio",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


def serve(
    config: EndpointConfig, *, host: str = "127.0.0.1", port: int = 8088, log_level: str = "info"
) -> None:
    """Load the model, listen, print the URL, and serve until interrupted."""
    app = create_app(config)
    sock = bind_socket(host, port)
    print(f"{_READY_LINE}{socket_url(sock)}", flush=True)
    _uvicorn(app, log_level, own_logging=True).run(sockets=[sock])


def _wait_for_info(url: str, endpoint: RunningEndpoint, alive, timeout: float) -> None:
    wait_until_ready(
        f"{url}/info",
        alive,
        timeout,
        what="endpoint",
        params={"api-version": API_VERSION},
        headers=endpoint.headers(),
    )


@contextlib.contextmanager
def running_endpoint(
    config: EndpointConfig,
    *,
    subprocess: bool = False,
    log_level: str = "warning",
    startup_timeout: float = 120.0,
) -> Iterator[RunningEndpoint]:
    """The endpoint on 127.0.0.1, a free port, until the ``with`` block ends."""
    runner = _run_child if subprocess else _run_thread
    with runner(config, log_level, startup_timeout) as endpoint:
        yield endpoint


@contextlib.contextmanager
def _run_thread(
    config: EndpointConfig, log_level: str, timeout: float
) -> Iterator[RunningEndpoint]:
    server = _uvicorn(create_app(config), log_level, own_logging=False)
    with uvicorn_in_thread(server, name="corpusbeam-endpoint") as (url, alive):
        endpoint = RunningEndpoint(url=url, config=config, api_key=config.api_key)
        _wait_for_info(url, endpoint, alive, timeout)
        yield endpoint


@contextlib.contextmanager
def _run_child(config: EndpointConfig, log_level: str, timeout: float) -> Iterator[RunningEndpoint]:
    from corpusbeam.inference.server.flags import config_to_args

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])  # the directory holding corpusbeam/
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    args = config_to_args(config)
    if config.api_key is not None:
        env[KEY_ENV] = config.api_key
        args += ["--api-key-env", KEY_ENV]
    cmd = [
        sys.executable,
        "-m",
        "corpusbeam.inference.server",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        log_level,
    ]
    proc = sp.Popen(cmd, env=env, stdout=sp.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    pump_thread = threading.Thread(target=pump, name="corpusbeam-endpoint-stdout", daemon=True)
    pump_thread.start()
    try:
        url = _read_url(lines, timeout)
        endpoint = RunningEndpoint(url=url, config=config, api_key=config.api_key)
        _wait_for_info(url, endpoint, lambda: proc.poll() is None, timeout)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except sp.TimeoutExpired:
            proc.kill()
            proc.wait()
        pump_thread.join(timeout=5)  # it ends at EOF, now that the child is gone
        if proc.stdout is not None:
            proc.stdout.close()


def _read_url(lines: queue.Queue[str | None], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ConfigError("endpoint", "subprocess", "did not start in time") from None
        if line is None:
            raise ConfigError("endpoint", "subprocess", "exited while starting")
        if line.startswith(_READY_LINE):
            return line[len(_READY_LINE) :].strip()
