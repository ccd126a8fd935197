"""The run's ``report.json``: what the plan decided and what came of it.

``job_report(plan, outcome)`` reads the ``JobPlan`` (``pipeline.job.plan``) and a
``JobOutcome``: the workers' counters and learned token budget (read off Beam's metrics
by ``read_metrics``), the failures, the manifest the finish wrote and the time each half
took.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import pyarrow as pa
from apache_beam.metrics import MetricsFilter

from indexes.storage.manifest import Manifest
from pipeline.job.plan import JobPlan
from pipeline.outputs import redact_args

__all__ = ["JobOutcome", "budget_section", "job_report", "job_section", "read_metrics"]


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """What the run did, as the report tells it."""

    counters: Mapping[str, int]  # the workers' counters (namespace ``corpusbeam``)
    learned: Mapping[str, float]  # the token limit and ratio the workers ended with
    failures: pa.Table  # every input that failed (``failures.parquet``)
    manifest: Manifest  # the new version's
    update: Mapping  # how the finish updated or built the index
    pipeline_seconds: float
    total_seconds: float


def read_metrics(result) -> tuple[dict[str, int], dict]:
    """The pipeline's counters in namespace ``corpusbeam``, summed over steps, and the
    token limit and ratio the workers ended with (``EmbedTexts`` reports them)."""
    found = result.metrics().query(MetricsFilter().with_namespace("corpusbeam"))
    counters: dict[str, int] = {}
    for c in found["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(value or 0)
    learned: dict = {}
    for d in found["distributions"]:
        value = d.committed if d.committed is not None else d.attempted
        if not value or not value.count:
            continue
        if d.key.metric.name == "token_limit":
            learned["limit"] = min(learned.get("limit", value.min), value.min)
        elif d.key.metric.name == "token_ratio_milli":
            learned["ratio"] = max(learned.get("ratio", 0.0), value.max / 1000)
    return counters, learned


def job_report(plan: JobPlan, outcome: JobOutcome) -> dict:
    """The report's sections, in the order ``report.json`` has always had them."""
    counters, manifest = outcome.counters, outcome.manifest
    return {
        "version": plan.version,
        "previous_version": plan.live_version,
        "reused_from": plan.live_version if plan.previous else None,
        "job": job_section(plan),
        "model": plan.model.info.to_dict(),
        "counts": _counts(counters, outcome.failures, manifest),
        "requests": {
            "requests": counters.get("requests", 0),
            "retries": counters.get("retries", 0),
            "throttled_429": counters.get("throttled", 0),
            "splits": counters.get("splits", 0),
            "prompt_tokens": counters.get("prompt_tokens", 0),
            "prompt_patches": counters.get("prompt_patches", 0),
        },
        "too_long": {
            **plan.model.budget.snapshot(),
            **outcome.learned,
            "length_refusals": counters.get("length_refusals", 0),
            "cut_before_sending": counters.get("chunks_cut_before_sending", 0),
            "cut_after_refusal": counters.get("chunks_cut_after_refusal", 0),
        },
        "budget": budget_section(plan.config, counters),
        "seconds": {
            "pipeline": round(outcome.pipeline_seconds, 3),
            "merge_and_publish": round(outcome.total_seconds - outcome.pipeline_seconds, 3),
            "total": round(outcome.total_seconds, 3),
        },
        "index": {
            "factory": manifest.index_factory,
            "count": manifest.count,
            "dimensions": manifest.dimensions,
            "encoding": manifest.encoding,
            "wire_encoding": plan.encodings.wire,
            "rescored": manifest.rescore is not None,
            "note": manifest.note,
            "recall": manifest.recall,
        },
        "update": dict(outcome.update),
    }


def budget_section(cfg, counters: Mapping[str, int]) -> dict:
    """Tokens the run used (the endpoint's ``usage``), estimated before sending (the
    batches ``--max-embed-tokens`` admitted) and its cap; whether the cap stopped it."""
    over = counters.get("inputs_over_budget", 0)
    return {
        "max_embed_tokens": cfg.max_embed_tokens,
        "tokens_used": counters.get("prompt_tokens", 0),
        "tokens_estimated": counters.get("tokens_estimated", 0),
        "reached": bool(over),
        "inputs_over_budget": over,
    }


def job_section(plan: JobPlan) -> dict:
    """The options the run resolved to, its Beam options' credentials redacted."""
    job = asdict(plan.config)
    job["inputs"] = list(plan.config.inputs)
    job["pipeline_args"] = redact_args(plan.config.pipeline_args)
    return job


def _counts(counters: Mapping[str, int], failures: pa.Table, manifest: Manifest) -> dict:
    by_stage: dict[str, int] = {}
    for stage in failures.column("stage").to_pylist():
        by_stage[stage] = by_stage.get(stage, 0) + 1
    return {
        "documents_read": counters.get("documents_read", 0),
        "images_read": counters.get("images_read", 0),
        "chunks": counters.get("chunks", 0),
        "embedded": counters.get("inputs_embedded", 0),
        "reused": counters.get("inputs_reused", 0) + counters.get("rows_kept_unread", 0),
        "resumed": counters.get("inputs_resumed", 0),
        "files_skipped": counters.get("files_skipped", 0),
        "records_unchanged": counters.get("records_unchanged", 0),
        "deleted": counters.get("chunks_deleted", 0),
        "failed": failures.num_rows,
        "failed_by_stage": by_stage,
        "indexed": manifest.count,
    }
