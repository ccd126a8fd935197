"""What an index job takes: ``IndexJobConfig``, the one source of the command line's
defaults. Imports neither Beam nor numpy, so ``corpusbeam index --help`` starts at once."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field

from corpusbeam.errors import ConfigError
from corpusbeam.inference.protocol import API_VERSION
from indexes.config import DEFAULT_MEMORY_BUDGET, AutoLimits

__all__ = ["LAYER_LIMIT", "LOCAL_RUNNERS", "IndexJobConfig", "beam_flags", "runner_name"]

# Runners whose workers run on this machine, so they can reach a local endpoint.
LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner", "PortableRunner", "PrismRunner")
# An update's tables are layers over the live version's while the delta rows and removed
# ids stay within this fraction of the rows; past it, the run writes them in full again.
LAYER_LIMIT = 0.1


@dataclass(frozen=True, kw_only=True)
class IndexJobConfig:
    """Everything ``corpusbeam index`` takes. ``endpoint=None`` starts the local reference
    endpoint with ``local_model`` for the run. ``pipeline_args`` go to Beam unchanged
    (``--runner``, ``--direct_num_workers``, ``--temp_location``, ...)."""

    inputs: tuple[str, ...]
    output: str
    endpoint: str | None = None
    api_key_env: str | None = None
    local_model: str = "hash"
    model: str | None = None
    deployment: str | None = None
    api_version: str = API_VERSION
    encoding_format: str = "float"
    # what each request asks for (None: corpusbeam.inference.derive's default; float for bit
    # indexes, whose bits and int8 rescoring vectors are then derived locally)
    wire_encoding: str | None = None
    dimensions: int | None = None
    input_type: str = "document"
    max_tokens: int = 512
    overlap_tokens: int | None = None
    # the model's input limit in its tokens (None: known by the model's name, else learned
    # from the first refusal); how to count them (corpusbeam.inference.token_budget.COUNT_MODES)
    max_input_tokens: int | None = None
    token_count: str = "auto"
    max_inputs: int = 96
    max_concurrency: int = 8
    index: str = "auto"
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    # auto's flat and graph limits, lowered (--flat-max, --graph-max) to reach IVF small
    auto_limits: AutoLimits = field(default_factory=AutoLimits)
    # the parts (and IVF shards) the workers write: "auto" follows the corpus's size
    # (pipeline.shard_count: about 12,500 rows a part, the live version's count kept
    # within 2x so updates can layer), or a number
    shards: int | str = "auto"
    text_field: str = "text"
    id_field: str | None = "id"
    reuse: bool = True
    rebuild: bool = False  # build the index in full even when the live one could be updated
    # an update writes its tables as layers over the live version's (indexes.storage.layers): the
    # changed rows and the removed ids; past LAYER_LIMIT of the rows, in full again
    layered: bool = True
    lexical: bool = True  # a BM25 index beside the vectors: a segment a part, by the workers
    lease_seconds: float = 600.0
    # the quality gate (pipeline.gate): labelled queries in the BEIR layout and the nDCG@10
    # drop against the live version it allows; and/or a floor on recall against exact search
    gate_queries: str | None = None
    gate_qrels: str | None = None
    gate_max_drop: float = 0.01
    min_recall: float | None = None
    keep: int = 3  # finished versions pruning keeps (besides the live one and its rollback target)
    # embedded batches persisted under <output>/checkpoints/ and taken from there by the
    # next run with the same settings (transforms.checkpoints); unconsumed ones expire
    resume: bool = True
    checkpoint_max_age_days: float = 7.0
    # stop embedding before the run would pass this many tokens (transforms.token_cap)
    max_embed_tokens: int | None = None
    # serve the job's progress at http://HOST:PORT/metrics while it runs (None: off; 0: a
    # free port, logged) (pipeline.job.metrics_server)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    pipeline_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.auto_limits, dict):  # as the run report records it (retry-failures)
            object.__setattr__(self, "auto_limits", AutoLimits(**self.auto_limits))
        if not self.inputs:
            raise ConfigError("inputs", self.inputs, "give at least one file pattern")
        if not self.output:
            raise ConfigError("output", self.output, "give an output folder")
        scheme = self.output.split("://", 1)[0] if "://" in self.output else None
        if scheme not in (None, "s3", "gs"):
            raise ConfigError("output", self.output, "must be a local folder, s3:// or gs://")
        if self.shards != "auto" and (
            isinstance(self.shards, bool) or not isinstance(self.shards, int) or self.shards < 1
        ):
            raise ConfigError("shards", self.shards, 'must be "auto" or a whole number >= 1')
        if self.max_embed_tokens is not None and (
            isinstance(self.max_embed_tokens, bool)
            or not isinstance(self.max_embed_tokens, int)
            or self.max_embed_tokens < 1
        ):
            raise ConfigError(
                "max_embed_tokens", self.max_embed_tokens, "must be a whole number >= 1"
            )
        if self.metrics_port is not None and (
            isinstance(self.metrics_port, bool)
            or not isinstance(self.metrics_port, int)
            or not 0 <= self.metrics_port <= 65535
        ):
            raise ConfigError("metrics_port", self.metrics_port, "must be a port, 0 to 65535")
        if not self.metrics_host:
            raise ConfigError("metrics_host", self.metrics_host, "give a host to listen on")
        if self.checkpoint_max_age_days <= 0:
            raise ConfigError(
                "checkpoint_max_age_days", self.checkpoint_max_age_days, "must be positive"
            )
        if self.lease_seconds <= 0:
            raise ConfigError("lease_seconds", self.lease_seconds, "must be positive")
        from pipeline.gate import check_gate_config

        check_gate_config(self)
        # numpy: loaded when a job is configured, not for --help
        from corpusbeam.inference import codec
        from corpusbeam.inference.derive import EncodingPlan
        from corpusbeam.inference.token_budget import COUNT_MODES

        codec.check_encoding(self.encoding_format)
        EncodingPlan.of(self.encoding_format, self.wire_encoding)  # a pair that works
        if self.token_count not in COUNT_MODES:
            raise ConfigError("token_count", self.token_count, f"must be one of {COUNT_MODES}")
        if self.max_input_tokens is not None and self.max_input_tokens < 1:
            raise ConfigError("max_input_tokens", self.max_input_tokens, "must be at least 1")
        if self.dimensions is not None:
            codec.wire_width(self.encoding_format, self.dimensions)
        if self.endpoint is None and self.api_key_env:
            raise ConfigError("api_key_env", self.api_key_env, "needs --endpoint")
        if self.endpoint is None and runner_name(self.pipeline_args) not in LOCAL_RUNNERS:
            raise ConfigError(
                "endpoint",
                None,
                f"the local reference endpoint runs on this machine; workers of "
                f"{runner_name(self.pipeline_args)} cannot reach it: give --endpoint",
            )


def runner_name(args: tuple[str, ...]) -> str:
    """The Beam runner ``args`` choose (DirectRunner when they name none)."""
    from apache_beam.options.pipeline_options import PipelineOptions  # Beam loads slowly

    options = PipelineOptions(list(args))
    return options.get_all_options().get("runner") or "DirectRunner"


def beam_flags(args: tuple[str, ...] = ()) -> dict[str, bool]:
    """``--flag -> takes a value`` for every option a ``PipelineOptions`` subclass registers
    (Beam's ``PipelineOptions.get_all_options`` reads the same ``_add_argparse_args``).

    A runner named in ``args`` is created first, so the options classes that only its
    module defines are registered too."""
    from apache_beam.options import pipeline_options as po  # Beam loads slowly

    with contextlib.suppress(Exception):
        runner = po.PipelineOptions(list(args)).view_as(po.StandardOptions).runner
        if isinstance(runner, str):
            from apache_beam.runners.runner import create_runner

            create_runner(runner)
    flags: dict[str, bool] = {}
    stack, seen = list(po.PipelineOptions.__subclasses__()), set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if "_add_argparse_args" not in cls.__dict__:
            continue
        # One parser a class: two classes registering one flag do not clash.
        parser = po._BeamArgumentParser(allow_abbrev=False, add_help=False)
        with contextlib.suppress(argparse.ArgumentError):
            cls._add_argparse_args(parser)
        for action in parser._actions:
            for s in action.option_strings:
                if s.startswith("--"):
                    flags[s] = action.nargs != 0
    return flags
