"""Serving an ASGI app with uvicorn: on a listening socket, or in a thread on loopback.

``bind_socket`` makes the socket (listening before uvicorn serves, so early connections
queue); ``uvicorn_server`` builds the server with an app's own choice of HTTP parser and event
loop; ``uvicorn_in_thread`` serves on a free loopback port in a daemon thread for a ``with``
block; ``wait_until_ready`` polls a URL until it answers 200.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import httpx
import uvicorn

from corpusbeam.errors import ConfigError

__all__ = ["bind_socket", "socket_url", "uvicorn_in_thread", "uvicorn_server", "wait_until_ready"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), for uvicorn to serve."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections
    # only then, and without it every answer (headers and body written apart) waits ~40 ms
    # for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError("port", port, f"cannot listen on {host}:{port} ({exc})") from None
    sock.listen(2048)  # connections queue from now on, even before uvicorn serves them
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_server(
    app: Any,
    *,
    log_level: str,
    own_logging: bool,
    http: Literal["auto", "h11", "httptools"] = "auto",
    loop: Literal["auto", "asyncio", "uvloop"] = "auto",
    lifespan: Literal["auto", "on", "off"] = "on",
    timeout_graceful_shutdown: int = 5,
) -> uvicorn.Server:
    """A uvicorn server for ``app``, without uvicorn's access log (the apps count and log
    requests themselves). ``own_logging``: uvicorn configures logging (a command line);
    otherwise the caller's logging is left alone (a test, a library user)."""
    kwargs = {} if own_logging else {"log_config": None}
    config = uvicorn.Config(
        app,
        http=http,
        loop=loop,
        log_level=log_level,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        **kwargs,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def uvicorn_in_thread(
    server: uvicorn.Server, *, name: str
) -> Iterator[tuple[str, Callable[[], bool]]]:
    """Serve ``server`` on 127.0.0.1 (a free port) in a daemon thread until the block ends;
    yields its URL and a liveness check. The socket listens before the thread starts."""
    sock = bind_socket("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        yield socket_url(sock), thread.is_alive
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def wait_until_ready(
    url: str,
    alive: Callable[[], bool],
    timeout: float,
    *,
    what: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll ``url`` until it answers 200; raise ConfigError if the server dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise ConfigError(what, url, "the server stopped while starting")
        try:
            if httpx.get(url, params=params, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise ConfigError(what, url, f"did not answer within {timeout:.0f} s")
