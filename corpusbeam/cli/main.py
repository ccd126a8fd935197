"""The ``corpusbeam`` command line: thin argument parsing over typed library functions.

Each command is a module of this package with ``add_parser(subparsers)`` and
``run(args) -> int``. Command modules import only what their flags need (argparse, the
config dataclasses their defaults come from, ``corpusbeam.inference.protocol``); each library loads
inside ``run``, so ``corpusbeam --help`` and ``corpusbeam search`` load no Beam.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from corpusbeam.errors import CorpusbeamError
from corpusbeam.exit_codes import ExitCode

__all__ = ["COMMANDS", "build_parser", "main"]

# The command modules, in the order ``corpusbeam --help`` lists them.
COMMANDS = (
    "sample",
    "index",
    "versions",
    "rollback",
    "search",
    "serve",
    "evaluate",
    "report",
    "endpoint",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corpusbeam",
        description="Turn a corpus of documents and images into a searchable vector index.",
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"corpusbeam.cli.{name}").add_parser(sub)
    for command in sub.choices.values():
        # An abbreviation is a guess: ``index --out x`` would quietly mean --output.
        command.allow_abbrev = False
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _split_beam_args(
    argv: list[str], commands: dict[str, argparse.ArgumentParser]
) -> tuple[list[str], list[str]]:
    """``argv`` and what follows its first bare ``--``, when the command passes options
    through to Beam: those go to Beam unchecked. Other commands keep the ``--`` (argparse's
    end of options, e.g. a query text that starts with a dash)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = commands.get(command or "")
    if parser is None or not parser.get_default("pass_through") or "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


# Top-level packages whose log lines a user sees without -v.
_OURS = frozenset({"corpusbeam", "indexes", "pipeline", "transforms"})


def _ours_or_an_error(record: logging.LogRecord) -> bool:
    """Libraries' own chatter (Beam's start-up notices, httpx's line a request) is not
    what a user ran the command for: without -v only our lines and errors show."""
    return record.name.split(".", 1)[0] in _OURS or record.levelno >= logging.ERROR


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_ours_or_an_error)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    commands = _commands(parser)
    argv, unchecked = _split_beam_args(list(sys.argv[1:] if argv is None else argv), commands)
    args, extra = parser.parse_known_args(argv)
    # Before Beam can load (to judge the leftovers): its import logs, and the first
    # message logged configures the root logger if nothing has.
    _configure_logging(args.verbose)
    if extra:
        from corpusbeam.cli.pass_through import check

        beam = bool(getattr(args, "pass_through", False))
        extra = check(extra, commands[args.command], beam=beam, beam_args=unchecked)
    # Beam's options, for the commands that run a pipeline: checked ones, then unchecked.
    args.pipeline_args = [*extra, *unchecked]
    try:
        return int(args.run(args) or 0)
    except CorpusbeamError as exc:
        print(f"corpusbeam: error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
