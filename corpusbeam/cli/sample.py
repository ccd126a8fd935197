"""``corpusbeam sample DIR``: write the bundled sample corpus."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write the bundled sample corpus into a folder")
    p.add_argument("dir", metavar="DIR", help="the folder to write it into")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.sample_corpus import write_sample

    root = write_sample(args.dir)
    print(f"wrote the sample corpus to {root}")
    return 0
