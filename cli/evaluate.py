"""``corpusbeam evaluate``: recall@k and latency of an index folder (or of an index job's
live version) against exact search."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure recall@k and latency of an index folder")
    p.add_argument("folder", help="index folder (manifest.json) or index output DIR (CURRENT)")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", type=int, default=200, help="queries sampled from the folder")
    p.add_argument("--query-file", help="a .npy file of (nq, d) query vectors instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rescore", action="store_true", help="search the index alone")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 checks")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from indexes.evaluate import evaluate_folder
    from indexes.versions import resolve_index_folder

    xq = np.load(args.query_file, allow_pickle=False) if args.query_file else None
    result = evaluate_folder(
        resolve_index_folder(args.folder),
        xq=xq,
        k=args.k,
        n_queries=args.queries,
        seed=args.seed,
        rescore=False if args.no_rescore else None,
        verify=not args.no_verify,
    )
    print(json.dumps(result, indent=2))
    return 0
