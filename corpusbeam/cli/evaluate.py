"""``corpusbeam evaluate``: two measurements of an index folder (or of an index job's live
version).

    corpusbeam evaluate DIR [-k 10] [--queries 200 | --query-file q.npy]
        recall@k and latency of the index against exact search (JSON)

    corpusbeam evaluate DIR --queries queries.jsonl --qrels qrels.tsv [--mode M]... [--json]
        [--fusion rrf|convex] [--weights dense=W,lexical=W] [--rrf-k K] [--tune] [--run FILE]
        relevance on labelled queries in the BEIR layout: nDCG@10, recall@10, recall@100
        and MRR@10 for each search mode (``corpusbeam.retrieval.relevance``)

``--tune`` first chooses the fusion with the best nDCG@10 on the labelled queries
(``corpusbeam.retrieval.tuning``) and stores it in ``DIR/fusion.json``, where ``search``,
``serve`` and ``evaluate`` read it; the hybrid figures are then the tuned fusion's.
``--run FILE`` writes the ranking of one mode (``--mode``, default the folder's default
mode) as a TREC run file (``corpusbeam.retrieval.relevance.write_run``).

``--queries`` is a number of sampled query vectors, unless ``--qrels`` is given: then it
is the queries file. Anything else is refused with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging

from corpusbeam.cli.options import (
    add_endpoint_arguments,
    add_fusion_arguments,
    credential_from_args,
    fusion_from_args,
)
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
    add_fusion_arguments(p)
    p.add_argument(
        "--tune",
        action="store_true",
        help="with --qrels: find the fusion with the best nDCG@10 and store it for DIR "
        "(DIR/fusion.json, kept across versions)",
    )
    p.add_argument(
        "--run",
        dest="run_file",
        metavar="FILE",
        help="with --qrels: write the ranking as a TREC run file",
    )
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
    for flag in ("mode", "json", "fusion", "weights", "rrf_k", "tune", "run_file"):
        if getattr(args, flag):
            name = "--" + flag.replace("_file", "").replace("_", "-")
            raise ConfigError(
                name, getattr(args, flag), "applies to relevance evaluation (--qrels)"
            )
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
        write_run,
    )
    from corpusbeam.retrieval.searcher import Searcher

    queries = load_queries(args.queries)
    qrels = load_qrels(args.qrels)
    if args.run_file and args.mode and len(args.mode) > 1:
        raise ConfigError("--run", args.run_file, "writes one mode's ranking; give one --mode")
    if args.tune and (args.fusion or args.weights or args.rrf_k):
        raise ConfigError("--tune", True, "chooses the fusion itself; drop --fusion/--weights")
    with Searcher(
        args.dir,
        endpoint=args.endpoint,
        credential=credential_from_args(args),
        rescore=False if args.no_rescore else None,
        verify=not args.no_verify,
    ) as searcher:
        tuning = _tune(searcher, queries, qrels) if args.tune else None
        fusion = searcher.fusion_for(**fusion_from_args(args))
        rankings: dict = {}
        result = evaluate_relevance(
            searcher, queries, qrels, modes=args.mode, fusion=fusion, rankings=rankings
        )
        default_mode = searcher.default_mode
    if tuning is not None:
        result["tuning"] = tuning
    if args.run_file:
        mode = args.mode[0] if args.mode else default_mode
        write_run(args.run_file, rankings[mode], tag=f"corpusbeam-{mode}")
        result["run"] = {"file": args.run_file, "mode": mode}
    print(json.dumps(result, indent=2) if args.json else _table(result, format_table(result)))
    return 0


def _table(result: dict, table: str) -> str:
    lines = [table]
    t = result.get("tuning")
    if t is not None:
        lines.append(
            f"tuned on {t['queries']} queries: {_label(t['fusion'])}, nDCG@10 {t['ndcg@10']:.4f} "
            f"(dense {t['dense']['ndcg@10']:.4f}, lexical {t['lexical']['ndcg@10']:.4f}, "
            f"before {t['before']['ndcg@10']:.4f} with {_label(t['before']['fusion'])}); "
            f"stored in {t['written']}"
        )
    if "run" in result:
        lines.append(f"run file ({result['run']['mode']}): {result['run']['file']}")
    return "\n".join(lines)


def _label(d: dict) -> str:
    w = ", ".join(f"{n} {v:g}" for n, v in d["weights"].items())
    k = f", k {d['rrf_k']:g}" if "rrf_k" in d else ""
    return f"{d['method']} ({w}{k})"


def _tune(searcher, queries: dict, qrels: dict) -> dict:
    """Tune the fusion on the labelled queries, store it at the folder's root and make it
    the searcher's; returns what was found (the best, the single modes, every try)."""
    from datetime import UTC, datetime

    from corpusbeam.retrieval.fusion import write_fusion
    from corpusbeam.retrieval.tuning import labelled_rankings, measure, tune

    lr = labelled_rankings(searcher, queries, qrels)
    before = searcher.fusion
    best, table = tune(lr)
    found = {
        "fusion": best.describe(),
        **measure(lr, best),
        "before": {"fusion": before.describe(), **measure(lr, before)},
        "dense": measure(lr, "dense"),
        "lexical": measure(lr, "lexical"),
        "queries": len(lr.qids),
    }
    details = {k: found[k] for k in ("ndcg@10", "recall@100", "dense", "lexical", "queries")}
    details |= {"version": searcher.version, "tuned_at": datetime.now(UTC).isoformat()}
    found["written"] = write_fusion(searcher.root, best, details)
    found["grid"] = table
    searcher.fusion = best
    return found
