"""Fusion on labelled sets of real text: dense, lexical, RRF, the untuned default and the
tuned fusion, each measured by nDCG@10 and recall@100, on three kinds of query.

    python -m benchmarks.fusion [--sets spans,headings,summaries] [--docs 2000]
                                [--queries 300] [--seed 0] [--cache DIR]

The sets are made by ``benchmarks._labelled_sets`` (keyword-like spans of a paragraph with
words dropped; section headings; docstring summaries), ``--docs`` documents of each
sampled with the seed and ``--queries`` of them queried; the others are distractors. The
documents are embedded by the MiniLM reference endpoint (``all-MiniLM-L6-v2``, the
``minilm`` extra) into an exact ``IDMap2,Flat`` folder with a lexical index
(``benchmarks.relevance_docstrings.build``).

For each set, from one dense and one lexical search a query
(``corpusbeam.retrieval.tuning.labelled_rankings``): every single mode, RRF (k = 60,
unweighted), the untuned default (``DEFAULT_FUSION``) and the fusion ``tune`` picks on all
the queries; then tuned on one half of the queries (seeded split) and measured on the
other half, both ways, against the better single mode on that same half. The baseline of
every ratio is the better of dense and lexical on the same queries.

It also checks the run file: ``evaluate_relevance`` of the default hybrid writes its
ranking with ``write_run``, and pytrec_eval (``pip install pytrec-eval-terrier``, not a
dependency; skipped when absent) scores that file against the qrels: the largest
difference from our own nDCG@10 and recall@100 is printed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from benchmarks._common import emit
from benchmarks._labelled_sets import KINDS, labelled_triples
from benchmarks.relevance_docstrings import build

BENCH = "fusion"


def labelled(kind: str, n_docs: int, n_queries: int, seed: int):
    triples = labelled_triples(kind, seed)
    rng = random.Random(seed)
    docs = rng.sample(triples, min(n_docs, len(triples)))
    queried = rng.sample(docs, min(n_queries, len(docs)))
    queries = {f"q{i}": q for i, (_, q, _) in enumerate(queried)}
    qrels = {f"q{i}": {d: 1} for i, (d, _, _) in enumerate(queried)}
    return docs, queries, qrels, len(triples)


def _halves(qids: list[str], seed: int) -> tuple[list[str], list[str]]:
    order = sorted(qids)
    random.Random(seed).shuffle(order)
    return sorted(order[: len(order) // 2]), sorted(order[len(order) // 2 :])


def _pytrec_check(searcher, queries, qrels, work: Path, kind: str) -> dict | None:
    try:
        import pytrec_eval
    except ImportError:
        return None
    from corpusbeam.retrieval.relevance import evaluate_relevance, write_run

    rankings: dict = {}
    ours = evaluate_relevance(searcher, queries, qrels, modes=["hybrid"], rankings=rankings)
    run_path = work / f"run-{kind}.txt"
    write_run(run_path, rankings["hybrid"], tag="corpusbeam-hybrid")
    run: dict[str, dict[str, float]] = {}
    for line in run_path.read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    judged = {q: dict(j) for q, j in qrels.items() if q in run}
    per_q = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut_10", "recall_100"}).evaluate(run)
    theirs = {
        "ndcg@10": sum(v["ndcg_cut_10"] for v in per_q.values()) / len(per_q),
        "recall@100": sum(v["recall_100"] for v in per_q.values()) / len(per_q),
    }
    diff = max(abs(theirs[m] - ours["modes"]["hybrid"][m]) for m in theirs)
    return {"pytrec_eval": {m: round(v, 4) for m, v in theirs.items()}, "max_diff": diff}


def _warm_up(searcher, attempts: int = 5) -> None:
    """Start the query endpoint (MiniLM loading) before the timed-out query batches: on a
    loaded machine its first answer can take longer than a query's 30 s deadline."""
    from corpusbeam.inference.errors import EmbeddingError

    for attempt in range(attempts):
        try:
            searcher.embed_texts(["warm up"])
            return
        except EmbeddingError:
            if attempt == attempts - 1:
                raise


def measure_set(kind: str, args, work: Path) -> dict:
    from corpusbeam.retrieval.fusion import DEFAULT_FUSION, Fusion
    from corpusbeam.retrieval.searcher import Searcher
    from corpusbeam.retrieval.tuning import labelled_rankings, measure, tune
    from indexes import open_index

    docs, queries, qrels, available = labelled(kind, args.docs, args.queries, args.seed)
    folder = work / f"index-{kind}-docs{len(docs)}-s{args.seed}"
    info: dict = {"built": False}
    if not (folder / "manifest.json").exists():
        info = {"built": True, **build(folder, docs)}
    indexed = set(open_index(folder).metadata().column("document_id").to_pylist())
    qrels = {q: j for q, j in qrels.items() if set(j) <= indexed}
    queries = {q: t for q, t in queries.items() if q in qrels}
    with Searcher(folder) as searcher:
        _warm_up(searcher)
        lr = labelled_rankings(searcher, queries, qrels)
        rows = {
            "dense": measure(lr, "dense"),
            "lexical": measure(lr, "lexical"),
            "rrf": measure(lr, Fusion(method="rrf")),
            "default": measure(lr, DEFAULT_FUSION),
        }
        best, table = tune(lr)
        rows["tuned"] = measure(lr, best)
        held_out = []
        a, b = _halves(lr.qids, args.seed)
        for tune_on, report_on in ((a, b), (b, a)):
            f, _ = tune(lr.subset(tune_on))
            part = lr.subset(report_on)
            single = max(measure(part, m)["ndcg@10"] for m in ("dense", "lexical"))
            got = measure(part, f)["ndcg@10"]
            held_out.append({"fusion": f.describe(), "ndcg@10": got, "best_single": single})
        check = _pytrec_check(searcher, queries, qrels, work, kind)
    return {
        "kind": kind,
        "docs": len(docs),
        "queries": len(lr.qids),
        "available": available,
        "rows": rows,
        "tuned": best.describe(),
        "default": DEFAULT_FUSION.describe(),
        "grid": table,
        "held_out": held_out,
        "run_check": check,
        **info,
    }


def report(result: dict) -> None:
    kind, rows = result["kind"], result["rows"]
    extra = {"set": kind, "docs": result["docs"], "queries": result["queries"]}
    best_single = max(rows["dense"]["ndcg@10"], rows["lexical"]["ndcg@10"])
    for name, values in rows.items():
        for metric, value in values.items():
            fusion = {"tuned": result["tuned"], "default": result["default"]}.get(name)
            emit(BENCH, f"{name}_{metric}", value, "score", **extra, fusion=fusion)
    for name in ("default", "tuned", "rrf"):
        emit(
            BENCH,
            f"{name}_minus_best_single_ndcg@10",
            round(rows[name]["ndcg@10"] - best_single, 4),
            "difference",
            baseline="max(dense, lexical) nDCG@10, same queries",
            **extra,
        )
    for i, h in enumerate(result["held_out"]):
        emit(
            BENCH,
            "held_out_tuned_minus_best_single_ndcg@10",
            round(h["ndcg@10"] - h["best_single"], 4),
            "difference",
            half=i,
            fusion=h["fusion"],
            baseline="max(dense, lexical) nDCG@10 on the held-out half",
            **extra,
        )
    if result["run_check"] is not None:
        diff = result["run_check"]["max_diff"]
        emit(BENCH, "run_file_vs_pytrec_eval_max_diff", diff, "score", set=kind)
    print(f"\n== {kind}: {result['docs']} docs, {result['queries']} queries", file=sys.stderr)
    for name, values in rows.items():
        print(
            f"  {name:<8} ndcg@10 {values['ndcg@10']:.4f}  recall@100 {values['recall@100']:.4f}",
            file=sys.stderr,
        )
    print(f"  tuned: {result['tuned']}  held out: {result['held_out']}", file=sys.stderr)
    grid = " ".join(
        f"{g['fusion']['method']}:{g['fusion'].get('rrf_k', g['fusion']['weights']['dense'])}"
        f"={g['ndcg@10']:.3f}"
        for g in sorted(result["grid"], key=lambda g: (g["fusion"]["method"], str(g["fusion"])))
    )
    print(f"  grid: {grid}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(KINDS))
    p.add_argument("--docs", type=int, default=2000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="keep the folders (and the run files) here")
    args = p.parse_args(argv)
    work = Path(args.cache or tempfile.mkdtemp(prefix="fusion-"))
    work.mkdir(parents=True, exist_ok=True)
    for kind in args.sets.split(","):
        report(measure_set(kind, args, work))


if __name__ == "__main__":
    main()
