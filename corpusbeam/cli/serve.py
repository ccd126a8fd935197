"""``corpusbeam serve``: the search service (``corpusbeam.retrieval.service.app``) over index
folders.

    corpusbeam serve DIR... [--name NAME]... [--host 127.0.0.1] [--port 8090]
                     [--endpoint URL --api-key-env VAR] [--service-key-env VAR]

``--api-key-env`` is the embeddings endpoint's key (with ``--endpoint``, as on
``corpusbeam search``); ``--service-key-env`` names the variable holding the key that
clients of this service must send (``api-key`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import argparse
import os

from corpusbeam.cli.options import add_endpoint_arguments, credential_from_args
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.service.config import DEFAULT_HOST, DEFAULT_PORT, ServiceConfig

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve index folders over HTTP (POST /search)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="index folders or index output DIRs")
    p.add_argument(
        "--name", action="append", help="name of each DIR, in order (default: its folder name)"
    )
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    add_endpoint_arguments(p)
    p.add_argument("--service-key-env", metavar="VAR", help="require the key held in this variable")
    # Every limit's default is ServiceConfig's own.
    p.add_argument("--max-k", type=int, default=ServiceConfig.max_k)
    p.add_argument("--max-query-chars", type=int, default=ServiceConfig.max_query_chars)
    p.add_argument("--max-request-bytes", type=int, default=ServiceConfig.max_request_bytes)
    p.add_argument(
        "--poll-interval",
        type=float,
        default=ServiceConfig.poll_interval,
        help="seconds between CURRENT checks (0: off)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=ServiceConfig.faiss_threads,
        help="FAISS threads a query (default 1: concurrent requests use the cores)",
    )
    p.add_argument(
        "--query-cache",
        type=int,
        default=ServiceConfig.query_cache,
        help="text query vectors kept, least recently used dropped (0: off)",
    )
    p.add_argument(
        "--keep-versions",
        type=int,
        default=ServiceConfig.keep_versions,
        help="replaced versions kept open for paging cursors",
    )
    p.add_argument(
        "--cursor-ttl",
        type=float,
        default=ServiceConfig.cursor_ttl,
        help="seconds a replaced version stays open for paging cursors",
    )
    p.add_argument(
        "--local-endpoint",
        action="store_true",
        help="local:// indexes: embed text queries through a local endpoint on loopback "
        "(default: the same model in this process)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 checks")
    p.add_argument("--log-level", default="info")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from corpusbeam.retrieval.service.run import serve

    key = None
    if args.service_key_env:
        key = os.environ.get(args.service_key_env)
        if not key:
            raise ConfigError("service_key_env", args.service_key_env, "is not set or empty")
    config = ServiceConfig(
        max_k=args.max_k,
        max_query_chars=args.max_query_chars,
        max_request_bytes=args.max_request_bytes,
        poll_interval=args.poll_interval,
        faiss_threads=args.threads,
        api_key=key,
        query_cache=args.query_cache,
        keep_versions=args.keep_versions,
        cursor_ttl=args.cursor_ttl,
        local_in_process=not args.local_endpoint,
    )
    serve(
        args.dirs,
        config=config,
        names=args.name,
        endpoint=args.endpoint,
        credential=credential_from_args(args),
        host=args.host,
        port=args.port,
        verify=not args.no_verify,
        log_level=args.log_level,
    )
    return 0
