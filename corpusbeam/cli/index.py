"""``corpusbeam index`` and ``corpusbeam retry-failures``: run the index job."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import fields
from typing import TYPE_CHECKING

import corpusbeam.cli.job_flags as job_flags
from corpusbeam.errors import ConfigError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.protocol import ENCODINGS, INPUT_TYPES
from indexes.config import AutoLimits
from indexes.storage import versions
from pipeline.config import IndexJobConfig

PROGRESS_MODES = ("auto", "bar", "log", "off")  # corpusbeam.cli.display.MODES, without loading it

if TYPE_CHECKING:
    from pipeline.job import IndexJobResult

__all__ = ["add_parser", "parse_bytes", "run", "run_retry"]

# Both pipeline commands' --help ends with this.
BEAM_EPILOG = (
    "Beam options (--runner=..., --direct_num_workers=..., --temp_location=...) pass "
    "through to the pipeline; write them as --option=value. An option that neither this "
    "command nor Beam registers is an error naming the nearest known one. Everything after "
    "a bare -- goes to Beam unchecked (the options of a runner or plugin that corpusbeam "
    "cannot see), e.g. corpusbeam index DOCS -o OUT -- --my_plugin_option=1."
)

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int:
    """``1G``, ``512M``, ``2048`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 512M or 2G)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_shards(text: str) -> int | str:
    """``--shards``: "auto" or a whole number."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'auto' or a whole number") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    # Every default shown and used is IndexJobConfig's own (a dataclass field's default is
    # its class attribute).
    p = sub.add_parser(
        "index",
        help="embed a corpus and write a new index version",
        description="Read INPUT patterns (files, folders, globs; local, gs://, s3://), embed "
        "them and write a new index version under --output.",
        epilog=BEAM_EPILOG,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--output", "-o", required=True, help="output folder (versions + CURRENT)")
    e = p.add_argument_group(
        "endpoint (default: the local reference endpoint, started for the run)"
    )
    e.add_argument("--endpoint", help="base URL of an Azure AI Model Inference endpoint")
    e.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the key")
    e.add_argument("--local-model", default=IndexJobConfig.local_model, choices=("hash", "minilm"))
    e.add_argument("--model")
    e.add_argument("--deployment", help="azureml-model-deployment header")
    e.add_argument("--api-version", default=IndexJobConfig.api_version)
    e.add_argument(
        "--encoding-format",
        default=IndexJobConfig.encoding_format,
        choices=ENCODINGS,
        help="what the index stores; binary indexes ask for float once and derive their "
        "bits and int8 rescoring vectors",
    )
    e.add_argument(
        "--wire-encoding",
        choices=ENCODINGS,
        help="what each request asks for instead (binary/ubinary with a binary index: the "
        "smallest download, an unrescored index)",
    )
    e.add_argument("--dimensions", type=int)
    e.add_argument("--input-type", default=IndexJobConfig.input_type, choices=INPUT_TYPES)
    c = p.add_argument_group("chunking and batching")
    c.add_argument(
        "--max-tokens",
        type=int,
        default=IndexJobConfig.max_tokens,
        help="chunk size (estimated tokens)",
    )
    c.add_argument("--overlap-tokens", type=int)
    c.add_argument(
        "--max-input-tokens",
        type=int,
        help="the model's input limit, in its tokens (default: known by its name, else "
        "learned from a refusal)",
    )
    c.add_argument(
        "--token-count",
        default=IndexJobConfig.token_count,
        choices=("auto", "calibrated", "estimate"),
        help="count with the model's tokenizer where installed (auto), or the estimate "
        "calibrated from usage, or the bare estimate",
    )
    c.add_argument(
        "--max-inputs", type=int, default=IndexJobConfig.max_inputs, help="inputs a request"
    )
    c.add_argument(
        "--max-concurrency",
        type=int,
        default=IndexJobConfig.max_concurrency,
        help="requests in flight a worker",
    )
    c.add_argument(
        "--text-field",
        default=IndexJobConfig.text_field,
        help="text field of JSONL/CSV/Parquet records",
    )
    c.add_argument("--id-field", default=IndexJobConfig.id_field, help="id field of records")
    i = p.add_argument_group("index")
    i.add_argument("--index", default=IndexJobConfig.index, help="'auto' or a FAISS factory string")
    i.add_argument("--memory-budget", type=parse_bytes, default=IndexJobConfig.memory_budget)
    i.add_argument(
        "--flat-max",
        type=int,
        metavar="N",
        help="auto: the most vectors for an exact flat index (default 10,000 float, 100,000 "
        "int8, 1,000,000 bit; 0: never)",
    )
    i.add_argument(
        "--graph-max",
        type=int,
        metavar="N",
        help="auto: the most vectors for an HNSW graph (default 100,000 float, 5,000,000 "
        "bit; 0: never); past both, auto picks IVF",
    )
    i.add_argument(
        "--shards",
        type=parse_shards,
        default=IndexJobConfig.shards,
        help="parts (and IVF shards) built on the workers: 'auto' (from the corpus's size) "
        "or a number",
    )
    i.add_argument(
        "--no-reuse",
        dest="reuse",
        action="store_false",
        help="embed everything again, even unchanged chunks",
    )
    i.add_argument(
        "--rebuild",
        action="store_true",
        help="train and build the index in full instead of updating the live version's "
        "(an update keeps its index and adds a delta segment and tombstones)",
    )
    i.add_argument(
        "--no-layers",
        dest="layered",
        action="store_false",
        help="an update writes every table part in full (default: only the changed rows, "
        "as layers over the live version's parts)",
    )
    i.add_argument(
        "--no-lexical",
        dest="lexical",
        action="store_false",
        help="no BM25 index (dense search only; its build holds the postings in memory)",
    )
    i.add_argument(
        "--lease-seconds",
        type=float,
        default=IndexJobConfig.lease_seconds,
        help="s3:// and gs:// outputs: the run's lease, renewed while it runs; a killed "
        "run's lease expires after this long",
    )
    i.add_argument(
        "--keep",
        type=int,
        default=IndexJobConfig.keep,
        metavar="N",
        help="finished versions pruning keeps, rejected ones included; the live one and "
        "its rollback target are always kept",
    )
    i.add_argument("--json", action="store_true", help="print the run report (or dry run) as JSON")
    job_flags.dry_run_flags(p)
    job_flags.gate_flags(p)
    job_flags.resume_flags(p)
    _progress_flags(p)
    p.set_defaults(run=run, pass_through=True)

    r = sub.add_parser(
        "retry-failures",
        help="run the last index job again: failed and changed inputs are embedded",
        description="Run DIR's last index job again with its recorded settings: failed and "
        "changed inputs are embedded. Beam options given here replace the recorded ones.",
        epilog=BEAM_EPILOG,
    )
    r.add_argument("dir", metavar="DIR", help="the index job's output DIR (CURRENT)")
    r.add_argument("--json", action="store_true", help="print the run report as JSON")
    _progress_flags(r)
    r.set_defaults(run=run_retry, pass_through=True)


def _progress_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("progress")
    g.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="live progress: a line redrawn on a terminal (bar), log lines (log), or off; "
        "auto: bar on a terminal, log otherwise",
    )
    g.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress log lines",
    )
    g.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the run's progress at http://HOST:PORT/metrics (Prometheus text) while "
        "it runs; 0 picks a free port and logs the address (default: off)",
    )
    g.add_argument(
        "--metrics-host",
        default=IndexJobConfig.metrics_host,
        metavar="HOST",
        help="the address /metrics listens on (0.0.0.0 in a container)",
    )


def _run_job(cfg: IndexJobConfig, args: argparse.Namespace) -> IndexJobResult:
    from corpusbeam.cli.display import display
    from pipeline.job import run_index_job  # Beam: loaded only when the job runs

    with display(args.progress, args.progress_every) as on_progress:
        return run_index_job(cfg, on_progress)


def _config(args: argparse.Namespace) -> IndexJobConfig:
    names = {f.name for f in fields(IndexJobConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["inputs"] = tuple(args.inputs)
    values["pipeline_args"] = _quiet_workers(args)
    values["auto_limits"] = AutoLimits(flat=args.flat_max, graph=args.graph_max)
    return IndexJobConfig(**values)


def _quiet_workers(args: argparse.Namespace) -> tuple[str, ...]:
    """The Beam options, with worker processes (multi_processing, portable runners) told to
    log errors only, unless -v or the user set their level: their start-up chatter is not
    the run's output. The launcher's own log is filtered in ``corpusbeam.cli.main``."""
    given = tuple(getattr(args, "pipeline_args", ()))
    if getattr(args, "verbose", False) or any("sdk_harness_log_level" in a for a in given):
        return given
    return (*given, "--default_sdk_harness_log_level=ERROR")


def _print(result: IndexJobResult, as_json: bool) -> int:
    report = result.report
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return result.exit_code
    budget = report.get("budget") or {}
    if budget.get("reached"):
        print(
            f"token budget reached: {budget['tokens_used']} of {budget['max_embed_tokens']} "
            f"tokens used; {budget['inputs_over_budget']} inputs left for the next run, "
            "nothing published (the live version still serves)"
        )
        return result.exit_code
    c, r, s = report["counts"], report["requests"], report["seconds"]
    print(f"version {result.version} -> {result.folder}")
    print(
        f"  read {c['documents_read']} documents and {c['images_read']} images, "
        f"{c['chunks']} chunks; embedded {c['embedded']}, reused {c['reused']}, "
        f"failed {c['failed']}; indexed {c['indexed']} ({report['index']['factory']})"
    )
    print(
        f"  {r['requests']} requests, {r['retries']} retries, {r['throttled_429']} throttled, "
        f"{r['prompt_tokens']} tokens; {s['total']:.1f}s"
    )
    update = report.get("update") or {}
    if update.get("mode") == "update":
        st = update.get("stats", {})
        print(
            f"  index updated: {st.get('fresh', 0)} vectors added, {st.get('stale', 0)} removed; "
            f"delta {st.get('delta', 0)}, tombstones {st.get('tombstones', 0)}"
        )
    elif update.get("mode") == "unchanged":
        print(f"  unchanged, nothing to do: {update['reason']}")
    elif update.get("reason") and report.get("previous_version"):
        print(f"  index built in full: {update['reason']}")
    long = report.get("too_long")
    if long and (long["cut_before_sending"] or long["cut_after_refusal"]):
        print(
            f"  {long['cut_before_sending'] + long['cut_after_refusal']} chunks cut again to "
            f"fit the model's {long['limit']} tokens ({long['length_refusals']} refused as "
            "too long)"
        )
    note = report["index"].get("note")
    if note and report["index"]["encoding"] in ("binary", "ubinary"):  # rescored or not
        print(f"  {note}")
    if c["failed"]:
        print(f"  failed inputs: {result.folder}/failures.parquet", file=sys.stderr)
    if report.get("gate"):
        from pipeline.gate import gate_lines

        for line in gate_lines(report["gate"]):
            print(f"  {line}", file=sys.stderr if report["gate"]["status"] != "passed" else None)
    return result.exit_code


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(_config(args), args)
    return _print(_run_job(_config(args), args), args.json)


def _dry_run(cfg: IndexJobConfig, args: argparse.Namespace) -> int:
    """``--dry-run``: print what the run would do (``pipeline.dry_run``); nothing is sent
    but the endpoint's /info, nothing written."""
    from pipeline.dry_run import dry_run  # Beam: loaded only when it runs
    from pipeline.dry_run_text import describe

    price = args.price_per_million_tokens
    if price is not None and price < 0:
        raise ConfigError("price_per_million_tokens", price, "must be zero or more")
    result = dry_run(cfg, price_per_million_tokens=price)
    print(json.dumps(result.to_dict(), indent=2, sort_keys=True) if args.json else describe(result))
    return ExitCode.OK


def run_retry(args: argparse.Namespace) -> int:
    if versions.read_current(args.dir) is None:
        raise ConfigError("dir", args.dir, "has no index version to retry")
    live = versions.resolve_index_folder(args.dir)  # an object store's: its cached copy
    job = json.loads((live / "report.json").read_text())["job"]
    job["inputs"] = tuple(job["inputs"])
    # Credentials were redacted from the report: they come from the environment again.
    recorded = tuple(a for a in job["pipeline_args"] if "<redacted>" not in a)
    job["pipeline_args"] = tuple(getattr(args, "pipeline_args", ())) or recorded
    job["output"] = args.dir
    job["reuse"] = True
    job["metrics_port"], job["metrics_host"] = args.metrics_port, args.metrics_host
    return _print(_run_job(IndexJobConfig(**job), args), args.json)
