"""Options a command does not know: Beam's, or a mistake.

``corpusbeam index`` and ``corpusbeam retry-failures`` hand Beam the options they do not
know themselves (``--runner=...``, ``--direct_num_workers=...``). Beam ignores an option
nobody registered, so a typo (``--max-tokenz 5``) used to run the whole job with the
default. ``check`` judges every leftover of ``parse_known_args`` before anything runs:

- a flag Beam registers passes, written ``--name=value`` when it takes a value (a value
  after a space would be read as one of the command's positionals);
- anything else is an error naming it and the nearest known option (the command's own
  or Beam's).

Everything after a bare ``--`` goes to Beam unchecked (``corpusbeam.cli.main`` splits it
off): the way to pass the options of a runner or a plugin corpusbeam cannot see.

Beam is imported only when a pass-through command has leftovers (``pipeline.config.
beam_flags``); the other commands suggest from their own flags and never load it.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence

__all__ = ["check", "nearest", "own_flags"]


def own_flags(parser: argparse.ArgumentParser) -> frozenset[str]:
    """The option strings ``parser`` knows, short and long, without the hidden ones."""
    return frozenset(
        s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings
    )


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known option closest to ``name`` (difflib, as Beam's own warning does)."""
    best = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return best[0] if best else None


def check(
    extra: Sequence[str],
    parser: argparse.ArgumentParser,
    *,
    beam: bool,
    beam_args: Sequence[str] = (),
) -> list[str]:
    """The leftovers ``extra`` of ``parser.parse_known_args``, all of them Beam options;
    else ``parser.error`` (exit 2) on the first that is not. ``beam=False``: a command
    that passes nothing through, so every leftover is an error. ``beam_args``: what goes
    to Beam after ``--`` (it may name the runner)."""
    if not extra:
        return []
    ours = own_flags(parser)
    known: dict[str, bool] = {}
    if beam and any(a.startswith("-") and a != "-" for a in extra):
        from pipeline.config import beam_flags  # Beam loads here, and only here

        known = beam_flags((*extra, *beam_args))
    for arg in extra:
        if not arg.startswith("-") or arg == "-":
            continue
        name, eq, _ = arg.partition("=")
        if name in known:
            if known[name] and not eq:
                parser.error(
                    f"Beam option {name} takes a value: write it as {name}=VALUE "
                    "(a value after a space is read as one of this command's arguments)"
                )
            continue
        best = nearest(name, ours | known.keys())
        hint = f"; did you mean {best}?" if best else ""
        where = " (neither this command's nor one of Beam's)" if beam else ""
        parser.error(f"unknown option {name}{where}{hint}")
    stray = [a for a in extra if not a.startswith("-") or a == "-"]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    return list(extra)
