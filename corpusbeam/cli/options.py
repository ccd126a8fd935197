"""Flags more than one command takes, in one place (commands never import each other)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from corpusbeam.errors import ConfigError

if TYPE_CHECKING:
    from corpusbeam.inference.client.credentials import EnvApiKey

__all__ = ["add_endpoint_arguments", "credential_from_args"]


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
