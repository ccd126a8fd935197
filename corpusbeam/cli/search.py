"""``corpusbeam search``: one query against an index folder (or an index job's DIR).

    corpusbeam search DIR "text" [--image PATH] [-k N] [--filter JSON] [--json]
                      [--mode dense|lexical|hybrid] [--fusion rrf|convex]
                      [--weights dense=W,lexical=W] [--rrf-k K]
                      [--group [--per-document N]] [--diversity X] [--snippet WORDS]
                      [--cursor C]

A text alone is a text query; ``--image PATH`` alone an image query; both together send
the image with the text (for joint image-text models). ``--json`` prints
``{"hits": [{"id", "score", "document_id", "uri", "text", "metadata"}, ...], "mode",
"fusion"}`` (plus ``"ranks"`` for lexical and hybrid searches); ``fusion`` is
``{"method", "weights", "tuned"}`` for a hybrid search, else null. ``--mode``: how a text
query is searched (default hybrid on folders with a lexical index, else dense;
``corpusbeam.retrieval.hybrid``); ``--fusion``, ``--weights``, ``--rrf-k``: how hybrid fuses
(default: the folder's tuned fusion; ``corpusbeam.retrieval.fusion``).
``--group``, ``--diversity``, ``--snippet`` and ``--cursor`` are the page options of
``corpusbeam.retrieval.results``; with them ``--json`` adds ``"next_cursor"`` (and
``"groups"`` when grouped), which ``--cursor`` takes for the next page (with the same
query, mode and fusion).
"""

from __future__ import annotations

import argparse
import json
import logging

from corpusbeam.cli.options import (
    add_endpoint_arguments,
    add_fusion_arguments,
    check_fusion_applies,
    credential_from_args,
    fusion_from_args,
)
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.hybrid import MODES

__all__ = ["add_parser", "run"]


def _filter(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("filter", text, f"is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError("filter", text, 'must be a JSON object, e.g. {"lang": "en"}')
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an index folder with a text or an image")
    p.add_argument(
        "dir", metavar="DIR", help="index folder (manifest.json) or index output DIR (CURRENT)"
    )
    p.add_argument("text", nargs="?", help="the query text")
    p.add_argument("--image", metavar="PATH", help="an image query (png, jpeg, webp, gif)")
    p.add_argument("-k", type=int, default=10, help="hits to return (default 10)")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"lang": "en"}\'')
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.add_argument(
        "--mode",
        choices=MODES,
        help="text queries: dense, lexical (BM25) or hybrid (both, fused: see --fusion); "
        "default hybrid when the folder has a lexical index, else dense",
    )
    add_fusion_arguments(p)
    p.add_argument("--group", action="store_true", help="group by document: k documents")
    p.add_argument(
        "--per-document", type=int, default=3, help="chunks shown a document (default 3)"
    )
    p.add_argument(
        "--diversity", type=float, default=0.0, help="MMR diversity in [0, 1] (default 0: off)"
    )
    p.add_argument(
        "--snippet", type=int, default=0, metavar="WORDS", help="show a snippet of WORDS words"
    )
    p.add_argument("--cursor", help="the next_cursor of a previous --json answer: the next page")
    p.add_argument("--no-rescore", action="store_true", help="rank by the index alone")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 checks")
    add_endpoint_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.text is None and args.image is None:
        raise ConfigError("query", None, "give a text, --image PATH, or both")
    if args.k < 1:
        raise ConfigError("k", args.k, "must be at least 1")
    flt = _filter(args.filter)
    fusion_opts = fusion_from_args(args)
    if not getattr(args, "verbose", False):
        # A local:// index starts its own endpoint: its line a request is not the answer.
        logging.getLogger("corpusbeam.inference.server").setLevel(logging.WARNING)
    from corpusbeam.inference.client import ImageInput
    from corpusbeam.retrieval.results import PageOptions, search_page
    from corpusbeam.retrieval.searcher import Searcher

    options = PageOptions(
        k=args.k,
        group=args.group,
        per_document=args.per_document,
        diversity=args.diversity,
        snippet=args.snippet,
        cursor=args.cursor,
    )
    paged = args.group or args.diversity or args.snippet or args.cursor
    with Searcher(
        args.dir,
        endpoint=args.endpoint,
        credential=credential_from_args(args),
        rescore=False if args.no_rescore else None,
        verify=not args.no_verify,
    ) as searcher:
        image = None
        if args.image is not None:
            image = ImageInput(image=args.image, text=args.text) if args.text else args.image
        if image is not None and args.mode not in (None, "dense"):
            raise ConfigError("mode", args.mode, "image queries are searched dense only")
        text = None if image is not None else args.text
        mode = "dense" if image is not None else searcher.resolve_mode(args.mode)
        check_fusion_applies(mode, fusion_opts)
        page = search_page(
            [searcher],
            text,
            image=image,
            filter=flt,
            mode=mode,
            fusion=fusion_opts if mode == "hybrid" else None,
            options=options,
        )
    hits = page.hits
    answered = None if page.fusion is None else page.fusion.describe()
    if args.json:
        rows = [h.to_dict() for h in hits]
        for row in rows:
            row.pop("index", None)  # one index: the shape the issue asks for
        out: dict = {"hits": rows, "mode": page.mode, "fusion": answered}
        if paged:
            out["next_cursor"] = page.next_cursor
        if page.groups is not None:
            out["groups"] = [g.to_dict() for g in page.groups]
            for g in out["groups"]:
                g.pop("index", None)
                for row in g["hits"]:
                    row.pop("index", None)
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if page.fusion is not None:
        print(f"hybrid: {page.fusion.label()}")
    if page.groups is not None:
        for rank, g in enumerate(page.groups, 1):
            print(f"{rank:>3}  {g.score:8.4f}  {g.document_id}  ({g.count} matching chunks)")
            _print_hits(g.hits, indent="     ")
    else:
        _print_hits(hits)
    if not hits:
        print("no hits")
    if paged and page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}")
    return 0


def _print_hits(hits, indent: str = "") -> None:
    for rank, h in enumerate(hits, 1):
        text = (h.snippet["text"] if h.snippet else h.text or "").replace("\n", " ")
        text = text if len(text) <= 80 else text[:77] + "..."
        ranks = "  " + " ".join(f"{n}#{r}" for n, r in h.ranks.items()) if h.ranks else ""
        print(f"{indent}{rank:>3}  {h.score:8.4f}  {h.document_id}  {h.uri}{ranks}")
        print(f"{indent}     {text}")
