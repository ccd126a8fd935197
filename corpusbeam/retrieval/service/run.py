"""Starting the search service: ``serve`` (blocking, for ``corpusbeam serve``) and
``running_service`` (a background thread on a free loopback port, for tests and
benchmarks). Both open the indexes as ``LiveIndex`` objects sharing one ``EmbedderPool``
and close that pool when the server stops."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import uvicorn

from corpusbeam.asgi.serving import (
    bind_socket,
    socket_url,
    uvicorn_in_thread,
    uvicorn_server,
    wait_until_ready,
)
from corpusbeam.errors import ConfigError
from corpusbeam.inference.client.credentials import Credential
from corpusbeam.retrieval.embedder import EmbedderPool
from corpusbeam.retrieval.live import LiveIndex
from corpusbeam.retrieval.service.app import create_app
from corpusbeam.retrieval.service.config import DEFAULT_HOST, DEFAULT_PORT, ServiceConfig

__all__ = ["RunningService", "open_live_indexes", "running_service", "serve"]

_READY_LINE = "corpusbeam search: listening on "


def open_live_indexes(
    paths: Sequence[str | os.PathLike],
    *,
    embedders: EmbedderPool,
    names: Sequence[str] | None = None,
    verify: bool = True,
    mmap: bool = True,
    config: ServiceConfig | None = None,
) -> list[LiveIndex]:
    """One ``LiveIndex`` a path; ``names`` (same length) override the directory names.
    A folder whose endpoint key is missing (its manifest's ``api_key_env`` unset) is a
    ConfigError here, before the service listens, not on its first query. ``config``'s
    ``keep_versions`` and ``cursor_ttl`` say how long replaced versions stay open."""
    if names and len(names) != len(paths):
        raise ConfigError("names", list(names), f"give one name for each of {len(paths)} indexes")
    config = config or ServiceConfig()
    indexes = [
        LiveIndex(
            p,
            name=names[i] if names else None,
            embedders=embedders,
            verify=verify,
            mmap=mmap,
            keep_versions=config.keep_versions,
            cursor_ttl=config.cursor_ttl,
        )
        for i, p in enumerate(paths)
    ]
    for index in indexes:
        embedders.check(index.current.manifest)
    return indexes


def _uvicorn(app, log_level: str, *, own_logging: bool) -> uvicorn.Server:
    return uvicorn_server(
        app,
        log_level=log_level,
        own_logging=own_logging,
        http="auto",  # httptools when installed (a dependency): ~1 ms less a request than h11
        loop="auto",  # uvloop likewise
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def serve(
    paths: Sequence[str | os.PathLike],
    *,
    config: ServiceConfig,
    names: Sequence[str] | None = None,
    endpoint: str | None = None,
    credential: Credential | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    verify: bool = True,
    log_level: str = "info",
) -> None:
    """Open the indexes, listen, print the URL, serve until interrupted."""
    pool = _embedders(config, endpoint, credential)
    with pool:
        indexes = open_live_indexes(
            paths, embedders=pool, names=names, verify=verify, config=config
        )
        app = create_app(indexes, config)
        sock = bind_socket(host, port)
        print(f"{_READY_LINE}{socket_url(sock)}", flush=True)
        _uvicorn(app, log_level, own_logging=True).run(sockets=[sock])


def _embedders(
    config: ServiceConfig, endpoint: str | None, credential: Credential | None
) -> EmbedderPool:
    """The query embedders of a service with ``config`` (its cache, in-process or not)."""
    return EmbedderPool(
        endpoint=endpoint,
        credential=credential,
        query_cache=config.query_cache,
        local_in_process=config.local_in_process,
    )


@dataclass(frozen=True)
class RunningService:
    """A started service: its ``url`` and the ``indexes`` it serves."""

    url: str
    indexes: list[LiveIndex]


@contextlib.contextmanager
def running_service(
    paths: Sequence[str | os.PathLike],
    *,
    config: ServiceConfig | None = None,
    names: Sequence[str] | None = None,
    endpoint: str | None = None,
    credential: Credential | None = None,
    verify: bool = True,
    log_level: str = "warning",
    startup_timeout: float = 60.0,
) -> Iterator[RunningService]:
    """The service on 127.0.0.1 (a free port) in a thread, until the block ends."""
    config = config or ServiceConfig()
    pool = _embedders(config, endpoint, credential)
    with pool:
        indexes = open_live_indexes(
            paths, embedders=pool, names=names, verify=verify, config=config
        )
        app = create_app(indexes, config)
        server = _uvicorn(app, log_level, own_logging=False)
        with uvicorn_in_thread(server, name="corpusbeam-search") as (url, alive):
            wait_until_ready(f"{url}/readyz", alive, startup_timeout, what="service")
            yield RunningService(url=url, indexes=indexes)
