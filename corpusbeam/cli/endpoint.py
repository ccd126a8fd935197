"""``corpusbeam endpoint``: serve the local reference embeddings endpoint.

The flags are ``corpusbeam.inference.server.flags``'s, shared with ``python -m
corpusbeam.inference.server``.
"""

from __future__ import annotations

import argparse

from corpusbeam.inference.server.flags import add_arguments, run_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "endpoint",
        help="serve the local reference embeddings endpoint",
        description="Serve the Azure AI Model Inference embeddings API from a local model.",
    )
    add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_from_args(args)
