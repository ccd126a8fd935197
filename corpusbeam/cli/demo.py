"""``corpusbeam demo``: search a few built-in documents on the local reference endpoint."""

from __future__ import annotations

import argparse
import logging

from corpusbeam.exit_codes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="embed built-in documents and queries on the local endpoint, and search them",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # One line a request from both sides would bury the demo's own output.
        for name in ("httpx", "corpusbeam.inference.server"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from corpusbeam.inference.server.demo import run_demo

    result = run_demo()
    print("demo: all queries found their document" if result.ok else "demo: FAILED")
    return ExitCode.OK if result.ok else ExitCode.FAILED
