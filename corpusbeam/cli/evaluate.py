"""``corpusbeam evaluate``: two measurements of an index folder (or of an index job's live
version).

    corpusbeam evaluate DIR [-k 10] [--queries 200 | --query-file q.npy]
        recall@k and latency of the index against exact search (JSON)

    corpusbeam evaluate DIR --queries queries.jsonl --qrels qrels.tsv [--mode M]... [--json]
        relevance on labelled queries in the BEIR layout: nDCG@10, recall@10, recall@100
        and MRR@10 for each search mode (``corpusbeam.retrieval.relevance``)

``--queries`` is a number of sampled query vectors, unless ``--qrels`` is given: then it
is the queries file. Anything else is refused with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging

from corpusbeam.cli.options import add_endpoint_arguments, credential_from_args
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.hybrid import MODES

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure recall@k against exact search, or relevance on labelled queries",
    )
    p.add_argument(
        "dir", metavar="DIR", help="index folder (manifest.json) or index output DIR (CURRENT)"
    )
    p.add_argument("-k", type=int, default=10, help="neighbours a query (default 10)")
    p.add_argument(
        "--queries",
        default=None,
        help="queries sampled from the folder (default 200); with --qrels, the BEIR "
        "queries.jsonl file",
    )
    p.add_argument("--query-file", help="a .npy file of (nq, d) query vectors instead")
    p.add_argument("--qrels", help="BEIR qrels TSV (query-id, corpus-id, score): relevance")
    p.add_argument(
        "--mode",
        action="append",
        choices=MODES,
        help="with --qrels: a mode to measure (repeatable; default every mode the folder has)",
    )
    p.add_argument("--json", action="store_true", help="with --qrels: print JSON, not a table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rescore", action="store_true", help="rank by the index alone")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 checks")
    add_endpoint_arguments(p)
    p.set_defaults(run=run)


def _sampled_queries(value: str | None) -> int:
    if value is None:
        return 200
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            "--queries",
            value,
            "is a number of sampled queries; a queries file needs --qrels qrels.tsv too",
        ) from None


def run(args: argparse.Namespace) -> int:
    if args.qrels is not None:
        return _relevance(args)
    if args.mode or args.json:
        flag = "--mode" if args.mode else "--json"
        raise ConfigError(flag, True, "applies to relevance evaluation (--qrels)")
    n_queries = _sampled_queries(args.queries)
    import numpy as np

    from indexes.building.evaluate import evaluate_folder
    from indexes.storage.versions import resolve_index_folder

    xq = np.load(args.query_file, allow_pickle=False) if args.query_file else None
    result = evaluate_folder(
        resolve_index_folder(args.dir),
        xq=xq,
        k=args.k,
        n_queries=n_queries,
        seed=args.seed,
        rescore=False if args.no_rescore else None,
        verify=not args.no_verify,
    )
    print(json.dumps(result, indent=2))
    return 0


def _relevance(args: argparse.Namespace) -> int:
    if args.queries is None:
        raise ConfigError("--queries", None, "--qrels needs --queries queries.jsonl")
    if args.query_file:
        raise ConfigError(
            "--query-file", args.query_file, "vectors cannot be judged; use --queries"
        )
    if not getattr(args, "verbose", False):
        # A local:// index starts its own endpoint: its line a request is not the answer.
        logging.getLogger("corpusbeam.inference.server").setLevel(logging.WARNING)
    from corpusbeam.retrieval.relevance import (
        evaluate_relevance,
        format_table,
        load_qrels,
        load_queries,
    )
    from corpusbeam.retrieval.searcher import Searcher

    queries = load_queries(args.queries)
    qrels = load_qrels(args.qrels)
    with Searcher(
        args.dir,
        endpoint=args.endpoint,
        credential=credential_from_args(args),
        rescore=False if args.no_rescore else None,
        verify=not args.no_verify,
    ) as searcher:
        result = evaluate_relevance(searcher, queries, qrels, modes=args.mode)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
