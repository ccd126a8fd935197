"""``corpusbeam report DIR``: pictures of a run and its index, in one self-contained HTML file
(and a PNG a chart), for DIR's live version or a version folder."""

from __future__ import annotations

import argparse
import sys

from corpusbeam.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report (throughput, latency, retries, failures, recall, scores)",
    )
    p.add_argument("dir", metavar="DIR", help="index output DIR (CURRENT) or a version folder")
    p.add_argument(
        "--output",
        "-o",
        metavar="FOLDER",
        help="where to write report.html and the PNGs (default: the version's report/ folder)",
    )
    # The old name, as every other command says --output: hidden, kept for a release.
    p.add_argument("--out", dest="deprecated_out", metavar="FOLDER", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def _output(args: argparse.Namespace) -> str | None:
    if args.deprecated_out is None:
        return args.output
    if args.output is not None and args.output != args.deprecated_out:
        raise ConfigError("--out", args.deprecated_out, f"contradicts --output {args.output}")
    print("corpusbeam report: --out is deprecated; use --output (-o)", file=sys.stderr)
    return args.deprecated_out


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401  (checked here: the report's one optional dependency)
    except ImportError:
        raise ConfigError(
            "report", "matplotlib", "is not installed: pip install 'corpusbeam[report]'"
        ) from None
    from pipeline.report_html import write_report

    files = write_report(args.dir, _output(args))
    print(files.html)
    for path in files.pngs.values():
        print(path)
    return 0
