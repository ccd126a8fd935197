"""Relevance of dense, lexical and hybrid search on a labelled set made from real text:
the docstrings of Python's own standard library (shipped with every interpreter, offline).

    python -m benchmarks.relevance_docstrings [--docs 1500] [--queries 300] [--cache DIR]

The labelled set: every function, method and class of the standard library's ``.py`` files
whose docstring has a one-line summary (4+ words) and a body after a blank line (15 to 150
words). The body is a document (id ``module:qualname``); the summary is its query, with
that one document relevant (a document the model refuses as too long is left out, with its
query). Neither is generated: a person wrote both, and the summary
never appears in its document. ``--docs`` documents are sampled (seeded); ``--queries`` of
them give their query; the others are distractors.

The documents are embedded by the MiniLM reference endpoint (``all-MiniLM-L6-v2``, 384
dimensions; needs the ``minilm`` extra) and built into an index folder with
``build_folder`` (``IDMap2,Flat``: exact dense search, so the comparison is of the
rankings, not of an approximate index), which also builds the lexical index. Then
``corpusbeam.retrieval.relevance.evaluate_relevance`` measures nDCG@10, recall@10, recall@100 and
MRR@10 for each mode, and ``hybrid_vs_best`` is hybrid's nDCG@10 over the better of dense and
lexical (the issue's target: at least 1). ``--cache DIR`` keeps the folder and writes
``queries.jsonl`` and ``qrels.tsv`` there, so ``corpusbeam evaluate DIR/index --queries
DIR/queries.jsonl --qrels DIR/qrels.tsv`` prints the same figures.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import random
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from benchmarks._common import emit

BENCH = "relevance_docstrings"
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "ensurepip"}


def docstring_pairs(root: Path | None = None) -> list[tuple[str, str, str]]:
    """``(id, summary, body)`` of every usable docstring under the stdlib ``root``,
    each summary and each body once, in a stable order (files sorted by path). A root is
    parsed once a process (about 10 s for the stdlib); each call gets its own list."""
    return list(_docstring_pairs(root or Path(sysconfig.get_paths()["stdlib"])))


@functools.lru_cache(maxsize=4)
def _docstring_pairs(root: Path) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    seen_summary: set[str] = set()
    seen_body: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_DIRS.intersection(rel.parts) or rel.name.startswith("test_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = ".".join(rel.with_suffix("").parts)
        for node, qualname in _walk(tree, ""):
            doc = ast.get_docstring(node, clean=True)
            if not doc or "\n\n" not in doc:
                continue
            head, body = doc.split("\n\n", 1)
            summary = " ".join(head.split())
            body = " ".join(body.split())
            if "\n" in head.strip() or not 4 <= len(summary.split()) <= 30:
                continue
            if not 15 <= len(body.split()) <= 150:
                continue
            if summary in seen_summary or body in seen_body:
                continue
            seen_summary.add(summary)
            seen_body.add(body)
            out.append((f"{module}:{qualname}", summary, body))
    return tuple(out)


def _walk(node: ast.AST, prefix: str):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            yield child, name
            yield from _walk(child, name + ".")


def labelled_set(n_docs: int, n_queries: int, seed: int = 0):
    pairs = docstring_pairs()
    rng = random.Random(seed)
    docs = rng.sample(pairs, min(n_docs, len(pairs)))
    queried = rng.sample(docs, min(n_queries, len(docs)))
    queries = {f"q{i}": summary for i, (_, summary, _) in enumerate(queried)}
    qrels = {f"q{i}": {doc_id: 1} for i, (doc_id, _, _) in enumerate(queried)}
    return docs, queries, qrels, len(pairs)


def build(folder: Path, docs) -> dict:
    from corpusbeam.inference.client import ClientSettings, EmbeddingsClient
    from corpusbeam.inference.server import EndpointConfig, running_endpoint
    from indexes import BuildConfig, build_folder

    texts = [body for _, _, body in docs]
    started = time.perf_counter()
    with running_endpoint(EndpointConfig(model="minilm")) as ep:
        with EmbeddingsClient(ClientSettings(endpoint=ep.url)) as client:
            result = client.embed_texts(texts, input_type="document", errors="collect")
    failed = set(result.failures)  # too long for the model: left out, and their queries
    embed_s = time.perf_counter() - started
    keep = [i for i in range(len(docs)) if i not in failed]
    xb = result.vectors[keep]
    metadata = {
        "document_id": [docs[i][0] for i in keep],
        "chunk": [0] * len(keep),
        "uri": [f"python-stdlib:{docs[i][0]}" for i in keep],
        "modality": ["text"] * len(keep),
        "text": [docs[i][2] for i in keep],
    }
    build_folder(
        folder,
        xb,
        metadata,
        encoding="float",
        model="all-MiniLM-L6-v2",
        dimensions=xb.shape[1],
        endpoint="local://minilm",
        api_version="2024-05-01-preview",
        input_type="document",
        config=BuildConfig(factory="IDMap2,Flat", eval_queries=0),
    )
    return {"embedded": len(keep), "refused": len(failed), "embed_s": round(embed_s, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=1500)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="keep the folder and the BEIR files here")
    args = p.parse_args(argv)

    from corpusbeam.retrieval.relevance import evaluate_relevance, format_table
    from corpusbeam.retrieval.searcher import Searcher

    docs, queries, qrels, available = labelled_set(args.docs, args.queries, args.seed)
    work = Path(args.cache or tempfile.mkdtemp(prefix="relevance-"))
    work.mkdir(parents=True, exist_ok=True)
    tag = f"docs{len(docs)}-q{len(queries)}-s{args.seed}"
    folder = work / f"index-{tag}"
    info = {"built": False}
    if not (folder / "manifest.json").exists():
        info = {"built": True, **build(folder, docs)}
    from indexes import open_index

    indexed = set(open_index(folder).metadata().column("document_id").to_pylist())
    qrels = {q: j for q, j in qrels.items() if set(j) <= indexed}
    queries = {q: t for q, t in queries.items() if q in qrels}
    (work / f"queries-{tag}.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    (work / f"qrels-{tag}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t{s}\n" for q, j in qrels.items() for d, s in j.items())
    )
    with Searcher(folder) as searcher:
        result = evaluate_relevance(searcher, queries, qrels)
    extra = {"docs": len(docs), "queries": result["queries"], "available_pairs": available}
    for mode, values in result["modes"].items():
        for metric in ("ndcg@10", "recall@100", "recall@10", "mrr@10"):
            emit(BENCH, f"{mode}_{metric}", values[metric], "score", **extra)
    best = max(result["modes"]["dense"]["ndcg@10"], result["modes"]["lexical"]["ndcg@10"])
    hybrid = result["modes"]["hybrid"]["ndcg@10"]
    emit(
        BENCH,
        "hybrid_vs_best_ndcg@10",
        round(hybrid / best, 4),
        "ratio",
        baseline="max(dense, lexical) nDCG@10",
        **extra,
        **info,
    )
    print(format_table(result), f"folder: {folder}", sep="\n", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
