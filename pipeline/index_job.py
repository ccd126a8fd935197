"""The index job: corpus in, a new index version out, night after night.

``run_index_job(IndexJobConfig(...))`` is what ``corpusbeam index`` calls (through
``pipeline.job``, which imports this module only when a job runs):

1. take the output's lock, find the live version (for reuse), name the new one;
2. start the local reference endpoint when no endpoint is given;
3. run the Beam pipeline (``pipeline.graph``): read, chunk, reuse unchanged vectors,
   embed the rest, write the new version's id-range parts and IVF shards on the
   workers, write failures;
4. finish the version (``pipeline.job.finish.finish_index``: the live version's index
   updated, or the index built from the shards or the parts, streamed; recall; the
   manifest): in its folder for a local output; for an object store on a worker, in a
   second small pipeline with the job's options (``pipeline.finish_remote``), which
   writes the version's files in place and leaves the manifest to the launcher;
5. write ``failures.parquet`` and ``report.json`` (and, on an object store, the
   manifest, last) and switch ``CURRENT`` to the new version.

A run that fails or is killed before step 5 ends leaves the live version serving.
The exit status says how it went: 0 every input embedded, 3 finished with failed
inputs (listed in ``failures.parquet``), anything else a failed run.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from corpusbeam.errors import ConfigError, CorpusbeamError, JobError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.client import ClientSettings, EnvApiKey
from corpusbeam.inference.derive import is_rescored, wire_encoding_for
from corpusbeam.inference.protocol import BIT_ENCODINGS, local_endpoint
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.config import BuildConfig
from indexes.storage.files import MANIFEST
from indexes.storage.layers import overlay_rows
from indexes.storage.manifest import Manifest, sanitize_endpoint
from pipeline.config import LAYER_LIMIT, IndexJobConfig, runner_name
from pipeline.finish_remote import FinishTask, finish_on_worker
from pipeline.graph import FAILURE_SCHEMA, GraphConfig, build_graph, read_part_list
from pipeline.job import IndexJobResult
from pipeline.job.finish import finish_index
from pipeline.job.tracking import MATCHERS, ProgressTracker, Snapshot, tracking
from pipeline.model_setup import ModelSetup, model_setup
from pipeline.outputs import RunOutput, open_output, redact_args
from pipeline.shard_count import auto_shards, same_parts
from pipeline.training import train_later, trains_up_front
from pipeline.unchanged import (
    carried_failures,
    input_fingerprint,
    unchanged_files,
    unchanged_result,
    write_fingerprint,
)
from pipeline.vectors_note import finish_manifest
from transforms.build_index import RUNS, has_trained, load_trained
from transforms.previous import PreviousVersion

__all__ = ["IndexJobConfig", "run_index_job"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _endpoint(cfg: IndexJobConfig) -> Iterator[tuple[ClientSettings, str, ModelSetup]]:
    """(client settings, the endpoint as the manifest records it, the model's setup)."""
    common = {
        "api_version": cfg.api_version,
        "model": cfg.model,
        "deployment": cfg.deployment,
        "encoding_format": wire_encoding_for(cfg.encoding_format, cfg.wire_encoding),
        "dimensions": cfg.dimensions,
        "input_type": cfg.input_type,
        "max_inputs": cfg.max_inputs,
        "max_concurrency": cfg.max_concurrency,
    }
    if cfg.endpoint is None:
        with running_endpoint(EndpointConfig(model=cfg.local_model), subprocess=True) as ep:
            settings = ClientSettings(endpoint=ep.url, **common)
            yield settings, local_endpoint(cfg.local_model), model_setup(settings, cfg)
        return
    credential = EnvApiKey(var=cfg.api_key_env) if cfg.api_key_env else None
    settings = ClientSettings(endpoint=cfg.endpoint, credential=credential, **common)
    yield settings, cfg.endpoint, model_setup(settings, cfg)


def _reusable(
    run: RunOutput, cfg: IndexJobConfig, endpoint: str, model: str
) -> PreviousVersion | None:
    """The live version, when its vectors are valid for this run's settings."""
    manifest = run.previous_manifest
    if run.previous is None or manifest is None or not cfg.reuse:
        return None
    wire = wire_encoding_for(cfg.encoding_format, cfg.wire_encoding)
    rescored = manifest.rescore is not None
    same = (
        manifest.model == model
        and manifest.encoding == cfg.encoding_format
        and (
            cfg.encoding_format not in BIT_ENCODINGS
            or rescored == is_rescored(cfg.encoding_format, wire)
        )
        and manifest.input_type == cfg.input_type
        and (cfg.dimensions is None or manifest.dimensions == cfg.dimensions)
        and (manifest.endpoint or "") == (sanitize_endpoint(endpoint) or "")
    )
    if not same:
        log.info("not reusing %s: it was embedded with other settings", run.previous)
        return None
    delta, removed = overlay_rows(manifest.overlay)
    from_vector = (manifest.rescore or {}).get("from") == "vector"
    # Layers while they stay small; past the limit (or --rebuild) the tables are written
    # in full again, and the next runs layer over those.
    layered = (
        cfg.layered
        and not cfg.rebuild
        and not from_vector
        and delta + removed <= LAYER_LIMIT * max(manifest.count, 1)
        and same_parts(manifest.parts, cfg.shards)
    )
    return PreviousVersion.from_manifest(run.previous, manifest, layered=layered)


def run_index_job(
    cfg: IndexJobConfig, on_progress: Callable[[Snapshot], None] | None = None
) -> IndexJobResult:
    """Run the whole job; raises CorpusbeamError for a failed run. ``on_progress`` gets a
    ``pipeline.job.tracking.Snapshot`` four times a second while it runs."""
    with tracking(len(cfg.inputs), on_progress) as tracker:
        return _run(cfg, tracker)


def _run(cfg: IndexJobConfig, tracker: ProgressTracker) -> IndexJobResult:
    started = time.monotonic()
    tracker.stage("starting")
    fingerprint = None if "://" in cfg.output else input_fingerprint(cfg)
    same = unchanged_result(cfg, fingerprint)  # nothing to do: no input or setting changed
    if same is not None:
        return _unchanged(*same, time.monotonic() - started)
    with open_output(cfg) as run:
        cfg = _resolved_shards(cfg, run, fingerprint)
        with _endpoint(cfg) as (settings, endpoint, setup):
            model = setup.model
            reuse = _reusable(run, cfg, endpoint, model)
            skip = {}
            if reuse and reuse.layered and "://" not in reuse.folder:
                skip = unchanged_files(Path(reuse.folder), fingerprint)
            images = _any_images(fingerprint)
            tracker.matchers(MATCHERS if images else 1)
            graph = GraphConfig(
                inputs=cfg.inputs,
                staging=run.staging,
                folder=run.folder,
                settings=settings,
                input_type=cfg.input_type,
                max_tokens=cfg.max_tokens,
                overlap_tokens=cfg.overlap_tokens,
                text_field=cfg.text_field,
                id_field=cfg.id_field,
                factory=None if cfg.index == "auto" else cfg.index,
                memory_budget=cfg.memory_budget,
                auto_limits=cfg.auto_limits,
                shards=cfg.shards,
                previous=reuse,
                encoding=cfg.encoding_format,
                rescored=setup.rescored,
                budget=setup.budget,
                skip=skip or None,
                images=images,
                lexical=cfg.lexical,
                train=_train_up_front(cfg, run, reuse),
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
            if reuse:  # the live version's rows neither matched nor kept unread are gone
                counters["chunks_deleted"] = (
                    reuse.count
                    - counters.get("previous_matched", 0)
                    - counters.get("rows_kept_unread", 0)
                )
            learned = _learned_budget(result)
            tracker.pipeline_done(counters)
        pipeline_seconds = time.monotonic() - started
        tracker.stage("merging")
        run.drop_staging(RUNS)  # the parts are written: nothing reads the run files again
        failures = _collect_failures(run.staging)
        if skip:  # the files not read again fail as they did
            carried = carried_failures(Path(reuse.folder), skip)
            if carried is not None and carried.num_rows:
                failures = pa.concat_tables([failures, carried.cast(failures.schema)])
        if not has_trained(run.staging):
            raise ConfigError(
                "inputs", list(cfg.inputs), f"nothing to index: {failures.num_rows} inputs failed"
            )
        finish = _finish_remote if run.remote else _finish_local
        manifest, update = finish(run, cfg, reuse, setup, endpoint)
        report = _report(
            setup,
            learned,
            cfg,
            run,
            reuse,
            manifest,
            counters,
            failures,
            pipeline_seconds,
            time.monotonic() - started,
        )
        tracker.stage("publishing")
        report["update"] = update
        report.update(tracker.record())
        files = {
            "failures.parquet": _parquet_bytes(failures),
            "report.json": (json.dumps(report, indent=2, sort_keys=True) + "\n").encode(),
        }
        if run.remote:  # the worker left the manifest to the launcher: written last
            files[MANIFEST] = manifest.to_json().encode()
        else:
            write_fingerprint(run.local, fingerprint)
        folder = run.publish(files)
    code = ExitCode.FAILED_INPUTS if failures.num_rows else ExitCode.OK
    return IndexJobResult(version=run.name, folder=folder, exit_code=code, report=report)


def _any_images(fingerprint: dict | None) -> bool:
    """Whether the inputs' listing holds an image (True when there is no listing: an
    object-store output's run lists its inputs on the workers)."""
    from transforms.formats import IMAGE_EXTENSIONS

    if fingerprint is None:
        return True
    return any(Path(f[0]).suffix.lower() in IMAGE_EXTENSIONS for f in fingerprint["files"])


def _train_up_front(cfg: IndexJobConfig, run: RunOutput, reuse: PreviousVersion | None) -> bool:
    """Whether the pipeline trains the index (``pipeline.training``): not when the finish
    is expected to update the live version's index."""
    if run.remote:  # the finish runs on a worker, which cannot start a training pipeline
        return True
    live = run.previous_manifest
    return trains_up_front(
        reusable=reuse is not None,
        rebuild=cfg.rebuild,
        factory=None if cfg.index == "auto" else cfg.index,
        live_factory=None if live is None else live.index_factory,
    )


def _resolved_shards(
    cfg: IndexJobConfig, run: RunOutput, fingerprint: dict | None
) -> IndexJobConfig:
    """``cfg`` with ``--shards auto`` replaced by a count (``pipeline.shard_count``), from
    the inputs' listing the fingerprint already holds (listed again when there is none)."""
    if cfg.shards != "auto":
        return cfg
    files = [(f[0], f[1]) for f in fingerprint["files"]] if fingerprint else None
    count, why = auto_shards(
        cfg.inputs, max_tokens=cfg.max_tokens, live=run.previous_manifest, files=files
    )
    log.info("--shards auto: %s", why)
    return replace(cfg, shards=count)


def _reached_with(cfg: IndexJobConfig) -> dict[str, str | None]:
    """What the manifest tells readers about reaching a real endpoint: the *name* of its
    key's variable (never the key) and the deployment header. Nothing for the local
    endpoint, which readers start themselves."""
    if cfg.endpoint is None:
        return {"api_key_env": None, "deployment": None}
    return {"api_key_env": cfg.api_key_env, "deployment": cfg.deployment}


def _finish_local(
    run: RunOutput,
    cfg: IndexJobConfig,
    reuse: PreviousVersion | None,
    setup: ModelSetup,
    endpoint: str,
) -> tuple[Manifest, dict]:
    """Finish the version in its local folder: the output is the launcher's disk."""
    spec, blob = load_trained(run.staging)
    parts = read_part_list(run.staging)
    manifest, update = finish_index(  # update the live version's index, or build it
        run.local,
        previous=_update_source(run) if reuse else None,
        previous_manifest=run.previous_manifest,
        factory=None if cfg.index == "auto" else cfg.index,
        rebuild=cfg.rebuild,
        spec=spec,
        trained=blob,
        parts=parts,
        model=setup.model,
        endpoint=endpoint,
        api_version=cfg.api_version,
        input_type=cfg.input_type,
        config=BuildConfig(memory_budget=cfg.memory_budget, lexical=cfg.lexical),
        read=_read_any,
        train=lambda: train_later(
            pipeline_args=cfg.pipeline_args,
            staging=run.staging,
            folder=run.folder,
            spec=spec,
            parts=parts,
        ),
    )
    manifest = finish_manifest(
        run.local,
        manifest,
        info=setup.info,
        wire=setup.wire,
        rescored=setup.rescored,
        **_reached_with(cfg),
    )
    return manifest, update


def _finish_remote(
    run: RunOutput,
    cfg: IndexJobConfig,
    reuse: PreviousVersion | None,
    setup: ModelSetup,
    endpoint: str,
) -> tuple[Manifest, dict]:
    """Finish an object-store version on a worker (``pipeline.finish_remote``): the
    launcher only reads back its manifest and the report's update entry."""
    task = FinishTask(
        output=run.root,
        version=run.name,
        staging=run.staging,
        live=run.previous.rstrip("/").rsplit("/", 1)[-1] if run.previous else None,
        update_from_live=reuse is not None,
        written=run.written(),
        factory=None if cfg.index == "auto" else cfg.index,
        rebuild=cfg.rebuild,
        model=setup.model,
        endpoint=sanitize_endpoint(endpoint),
        api_version=cfg.api_version,
        input_type=cfg.input_type,
        config=BuildConfig(memory_budget=cfg.memory_budget, lexical=cfg.lexical),
        info=setup.info,
        wire=setup.wire,
        rescored=setup.rescored,
        **_reached_with(cfg),
    )
    log.info("finishing %s on a worker (%s)", run.folder, runner_name(cfg.pipeline_args))
    try:
        return finish_on_worker(task, cfg.pipeline_args)
    except CorpusbeamError:
        raise
    except Exception as exc:
        raise JobError(f"finishing the version on a worker failed: {_reason(exc)}") from exc


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _unchanged(folder: Path, live: dict, seconds: float) -> IndexJobResult:
    """The live version, unchanged: its report with this run's counts and time."""
    report = dict(live)
    indexed = live["counts"]["indexed"]
    report["counts"] = {**live["counts"], "embedded": 0, "reused": indexed, "deleted": 0}
    report["requests"] = {k: 0 for k in live.get("requests", {})}
    report["seconds"] = {"pipeline": 0.0, "merge_and_publish": 0.0, "total": round(seconds, 3)}
    report["update"] = {
        "mode": "unchanged",
        "reason": "no input file changed (paths, sizes, modification times), nor a setting",
    }
    code = ExitCode.FAILED_INPUTS if live["counts"].get("failed") else ExitCode.OK
    return IndexJobResult(version=folder.name, folder=folder, exit_code=code, report=report)


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


def _learned_budget(result) -> dict:
    """The token limit and ratio the workers ended with (``EmbedTexts`` reports them)."""
    out: dict = {}
    for d in result.metrics().query(MetricsFilter().with_namespace("corpusbeam"))["distributions"]:
        value = d.committed if d.committed is not None else d.attempted
        if not value or not value.count:
            continue
        if d.key.metric.name == "token_limit":
            out["limit"] = min(out.get("limit", value.min), value.min)
        elif d.key.metric.name == "token_ratio_milli":
            out["ratio"] = max(out.get("ratio", 0.0), value.max / 1000)
    return out


def _collect_failures(staging: str) -> pa.Table:
    match = FileSystems.match([f"{staging}/failures-*.parquet"])[0]
    files = sorted(m.path for m in match.metadata_list)
    tables = [pq.read_table(io.BytesIO(_read_any(f))) for f in files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return FAILURE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("source_id", "ascending")])


def _update_source(run: RunOutput) -> str | None:
    """The live version's local folder an update starts from."""
    return str(run.previous_folder())


def _report(setup, learned, cfg, run, reuse, manifest, counters, failures, pipeline_s, total_s):
    by_stage: dict[str, int] = {}
    for stage in failures.column("stage").to_pylist():
        by_stage[stage] = by_stage.get(stage, 0) + 1
    job = asdict(cfg)
    job["inputs"] = list(cfg.inputs)
    job["pipeline_args"] = redact_args(cfg.pipeline_args)
    previous = run.previous.rstrip("/").rsplit("/", 1)[-1] if run.previous else None
    return {
        "version": run.name,
        "previous_version": previous,
        "reused_from": previous if reuse else None,
        "job": job,
        "model": setup.info.to_dict(),
        "counts": {
            "documents_read": counters.get("documents_read", 0),
            "images_read": counters.get("images_read", 0),
            "chunks": counters.get("chunks", 0),
            "embedded": counters.get("inputs_embedded", 0),
            "reused": counters.get("inputs_reused", 0) + counters.get("rows_kept_unread", 0),
            "files_skipped": counters.get("files_skipped", 0),
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
        "too_long": {
            **setup.budget.snapshot(),
            **learned,
            "length_refusals": counters.get("length_refusals", 0),
            "cut_before_sending": counters.get("chunks_cut_before_sending", 0),
            "cut_after_refusal": counters.get("chunks_cut_after_refusal", 0),
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
            "wire_encoding": setup.wire,
            "rescored": manifest.rescore is not None,
            "note": manifest.note,
            "recall": manifest.recall,
        },
    }
