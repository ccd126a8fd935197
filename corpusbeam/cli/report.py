"""``corpusbeam report DIR``: pictures of a run and its index, in one self-contained HTML file
(and a PNG a chart), for DIR's live version or a version folder."""

from __future__ import annotations

import argparse

from corpusbeam.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report (throughput, latency, retries, failures, recall, scores)",
    )
    p.add_argument("dir", metavar="DIR", help="index output DIR (CURRENT) or a version folder")
    p.add_argument(
        "--out",
        metavar="FOLDER",
        help="where to write report.html and the PNGs (default: the version's report/ folder)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401  (checked here: the report's one optional dependency)
    except ImportError:
        raise ConfigError(
            "report", "matplotlib", "is not installed: pip install 'corpusbeam[report]'"
        ) from None
    from pipeline.report_html import write_report

    files = write_report(args.dir, args.out)
    print(files.html)
    for path in files.pngs.values():
        print(path)
    return 0
