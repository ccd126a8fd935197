"""The index job's flag groups for its quality gate, resume and token cap, and dry run
(``corpusbeam index``; shared with no other command, kept here so ``index`` stays short)."""

from __future__ import annotations

import argparse

from pipeline.config import IndexJobConfig

__all__ = ["dry_run_flags", "gate_flags", "resume_flags"]


def dry_run_flags(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("dry run")
    d.add_argument(
        "--dry-run",
        action="store_true",
        help="read and chunk the inputs, compare them with the live version and print what "
        "a run would embed and cost; sends no embedding request (only the endpoint's "
        "/info), writes nothing",
    )
    d.add_argument(
        "--price-per-million-tokens",
        type=float,
        metavar="PRICE",
        help="--dry-run: the endpoint's price for a million input tokens, for the cost",
    )


def gate_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "quality gate", "measured before CURRENT moves; a rejected version is kept, not made live"
    )
    g.add_argument("--gate-queries", metavar="FILE", help="BEIR queries.jsonl (with --gate-qrels)")
    g.add_argument("--gate-qrels", metavar="FILE", help="BEIR qrels TSV (with --gate-queries)")
    g.add_argument(
        "--gate-max-drop",
        type=float,
        default=IndexJobConfig.gate_max_drop,
        metavar="X",
        help="reject when nDCG@10 falls below the live version's by more than X",
    )
    g.add_argument(
        "--min-recall",
        type=float,
        metavar="X",
        help="reject when recall@10 against exact search is below X (labels not needed)",
    )


def resume_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("resume and cost")
    g.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="neither persist embedded batches as checkpoints nor take vectors from a "
        "killed or capped run's checkpoints",
    )
    g.add_argument(
        "--checkpoint-max-age",
        dest="checkpoint_max_age_days",
        type=float,
        metavar="DAYS",
        default=IndexJobConfig.checkpoint_max_age_days,
        help="checkpoints no published version consumed are deleted after this many days",
    )
    g.add_argument(
        "--max-embed-tokens",
        type=int,
        metavar="N",
        help="stop embedding before the run would pass N tokens (as the endpoint counts "
        "them); exits 4, publishes nothing, and the next run goes on from the checkpoints",
    )
