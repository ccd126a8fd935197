"""``corpusbeam index --dry-run``: what a run would embed, and what it would cost, first.

``dry_run(cfg)`` resolves the run's plan as the job does (``pipeline.job.plan.planned``:
the endpoint's ``GET /info`` for the model's limits, the live version and whether its
vectors are valid for these settings, the files a layered update does not read again),
then reads and chunks the inputs with the job's own steps (``transforms.read``'s matcher
and reader, ``transforms.chunk``'s chunker), called directly in this process, one
document at a time, and compares each chunk with the live version's ids and content hashes
as ``transforms.reuse`` does. It sends no embedding request and writes nothing under the
output: no lock, no lease, no version folder, no staging (the local reference endpoint,
when no ``--endpoint`` is given, is started for ``/info`` only, as the job starts it).

Why not a Beam pipeline: the answer is a handful of counts and sums, which a pipeline
would have to carry back through its metrics; reading in the launcher needs no runner
start and no workers, and memory stays bounded by one file's documents plus the live
version's ids, hashes and document keys (32 bytes a row) and 8 bytes a document seen.
The price is one process: a corpus the job spreads over many workers is read here by one.

Documents are new (no chunk of theirs in the live version), changed, unchanged (every
chunk the same, none gone) or deleted (in the live version, not in the inputs); the
documents of files not read again count as unchanged. Chunks to embed are those the job
would not reuse; their tokens are this client's count (``TokenBudget.base``) times the
calibration (``pipeline.dry_run_live.calibration``) when the live run gives one; requests
are packed as the client packs them (``pack_requests``, one batch of ``max_concurrency x
max_inputs`` at a time); time is at the live run's tokens a second; cost at the price given.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusbeam.inference.token_budget import TokenBudget
from pipeline.config import IndexJobConfig
from pipeline.dry_run_live import calibration, live_rows, rate
from pipeline.dry_run_output import live_report, read_only_output
from pipeline.dry_run_walk import walk
from pipeline.job.plan import JobPlan, planned
from pipeline.unchanged import input_fingerprint, unchanged_result
from transforms.previous import PreviousVersion

__all__ = ["DryRunResult", "dry_run"]


@dataclass(frozen=True, kw_only=True)
class DryRunResult:
    """What a run would do (see the module docstring); ``to_dict`` is ``--json``'s object."""

    output: str
    live_version: str | None
    nothing_to_do: bool  # no input file nor setting changed: the run would do nothing
    reuse: bool  # the live version's vectors are valid for this run's settings
    model: str
    token_limit: int | None
    read_info: bool  # the endpoint's GET /info was read (the only request sent)
    elapsed_seconds: float  # what the dry run itself took, from its call to its answer
    documents: dict[str, int]  # new, changed, unchanged, deleted, failed
    files: dict[str, int]  # read, not_read_again
    chunks: dict[str, int]  # total, to_embed, reused, checkpointed, deleted, images
    tokens: dict  # to_embed, counted, ratio, calibrated, calibration, counter
    requests: int
    seconds: float | None  # at the live run's measured rate
    rate_tokens_per_second: float | None
    price_per_million_tokens: float | None
    cost: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def dry_run(cfg: IndexJobConfig, *, price_per_million_tokens: float | None = None) -> DryRunResult:
    """What ``cfg``'s run would do; nothing sent but ``/info``, nothing written."""
    started = time.monotonic()
    FileSystems.set_options(PipelineOptions(list(cfg.pipeline_args)))  # as the job's pipeline
    run = read_only_output(cfg)
    report = live_report(run)
    fingerprint = None if "://" in cfg.output else input_fingerprint(cfg)
    live_prev = (
        PreviousVersion.from_manifest(run.previous, run.previous_manifest)
        if run.previous and run.previous_manifest
        else None
    )
    if unchanged_result(cfg, fingerprint) is not None:
        result = _nothing_to_do(cfg, run.previous, live_prev, report, price_per_million_tokens)
        return replace(result, elapsed_seconds=round(time.monotonic() - started, 3))
    with planned(cfg, run, fingerprint) as plan:
        skip = frozenset(plan.skip or {})
        live = live_rows(live_prev, skip)
        same_model = run.previous_manifest and run.previous_manifest.model == plan.model.model
        cal = calibration(report, live_prev, plan.model.budget) if same_model else None
        tally, matched = walk(plan, live, _checkpointed(plan), cal.ratio if cal else None)
    result = _result(plan, live, tally, matched, cal, report, price_per_million_tokens)
    return replace(result, elapsed_seconds=round(time.monotonic() - started, 3))


def _checkpointed(plan: JobPlan) -> tuple[np.ndarray, np.ndarray]:
    """(ids, content-hash digests as ``transforms.reuse.hash_digest``), sorted by id, of the
    chunks a killed or capped run with these settings embedded and the next run takes from
    its checkpoints (``transforms.checkpoints``); none with ``--no-resume``."""
    if not plan.config.resume:
        empty = np.empty(0, np.int64)
        return empty, empty
    from pipeline.job.resume import checkpoint_digest
    from transforms.checkpoints import checkpoint_location, read_checkpointed

    FileSystems.set_options(PipelineOptions(list(plan.config.pipeline_args)))  # s3://, gs://
    digest = checkpoint_digest(plan.config, model=plan.model.model, endpoint=plan.endpoint)
    return read_checkpointed(checkpoint_location(plan.config.output.rstrip("/"), digest))


def _result(plan, live, tally, matched, cal, report, price) -> DryRunResult:
    gone_rows = ~matched & ~live.skipped
    same = np.frombuffer(tally.same, np.int64)
    # every chunk as the live version has it, but some of its live rows are gone
    late = np.isin(same, live.documents[gone_rows])
    documents = dict(tally.documents)
    documents["changed"] += int(late.sum())
    documents["unchanged"] = int((~late).sum()) + np.unique(live.documents[live.skipped]).size
    not_read = live.documents[~live.skipped]
    documents["deleted"] = int(np.setdiff1d(not_read, np.frombuffer(tally.seen, np.int64)).size)
    kept_unread = int(live.skipped.sum())
    tokens = math.ceil(tally.counted * (cal.ratio if cal else 1.0))
    speed = rate(report)
    return DryRunResult(
        output=plan.config.output,
        live_version=plan.live_version,
        nothing_to_do=False,
        reuse=plan.previous is not None,
        model=plan.model.model,
        token_limit=plan.model.budget.limit,
        read_info=True,
        elapsed_seconds=0.0,
        documents=documents,
        files={"read": tally.files_read, "not_read_again": tally.files_skipped},
        chunks={
            "total": tally.chunks + tally.images + kept_unread,
            "to_embed": tally.to_embed,
            "reused": tally.reused + kept_unread,
            "checkpointed": tally.checkpointed,
            "deleted": int(gone_rows.sum()),
            "images": tally.images,
        },
        tokens=_tokens(tokens, tally.counted, cal, plan.model.budget),
        requests=tally.requests,
        **_time_and_cost(tokens, speed, price),
    )


def _time_and_cost(tokens: int, speed: float | None, price: float | None) -> dict:
    return {
        "seconds": None if speed is None else round(tokens / speed, 1),
        "rate_tokens_per_second": None if speed is None else round(speed, 1),
        "price_per_million_tokens": price,
        "cost": None if price is None else tokens * price / 1e6,
    }


def _tokens(tokens: int, counted: int, cal, budget: TokenBudget) -> dict:
    return {
        "to_embed": tokens,
        "counted": counted,
        "counter": "the model's tokenizer" if budget.counter is not None else "UTF-8 bytes / 4",
        "calibrated": cal is not None,
        "ratio": round(cal.ratio, 4) if cal else 1.0,
        "calibration": cal.source
        if cal
        else "none: the live run measured no usage to calibrate by",
    }


def _nothing_to_do(cfg, previous_folder, live_prev, report, price) -> DryRunResult:
    """No input file nor setting changed: the job answers with the live version."""
    live = live_rows(live_prev)
    rows = int(live.ids.size)
    return DryRunResult(
        output=cfg.output,
        live_version=str(previous_folder).rstrip("/").rsplit("/", 1)[-1],
        nothing_to_do=True,
        reuse=True,
        model=(report or {}).get("model", {}).get("name") or "",
        token_limit=None,
        read_info=False,
        elapsed_seconds=0.0,
        documents={
            "new": 0,
            "changed": 0,
            "unchanged": int(np.unique(live.documents).size),
            "deleted": 0,
            "failed": int((report or {}).get("counts", {}).get("failed", 0)),
        },
        files={"read": 0, "not_read_again": len((input_fingerprint(cfg) or {}).get("files", []))},
        chunks={
            "total": rows,
            "to_embed": 0,
            "reused": rows,
            "checkpointed": 0,
            "deleted": 0,
            "images": 0,
        },
        tokens={
            "to_embed": 0,
            "counted": 0,
            "counter": "",
            "calibrated": False,
            "ratio": 1.0,
            "calibration": "none needed: nothing to embed",
        },
        requests=0,
        **_time_and_cost(0, rate(report), price),
    )
