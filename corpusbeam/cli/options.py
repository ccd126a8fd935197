"""Flags more than one command takes, in one place (commands never import each other)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from corpusbeam.errors import ConfigError

if TYPE_CHECKING:
    from corpusbeam.inference.client.credentials import EnvApiKey

__all__ = [
    "add_endpoint_arguments",
    "add_fusion_arguments",
    "check_fusion_applies",
    "credential_from_args",
    "fusion_from_args",
]


def add_endpoint_arguments(p: argparse.ArgumentParser) -> None:
    """``--endpoint URL --api-key-env VAR``: the embeddings endpoint for queries."""
    p.add_argument(
        "--endpoint",
        help="embeddings endpoint for queries (default: the one in the manifest, or a local "
        "endpoint for local://MODEL indexes)",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the endpoint's key (default: the variable the "
        "index was built with, as its manifest names it)",
    )


def credential_from_args(args: argparse.Namespace) -> EnvApiKey | None:
    if not args.api_key_env:
        return None
    if not os.environ.get(args.api_key_env):
        raise ConfigError("api_key_env", args.api_key_env, "is not set or empty")
    from corpusbeam.inference.client.credentials import EnvApiKey

    return EnvApiKey(var=args.api_key_env)


def add_fusion_arguments(p: argparse.ArgumentParser) -> None:
    """``--fusion rrf|convex --weights dense=W,lexical=W --rrf-k K``: how hybrid fuses."""
    p.add_argument(
        "--fusion",
        choices=("rrf", "convex"),
        help="hybrid: fuse by convex combination of normalised scores or by RRF (default: "
        "the folder's tuned fusion, fusion.json, else convex)",
    )
    p.add_argument("--weights", metavar="dense=W,lexical=W", help="hybrid: a weight a ranking")
    p.add_argument("--rrf-k", type=float, metavar="K", help="hybrid with RRF: its k (60)")


def fusion_from_args(args: argparse.Namespace) -> dict:
    """The ``Searcher.fusion_for`` keywords of the fusion flags."""
    from corpusbeam.retrieval.fusion import parse_weights

    return {"fusion": args.fusion, "weights": parse_weights(args.weights), "rrf_k": args.rrf_k}


def check_fusion_applies(mode: str, options: dict) -> None:
    """ConfigError when a fusion flag was given to a search that fuses nothing."""
    given = [k for k, v in options.items() if v is not None]
    if given and mode != "hybrid":
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(flag, options[given[0]], f"applies to hybrid search, not {mode}")
