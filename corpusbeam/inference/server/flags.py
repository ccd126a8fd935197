"""The endpoint's command-line flags, defined once.

``python -m corpusbeam.inference.server`` and ``corpusbeam endpoint`` both call ``add_arguments``
and ``config_from_args``; ``config_to_args`` goes the other way (used to start a child process). The
key is best given as ``--api-key-env VAR`` (read from the environment), so it does not show in
``ps``; ``--api-key`` works too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from corpusbeam.errors import ConfigError, CorpusbeamError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.server.config import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_INPUTS,
    DEFAULT_MAX_REQUEST_BYTES,
    MODELS,
    EndpointConfig,
    FaultRates,
    parse_faults,
    parse_latency,
)

__all__ = ["add_arguments", "config_from_args", "config_to_args", "main", "run_from_args"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the endpoint's flags to ``parser``."""
    g = parser.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    g.add_argument("--port", type=int, default=8088, help="port; 0 picks a free one (8088)")
    g.add_argument("--log-level", default="info", choices=_LOG_LEVELS, help="(info)")
    g.add_argument("--api-key", default=None, help="require this key (prefer --api-key-env)")
    g.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="require the key held in environment variable VAR",
    )
    m = parser.add_argument_group("model")
    m.add_argument(
        "--model", choices=MODELS, default=EndpointConfig.model, help=f"({EndpointConfig.model})"
    )
    m.add_argument(
        "--dimensions",
        type=int,
        default=None,
        help="native dimensions: hash, a multiple of 8 (256); minilm is 384",
    )
    lim = parser.add_argument_group("limits")
    lim.add_argument(
        "--max-inputs",
        type=int,
        default=DEFAULT_MAX_INPUTS,
        help=f"inputs a request ({DEFAULT_MAX_INPUTS})",
    )
    lim.add_argument(
        "--max-input-tokens",
        type=int,
        default=None,
        help="tokens an input (the model's maximum: hash 512, minilm 256)",
    )
    lim.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help=f"request body bytes ({DEFAULT_MAX_REQUEST_BYTES})",
    )
    lim.add_argument(
        "--max-image-bytes",
        type=int,
        default=DEFAULT_MAX_IMAGE_BYTES,
        help=f"decoded bytes an image ({DEFAULT_MAX_IMAGE_BYTES})",
    )
    lim.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help=f"pixels an image ({DEFAULT_MAX_IMAGE_PIXELS})",
    )
    lim.add_argument(
        "--block",
        metavar="WORD",
        action="append",
        default=[],
        help="content filter: refuse inputs holding WORD (repeatable)",
    )
    s = parser.add_argument_group("load shaping (all off by default)")
    s.add_argument(
        "--latency-ms",
        default="0",
        metavar="MS|MIN-MAX",
        help="added to each request, e.g. 200 or 100-300",
    )
    s.add_argument("--max-concurrency", type=int, default=None, help="requests worked on at once")
    s.add_argument("--rpm", type=int, default=None, help="requests a minute, then 429")
    s.add_argument("--tpm", type=int, default=None, help="tokens a minute, then 429")
    s.add_argument(
        "--rate-window-seconds",
        type=float,
        default=EndpointConfig.rate_window_seconds,
        help="the window --rpm and --tpm count over (60; shorter for tests)",
    )
    s.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="e.g. 5xx=0.05,drop=0.02,truncate=0.01,stall=0.01",
    )
    s.add_argument(
        "--stall-seconds",
        type=float,
        default=EndpointConfig.stall_seconds,
        help=f"length of a stall ({EndpointConfig.stall_seconds:g})",
    )
    s.add_argument(
        "--seed",
        type=int,
        default=EndpointConfig.seed,
        help=f"seed for latency and faults ({EndpointConfig.seed})",
    )


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise ConfigError("api_key_env", args.api_key_env, "is not set or empty")
        return key
    return args.api_key


def config_from_args(args: argparse.Namespace) -> EndpointConfig:
    """The EndpointConfig the parsed flags describe (raises ConfigError)."""
    return EndpointConfig(
        model=args.model,
        dimensions=args.dimensions,
        api_key=_api_key(args),
        latency_ms=parse_latency(args.latency_ms),
        max_concurrency=args.max_concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        rate_window_seconds=args.rate_window_seconds,
        faults=parse_faults(args.faults),
        stall_seconds=args.stall_seconds,
        seed=args.seed,
        blocked_words=tuple(args.block),
        max_inputs=args.max_inputs,
        max_input_tokens=args.max_input_tokens,
        max_request_bytes=args.max_request_bytes,
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
    )


def config_to_args(config: EndpointConfig) -> list[str]:
    """Flags that reproduce ``config``, except the API key (pass it with --api-key-env)."""
    args = ["--model", config.model, "--seed", str(config.seed)]
    if config.dimensions is not None:
        args += ["--dimensions", str(config.dimensions)]
    lo, hi = config.latency_ms
    args += ["--latency-ms", f"{lo!r}-{hi!r}"]
    for flag, value in (
        ("--max-concurrency", config.max_concurrency),
        ("--rpm", config.rpm),
        ("--tpm", config.tpm),
        ("--max-input-tokens", config.max_input_tokens),
    ):
        if value is not None:
            args += [flag, str(value)]
    f: FaultRates = config.faults
    faults = f"5xx={f.server_error!r},drop={f.drop!r},truncate={f.truncate!r},stall={f.stall!r}"
    args += ["--faults", faults, "--stall-seconds", repr(float(config.stall_seconds))]
    args += ["--rate-window-seconds", repr(float(config.rate_window_seconds))]
    args += ["--max-inputs", str(config.max_inputs)]
    args += ["--max-request-bytes", str(config.max_request_bytes)]
    args += ["--max-image-bytes", str(config.max_image_bytes)]
    args += ["--max-image-pixels", str(config.max_image_pixels)]
    for word in config.blocked_words:
        args += ["--block", word]
    return args


def run_from_args(args: argparse.Namespace) -> int:
    """Serve with the parsed flags until interrupted; returns an exit status."""
    from corpusbeam.inference.server.run import serve

    serve(config_from_args(args), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m corpusbeam.inference.server``: serve the local reference endpoint."""
    parser = argparse.ArgumentParser(
        prog="python -m corpusbeam.inference.server",
        description="Serve the local reference embeddings endpoint (Azure AI Model Inference API).",
        allow_abbrev=False,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return run_from_args(args)
    except CorpusbeamError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
