"""The index job: corpus in, a new index version out, night after night.

``run_index_job(IndexJobConfig(...))`` is what ``corpusbeam index`` calls:

1. take the output's lock, find the live version (for reuse), name the new one;
2. start the local reference endpoint when no endpoint is given;
3. run the Beam pipeline (``pipeline.graph``): read, chunk, reuse unchanged vectors,
   embed the rest, build index shards on the workers, write failures;
4. merge the shards into the new version's folder (``indexes.assemble_folder``),
   write ``failures.parquet`` and ``report.json``, and switch ``CURRENT`` to it.

A run that fails or is killed before step 4 ends leaves the live version serving.
The exit status says how it went: 0 every input embedded, 3 finished with failed
inputs (listed in ``failures.parquet``), anything else a failed run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from indexes import versions
from indexes.assemble import assemble_folder
from indexes.config import BuildConfig
from indexes.files import MANIFEST
from indexes.manifest import Manifest, sanitize_endpoint
from inference.client import ClientSettings, EmbeddingsClient, EnvApiKey
from inference.errors import ConfigError, CorpusbeamError, JobError
from inference.protocol import local_endpoint
from inference.server import EndpointConfig, running_endpoint
from pipeline.config import IndexJobConfig, runner_name
from pipeline.graph import FAILURE_SCHEMA, THUMBNAILS, GraphConfig, build_graph, read_shard_list
from pipeline.progress import ProgressTracker, Snapshot, tracking
from transforms.index_shards import load_trained

__all__ = ["EXIT_FAILED_INPUTS", "EXIT_OK", "IndexJobConfig", "IndexJobResult", "run_index_job"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED_INPUTS = 3


@dataclass(frozen=True)
class IndexJobResult:
    version: str
    folder: Path
    exit_code: int
    report: dict = field(default_factory=dict)


@contextlib.contextmanager
def _endpoint(cfg: IndexJobConfig) -> Iterator[tuple[ClientSettings, str, str]]:
    """(client settings, the endpoint as the manifest records it, the model's name)."""
    common = {
        "api_version": cfg.api_version,
        "model": cfg.model,
        "deployment": cfg.deployment,
        "encoding_format": cfg.encoding_format,
        "dimensions": cfg.dimensions,
        "input_type": cfg.input_type,
        "max_inputs": cfg.max_inputs,
        "max_concurrency": cfg.max_concurrency,
    }
    if cfg.endpoint is None:
        with running_endpoint(EndpointConfig(model=cfg.local_model), subprocess=True) as ep:
            settings = ClientSettings(endpoint=ep.url, **common)
            yield settings, local_endpoint(cfg.local_model), _model_name(settings, cfg)
        return
    credential = EnvApiKey(var=cfg.api_key_env) if cfg.api_key_env else None
    settings = ClientSettings(endpoint=cfg.endpoint, credential=credential, **common)
    yield settings, cfg.endpoint, _model_name(settings, cfg)


def _model_name(settings: ClientSettings, cfg: IndexJobConfig) -> str:
    if cfg.model:
        return cfg.model
    try:
        with EmbeddingsClient(settings) as client:
            return str(client.info().get("model_name") or "unknown")
    except CorpusbeamError as exc:
        log.warning("GET /info failed (%s); recording the model as 'unknown'", exc)
        return "unknown"


def _reusable(previous: Path | None, cfg: IndexJobConfig, endpoint: str, model: str) -> Path | None:
    """The live version, when its vectors are valid for this run's settings."""
    if previous is None or not cfg.reuse:
        return None
    try:
        manifest = Manifest.from_json((previous / MANIFEST).read_text())
    except (OSError, CorpusbeamError) as exc:
        log.warning("not reusing %s: %s", previous, exc)
        return None
    same = (
        manifest.model == model
        and manifest.encoding == cfg.encoding_format
        and manifest.input_type == cfg.input_type
        and (cfg.dimensions is None or manifest.dimensions == cfg.dimensions)
        and (manifest.endpoint or "") == (sanitize_endpoint(endpoint) or "")
    )
    if not same:
        log.info("not reusing %s: it was embedded with other settings", previous.name)
    return previous if same else None


def run_index_job(
    cfg: IndexJobConfig, on_progress: Callable[[Snapshot], None] | None = None
) -> IndexJobResult:
    """Run the whole job; raises CorpusbeamError for a failed run. ``on_progress`` gets a
    ``pipeline.progress.Snapshot`` four times a second while it runs."""
    with tracking(len(cfg.inputs), on_progress) as tracker:
        return _run(cfg, tracker)


def _run(cfg: IndexJobConfig, tracker: ProgressTracker) -> IndexJobResult:
    started = time.monotonic()
    tracker.stage("starting")
    with versions.acquire_lock(cfg.output) as out:
        previous = versions.current_version(out)
        name = versions.new_version_name()
        work = versions.partial_folder(out, name)
        staging = versions.partial_folder(out, f"{name}-staging")
        with _endpoint(cfg) as (settings, endpoint, model):
            reuse = _reusable(previous, cfg, endpoint, model)
            graph = GraphConfig(
                inputs=cfg.inputs,
                staging=str(staging),
                settings=settings,
                input_type=cfg.input_type,
                max_tokens=cfg.max_tokens,
                overlap_tokens=cfg.overlap_tokens,
                text_field=cfg.text_field,
                id_field=cfg.id_field,
                factory=None if cfg.index == "auto" else cfg.index,
                memory_budget=cfg.memory_budget,
                shards=cfg.shards,
                previous=str(reuse) if reuse else None,
            )
            p = beam.Pipeline(options=PipelineOptions(list(cfg.pipeline_args)))
            build_graph(p, graph)
            log.info("running the pipeline (%s)", runner_name(cfg.pipeline_args))
            tracker.stage(None)  # read off the workers' counts
            try:
                result = p.run()
                result.wait_until_finish()
            except Exception as exc:
                raise JobError(f"the pipeline failed: {_reason(exc)}") from exc
            counters = _counters(result)
            tracker.pipeline_done(counters)
        pipeline_seconds = time.monotonic() - started
        tracker.stage("merging")
        failures = _collect_failures(staging)
        trained = load_trained(str(staging))
        if trained is None:
            raise ConfigError(
                "inputs", list(cfg.inputs), f"nothing to index: {failures.num_rows} inputs failed"
            )
        spec, blob = trained
        manifest = assemble_folder(
            work,
            spec=spec,
            trained=blob,
            shards=read_shard_list(str(staging)),
            model=model,
            endpoint=endpoint,
            api_version=cfg.api_version,
            input_type=cfg.input_type,
            config=BuildConfig(memory_budget=cfg.memory_budget),
            read=_read_any,
        )
        if (staging / THUMBNAILS).is_dir():  # for the search page's image hits
            (staging / THUMBNAILS).rename(work / THUMBNAILS)
        shutil.rmtree(staging)
        pq.write_table(failures, work / "failures.parquet")
        report = _report(
            cfg,
            name,
            previous,
            reuse,
            manifest,
            counters,
            failures,
            pipeline_seconds,
            time.monotonic() - started,
        )
        tracker.stage("publishing")
        report.update(tracker.record())
        (work / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        folder = versions.publish(out, work, name)
    code = EXIT_FAILED_INPUTS if failures.num_rows else EXIT_OK
    return IndexJobResult(version=name, folder=folder, exit_code=code, report=report)


def _read_any(path: str) -> bytes:
    """Read a file from any Beam filesystem (the shards' staging may be gs:// or s3://)."""
    with FileSystems.open(path) as f:
        return f.read()


def _reason(exc: BaseException) -> str:
    """The innermost error's own words: runners wrap a DoFn's error in their own."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    text = str(seen) or type(seen).__name__
    if isinstance(seen, CorpusbeamError):
        return text
    # The portable runners send the worker's traceback as text: keep its last line.
    lines = [line for line in str(exc).splitlines() if line.strip()]
    tail = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
    return tail.split(" [while running")[0].strip() or text


def _counters(result) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace("corpusbeam"))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def _collect_failures(staging: Path) -> pa.Table:
    files = sorted(staging.glob("failures-*.parquet"))
    tables = [pq.read_table(f) for f in files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return FAILURE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("source_id", "ascending")])


def _report(cfg, name, previous, reuse, manifest, counters, failures, pipeline_s, total_s):
    by_stage: dict[str, int] = {}
    for stage in failures.column("stage").to_pylist():
        by_stage[stage] = by_stage.get(stage, 0) + 1
    job = asdict(cfg)
    job["inputs"] = list(cfg.inputs)
    job["pipeline_args"] = list(cfg.pipeline_args)
    return {
        "version": name,
        "previous_version": previous.name if previous else None,
        "reused_from": reuse.name if reuse else None,
        "job": job,
        "counts": {
            "documents_read": counters.get("documents_read", 0),
            "images_read": counters.get("images_read", 0),
            "chunks": counters.get("chunks", 0),
            "embedded": counters.get("inputs_embedded", 0),
            "reused": counters.get("inputs_reused", 0),
            "deleted": counters.get("chunks_deleted", 0),
            "failed": failures.num_rows,
            "failed_by_stage": by_stage,
            "indexed": manifest.count,
        },
        "requests": {
            "requests": counters.get("requests", 0),
            "retries": counters.get("retries", 0),
            "throttled_429": counters.get("throttled", 0),
            "splits": counters.get("splits", 0),
            "prompt_tokens": counters.get("prompt_tokens", 0),
            "prompt_patches": counters.get("prompt_patches", 0),
        },
        "seconds": {
            "pipeline": round(pipeline_s, 3),
            "merge_and_publish": round(total_s - pipeline_s, 3),
            "total": round(total_s, 3),
        },
        "index": {
            "factory": manifest.index_factory,
            "count": manifest.count,
            "dimensions": manifest.dimensions,
            "encoding": manifest.encoding,
            "recall": manifest.recall,
        },
    }
