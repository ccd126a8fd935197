"""The ``corpusbeam`` command line: thin argument parsing over typed library functions.

Each subcommand lives in its own module with two functions, ``add_parser(subparsers)``
and ``run(args) -> int``; this module only wires them together.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cli import demo, endpoint, evaluate, index, sample, search, serve
from inference.errors import CorpusbeamError

__all__ = ["build_parser", "main"]

_COMMANDS = (demo, endpoint, evaluate, index, sample, search, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corpusbeam",
        description="Turn a corpus of documents and images into a searchable vector index.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pipeline_args = extra  # Beam's options, for the commands that run a pipeline
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except CorpusbeamError as exc:
        print(f"corpusbeam: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
