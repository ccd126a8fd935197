"""The index job: corpus in, a new index version out, night after night.

``run_index_job(IndexJobConfig(...))`` is what ``corpusbeam index`` calls (through
``pipeline.job``, which imports this module only when a job runs):

1. take the output's lock, find the live version (for reuse), name the new one;
2. resolve the run's plan once (``pipeline.job.plan``: the local reference endpoint
   started when no endpoint is given, ``/info``, the wire encoding, the shard count, what
   to reuse, whether to train); the steps below read it;
3. run the Beam pipeline (``pipeline.graph``): read, chunk, reuse unchanged vectors,
   embed the rest, write the new version's id-range parts and IVF shards on the
   workers, write failures;
4. finish the version (``pipeline.job.finish.finish_index``: the live version's index
   updated, or the index built from the shards or the parts, streamed; recall; the
   manifest): in its folder for a local output; for an object store on a worker, in a
   second small pipeline with the job's options (``pipeline.finish_remote``), which
   writes the version's files in place and leaves the manifest to the launcher;
5. gate it, when asked (``pipeline.gate``: its relevance against the live version's);
6. write ``failures.parquet`` and ``report.json`` (``pipeline.job.report``; on an
   object store, the manifest, last) and switch ``CURRENT`` to the new version, unless
   the gate rejected it (``gate.json``: kept, not made live).

A run that fails or is killed before step 6 ends leaves the live version serving.
The exit status says how it went (``corpusbeam.exit_codes.ExitCode``): ``OK`` every
input embedded, ``FAILED_INPUTS`` finished with failed inputs (listed in
``failures.parquet``), ``GATE_REJECTED`` built but not made live; a failed run raises.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusbeam.errors import ConfigError, CorpusbeamError, JobError
from corpusbeam.exit_codes import ExitCode
from indexes.config import BuildConfig
from indexes.storage.files import MANIFEST
from indexes.storage.manifest import Manifest, sanitize_endpoint
from indexes.storage.version_list import GATE_FILE
from pipeline.config import IndexJobConfig, runner_name
from pipeline.finish_remote import FinishTask, finish_on_worker
from pipeline.gate import GateVerdict
from pipeline.gate_run import gate_queries, judge
from pipeline.graph import FAILURE_SCHEMA, build_graph, read_part_list
from pipeline.job import IndexJobResult
from pipeline.job import resume as resuming
from pipeline.job.finish import finish_index
from pipeline.job.metrics_server import serving
from pipeline.job.plan import JobPlan, planned
from pipeline.job.report import JobOutcome, job_report, read_metrics
from pipeline.job.tracking import MATCHERS, ProgressTracker, Snapshot, tracking
from pipeline.outputs import RunOutput, open_output
from pipeline.training import train_later
from pipeline.unchanged import (
    carried_failures,
    input_fingerprint,
    unchanged_result,
    write_fingerprint,
)
from pipeline.vectors_note import finish_manifest
from transforms.build_index import RUNS, has_trained, load_trained

__all__ = ["IndexJobConfig", "run_index_job"]

log = logging.getLogger(__name__)


def run_index_job(
    cfg: IndexJobConfig, on_progress: Callable[[Snapshot], None] | None = None
) -> IndexJobResult:
    """Run the whole job; raises CorpusbeamError for a failed run. ``on_progress`` gets a
    ``pipeline.job.tracking.Snapshot`` four times a second while it runs."""
    with (
        tracking(len(cfg.inputs), on_progress) as tracker,
        serving(
            tracker,
            host=cfg.metrics_host,
            port=cfg.metrics_port,
            max_embed_tokens=cfg.max_embed_tokens,
        ),
    ):
        return _run(cfg, tracker)


def _run(cfg: IndexJobConfig, tracker: ProgressTracker) -> IndexJobResult:
    """The steps of the module docstring, each a function below."""
    started = time.monotonic()
    tracker.stage("starting")
    fingerprint = None if "://" in cfg.output else input_fingerprint(cfg)
    same = unchanged_result(cfg, fingerprint)  # nothing to do: no input or setting changed
    if same is not None:
        return _unchanged(*same, time.monotonic() - started)
    with open_output(cfg) as run:
        with planned(cfg, run, fingerprint) as plan:
            checkpoints = resuming.prepare(plan, run.root)
            counters, learned = _run_pipeline(plan, run, tracker, checkpoints)
            labelled = gate_queries(plan, run)  # the quality gate's, while the endpoint is up
        pipeline_seconds = time.monotonic() - started
        if counters.get("inputs_over_budget"):  # capped: publish nothing, resume next time
            return resuming.budget_reached(
                plan, counters, seconds=pipeline_seconds, extra=tracker.record()
            )
        tracker.stage("merging")
        run.drop_staging(RUNS)  # the parts are written: nothing reads the run files again
        failures = _failures(plan, run)
        finish = _finish_remote if run.remote else _finish_local
        manifest, update = finish(run, plan)
        outcome = JobOutcome(
            counters=counters,
            learned=learned,
            failures=failures,
            manifest=manifest,
            update=update,
            pipeline_seconds=pipeline_seconds,
            total_seconds=time.monotonic() - started,
        )
        verdict = judge(plan, run, labelled, manifest)  # None: no gate asked for
        tracker.stage("publishing")
        report = {**job_report(plan, outcome), **tracker.record()}
        if verdict is not None:
            report["gate"] = verdict.to_dict()
        folder = _publish(run, plan, outcome, report, fingerprint, verdict)
        # a rejected version consumed them too: its vectors are not to be taken again
        resuming.clear_published(plan, run.root)
    code = ExitCode.FAILED_INPUTS if failures.num_rows else ExitCode.OK
    if verdict is not None and verdict.rejected:
        code = ExitCode.GATE_REJECTED
    return IndexJobResult(version=run.name, folder=folder, exit_code=code, report=report)


def _run_pipeline(
    plan: JobPlan, run: RunOutput, tracker: ProgressTracker, checkpoints: str | None
) -> tuple[dict[str, int], dict]:
    """Run the Beam pipeline (``pipeline.graph``); its counters and learned token budget.
    A worker process lost under a bundle: run again, what it embedded taken from the
    checkpoints (``pipeline.job.resume``)."""
    tracker.matchers(MATCHERS if plan.images else 1)
    args = plan.config.pipeline_args
    for attempt in range(resuming.RETRIES + 1):
        p = beam.Pipeline(options=PipelineOptions(list(args)))
        build_graph(p, plan, staging=run.staging, folder=run.folder, checkpoints=checkpoints)
        log.info("running the pipeline (%s)", runner_name(args))
        tracker.stage(None)  # read off the workers' counts
        try:
            result = p.run()
            result.wait_until_finish()
            break
        except Exception as exc:
            if attempt < resuming.RETRIES and resuming.worker_lost(exc):
                log.warning("a worker process was lost (%s): running again", _reason(exc))
                resuming.clear_attempt(run.staging)
                continue
            raise JobError(f"the pipeline failed: {_reason(exc)}") from exc
    counters, learned = read_metrics(result)
    if plan.previous:  # the live version's rows neither matched nor kept unread are gone
        counters["chunks_deleted"] = (
            plan.previous.count
            - counters.get("previous_matched", 0)
            - counters.get("rows_kept_unread", 0)
        )
    tracker.pipeline_done(counters)
    return counters, learned


def _failures(plan: JobPlan, run: RunOutput) -> pa.Table:
    """Every failed input: the workers' and, for the files not read again, the live
    version's (they fail as they did). Nothing indexed at all is a ConfigError."""
    failures = _collect_failures(run.staging)
    if plan.skip:
        carried = carried_failures(Path(plan.previous.folder), plan.skip)
        if carried is not None and carried.num_rows:
            failures = pa.concat_tables([failures, carried.cast(failures.schema)])
    if not has_trained(run.staging):
        raise ConfigError(
            "inputs",
            list(plan.config.inputs),
            f"nothing to index: {failures.num_rows} inputs failed",
        )
    return failures


def _publish(
    run: RunOutput,
    plan: JobPlan,
    outcome: JobOutcome,
    report: dict,
    fingerprint: dict | None,
    verdict: GateVerdict | None,
) -> Path | str:
    """Make the version live with its failures and report (and, on an object store, the
    manifest the worker left to the launcher: written last); a version its gate rejected
    is kept, marked by its ``gate.json``, and not made live."""
    files = {
        "failures.parquet": _parquet_bytes(outcome.failures),
        "report.json": (json.dumps(report, indent=2, sort_keys=True) + "\n").encode(),
    }
    if verdict is not None:
        files[GATE_FILE] = verdict.to_json()
    if run.remote:
        files[MANIFEST] = outcome.manifest.to_json().encode()
    else:
        write_fingerprint(run.local, fingerprint)
    return run.publish(files, make_live=verdict is None or not verdict.rejected)


def _finish_local(run: RunOutput, plan: JobPlan) -> tuple[Manifest, dict]:
    """Finish the version in its local folder: the output is the launcher's disk."""
    cfg = plan.config
    spec, blob = load_trained(run.staging)
    parts = read_part_list(run.staging)
    manifest, update = finish_index(  # update the live version's index, or build it
        run.local,
        previous=str(run.previous_folder()) if plan.previous else None,
        previous_manifest=run.previous_manifest,
        factory=plan.factory,
        rebuild=cfg.rebuild,
        spec=spec,
        trained=blob,
        parts=parts,
        model=plan.model.model,
        endpoint=plan.endpoint,
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
        info=plan.model.info,
        wire=plan.encodings.wire,
        rescored=plan.encodings.rescored,
        **plan.reached_with,
    )
    return manifest, update


def _finish_remote(run: RunOutput, plan: JobPlan) -> tuple[Manifest, dict]:
    """Finish an object-store version on a worker (``pipeline.finish_remote``): the
    launcher only reads back its manifest and the report's update entry."""
    cfg = plan.config
    task = FinishTask(
        output=run.root,
        version=run.name,
        staging=run.staging,
        live=plan.live_version,
        update_from_live=plan.previous is not None,
        written=run.written(),
        factory=plan.factory,
        rebuild=cfg.rebuild,
        model=plan.model.model,
        endpoint=sanitize_endpoint(plan.endpoint),
        api_version=cfg.api_version,
        input_type=cfg.input_type,
        config=BuildConfig(memory_budget=cfg.memory_budget, lexical=cfg.lexical),
        info=plan.model.info,
        wire=plan.encodings.wire,
        rescored=plan.encodings.rescored,
        **plan.reached_with,
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
    seen, visited = exc, {id(exc)}
    while (seen.__cause__ or seen.__context__) is not None:
        inner = seen.__cause__ or seen.__context__
        if id(inner) in visited:  # a chain that loops (gRPC's errors can)
            break
        seen = inner
        visited.add(id(seen))
    text = str(seen) or type(seen).__name__
    if isinstance(seen, CorpusbeamError):
        return text
    # The portable runners send the worker's traceback as text: keep its last line.
    lines = [line for line in str(exc).splitlines() if line.strip()]
    tail = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
    return tail.split(" [while running")[0].strip() or text


def _collect_failures(staging: str) -> pa.Table:
    match = FileSystems.match([f"{staging}/failures-*.parquet"])[0]
    files = sorted(m.path for m in match.metadata_list)
    tables = [pq.read_table(io.BytesIO(_read_any(f))) for f in files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return FAILURE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("source_id", "ascending")])
