"""``corpusbeam versions DIR``: every version of an index job's output, one a line.

    corpusbeam versions out/ [--json]
    corpusbeam versions s3://bucket/index

Each version's state (live, complete, rejected, partial), when it was created, the
documents its run read and the chunks it indexes, its index and measured recall, its
quality gate's figures, and its bytes: its own and those shared with other versions
(``indexes.storage.version_list``).
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="list an index output's versions: live, rejected, partial")
    p.add_argument("dir", metavar="DIR", help="the index job's output DIR (or s3:// / gs:// URL)")
    p.add_argument("--json", action="store_true", help="print JSON: one object a version")
    p.set_defaults(run=run)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _line(v) -> str:
    gate = ""
    if v.gate:
        ndcg = (v.gate.get("new") or {}).get("ndcg@10")
        gate = f"gate {v.gate.get('status')}" + (f" nDCG@10 {ndcg}" if ndcg is not None else "")
    recall = f"{v.recall:.3f}" if v.recall is not None else "-"
    return (
        f"{v.name:<28} {v.state:<9} {(v.created or '-')[:19]:<19} "
        f"{v.documents if v.documents is not None else '-':>8} "
        f"{v.chunks if v.chunks is not None else '-':>8} {(v.index or '-'):<14} {recall:>6} "
        f"{_size(v.bytes_own):>9} {_size(v.bytes_shared):>9}  {gate}"
    ).rstrip()


def run(args: argparse.Namespace) -> int:
    from indexes.storage.version_list import list_versions

    infos = list_versions(args.dir)
    if args.json:
        print(json.dumps([v.to_dict() for v in infos], indent=2))
        return 0
    print(
        f"{'version':<28} {'state':<9} {'created':<19} {'docs':>8} {'chunks':>8} "
        f"{'index':<14} {'recall':>6} {'own':>9} {'shared':>9}  gate"
    )
    for v in infos:
        print(_line(v))
    if not infos:
        print(f"{args.dir}: no versions")
    return 0
