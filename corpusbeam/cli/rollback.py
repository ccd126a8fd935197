"""``corpusbeam rollback DIR [VERSION]``: make an earlier version live again.

    corpusbeam rollback out/                      the previous complete version
    corpusbeam rollback s3://bucket/index v2026...  a named one
    corpusbeam rollback out/ v2026... --force      a version its quality gate rejected

``CURRENT`` moves atomically, under the output's lock or lease
(``indexes.storage.rollback``): refused while a run writes the output. A running
``corpusbeam serve`` swaps to the version as it does after a run.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollback", help="move CURRENT back to the previous complete version (or a named one)"
    )
    p.add_argument("dir", metavar="DIR", help="the index job's output DIR (or s3:// / gs:// URL)")
    p.add_argument("version", nargs="?", metavar="VERSION", help="default: the previous one")
    p.add_argument("--force", action="store_true", help="allow a version its quality gate rejected")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from indexes.storage.rollback import rollback

    result = rollback(args.dir, args.version, force=args.force)
    print(f"{result.output}: CURRENT {result.previous} -> {result.current}")
    return 0
