"""The job's side of resuming: which checkpoints a run reads and writes, their expiry and
clearing, a pipeline run again when a worker process is lost, and the capped run's result.

``checkpoint_digest(cfg, model=..., endpoint=...)`` names the embedding settings (what
``transforms.checkpoints.settings_digest`` digests); a dry run counts what a run would
not embed again with::

    from transforms.checkpoints import checkpoint_location, read_checkpointed
    ids, digests = read_checkpointed(checkpoint_location(cfg.output, digest))

A run (``prepare``) first deletes batches older than ``--checkpoint-max-age``, then
persists its own batches into its digest's folder and takes what is there; once its
version is published it clears that folder (``clear_published``): the version holds every
vector. A run that reaches ``--max-embed-tokens`` publishes nothing
(``budget_reached``) and leaves its checkpoints for the next run.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusbeam.exit_codes import ExitCode
from indexes.storage.manifest import sanitize_endpoint
from pipeline.config import IndexJobConfig
from pipeline.job import IndexJobResult
from pipeline.job.plan import JobPlan
from pipeline.job.report import budget_section, job_section
from transforms import checkpoints
from transforms.token_cap import BUDGET

__all__ = [
    "WORKER_LOST",
    "budget_reached",
    "checkpoint_digest",
    "clear_attempt",
    "clear_published",
    "embedding_settings",
    "prepare",
    "worker_lost",
]

log = logging.getLogger(__name__)

# What the runners say when a worker process died under a bundle: the pipeline is run
# again (its embedded batches taken from the checkpoints), at most ``RETRIES`` times.
WORKER_LOST = ("Channel closed prematurely", "Socket closed")
RETRIES = 2


def embedding_settings(cfg: IndexJobConfig, *, model: str, endpoint: str) -> dict:
    """What a vector depends on, beside its chunk's text: model, endpoint, deployment,
    dimensions, encodings, input type and the chunking options."""
    from corpusbeam.inference.derive import EncodingPlan

    enc = EncodingPlan.of(cfg.encoding_format, cfg.wire_encoding)
    return {
        "model": model,
        "endpoint": sanitize_endpoint(endpoint) or "",
        "deployment": cfg.deployment or "",
        "dimensions": cfg.dimensions,
        "encoding": enc.index,
        "wire_encoding": enc.wire,
        "rescored": enc.rescored,
        "input_type": cfg.input_type,
        "max_tokens": cfg.max_tokens,
        "overlap_tokens": cfg.overlap_tokens,
        "max_input_tokens": cfg.max_input_tokens,
        "token_count": cfg.token_count,
        "text_field": cfg.text_field,
    }


def checkpoint_digest(cfg: IndexJobConfig, *, model: str, endpoint: str) -> str:
    """The settings digest naming ``cfg``'s checkpoint folder (model: ``/info``'s name as
    the manifest records it; endpoint: as the plan records it)."""
    return checkpoints.settings_digest(embedding_settings(cfg, model=model, endpoint=endpoint))


def _location(plan: JobPlan, root: str) -> str:
    digest = checkpoint_digest(plan.config, model=plan.model.model, endpoint=plan.endpoint)
    return checkpoints.checkpoint_location(root, digest)


def prepare(plan: JobPlan, root: str) -> str | None:
    """Expire old checkpoints under ``root``; the run's checkpoint folder (None with
    ``--no-resume``)."""
    cfg = plan.config
    FileSystems.set_options(PipelineOptions(list(cfg.pipeline_args)))  # s3://, gs:// options
    try:
        gone = checkpoints.expire(root, cfg.checkpoint_max_age_days)
    except Exception as exc:  # a failure only warns: the next run tries again
        log.warning("could not expire old checkpoints under %s: %s", root, exc)
        gone = 0
    if gone:
        log.info(
            "deleted %d checkpointed batches older than %s days", gone, cfg.checkpoint_max_age_days
        )
    return _location(plan, root) if cfg.resume else None


def clear_published(plan: JobPlan, root: str) -> None:
    """The version is live and holds every vector: its settings' checkpoints go."""
    try:
        checkpoints.clear(_location(plan, root))
    except Exception as exc:
        log.warning("could not clear the consumed checkpoints under %s: %s", root, exc)


def worker_lost(exc: BaseException) -> bool:
    """Whether a pipeline failed because a worker process died (not because of a DoFn's
    own error, which a new attempt would meet again)."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:  # gRPC's chains can loop
        if any(m in str(seen) for m in WORKER_LOST):
            return True
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return False


def clear_attempt(staging: str) -> None:
    """A failed attempt's scratch files, before the pipeline runs again: all but the
    token ledgers (the tokens were spent)."""
    base = staging.rstrip("/")
    if "://" not in base:
        if Path(base).is_dir():
            for child in Path(base).iterdir():
                if child.name != BUDGET:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        return
    found = FileSystems.match([f"{base}/**"])[0].metadata_list
    doomed = [m.path for m in found if f"/{BUDGET}/" not in m.path]
    if doomed:
        FileSystems.delete(doomed)


def budget_reached(
    plan: JobPlan, counters: dict[str, int], *, seconds: float, extra: dict
) -> IndexJobResult:
    """The capped run's result: nothing published, ``ExitCode.BUDGET_REACHED``."""
    report = {
        "version": None,
        "previous_version": plan.live_version,
        "published": False,
        "job": job_section(plan),
        "counts": {
            "documents_read": counters.get("documents_read", 0),
            "images_read": counters.get("images_read", 0),
            "chunks": counters.get("chunks", 0),
            "embedded": counters.get("inputs_embedded", 0),
            "reused": counters.get("inputs_reused", 0),
            "resumed": counters.get("inputs_resumed", 0),
            "failed": counters.get("inputs_failed", 0),
            "indexed": 0,
        },
        "requests": {
            "requests": counters.get("requests", 0),
            "retries": counters.get("retries", 0),
            "throttled_429": counters.get("throttled", 0),
            "prompt_tokens": counters.get("prompt_tokens", 0),
        },
        "budget": budget_section(plan.config, counters),
        "seconds": {"pipeline": round(seconds, 3), "total": round(seconds, 3)},
        **extra,
    }
    folder = plan.live_version or ""
    return IndexJobResult(
        version=plan.live_version or "",
        folder=folder,
        exit_code=ExitCode.BUDGET_REACHED,
        report=report,
    )
