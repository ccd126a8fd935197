"""The index job's plan: its options, the endpoint's ``/info`` and the live version,
resolved once at start.

``planned(cfg, run, fingerprint)`` starts the local reference endpoint when no endpoint
is given, reads the model's ``/info`` and yields one ``JobPlan``: the wire encoding, the
model's limits, the shard count, which live version's vectors are reused and which files
are not read again, whether the pipeline trains the index. The graph, the finish and the
report read the plan; none of them works any of it out again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from corpusbeam.inference.client import ClientSettings, EnvApiKey
from corpusbeam.inference.derive import EncodingPlan
from corpusbeam.inference.protocol import BIT_ENCODINGS, local_endpoint
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.storage.layers import overlay_rows
from indexes.storage.manifest import sanitize_endpoint
from pipeline.config import LAYER_LIMIT, IndexJobConfig
from pipeline.model_setup import ModelSetup, model_setup
from pipeline.outputs import RunOutput
from pipeline.shard_count import auto_shards, same_parts
from pipeline.training import trains_up_front
from pipeline.unchanged import same_settings, unchanged_files
from transforms.previous import PreviousVersion

__all__ = ["JobPlan", "planned"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class JobPlan:
    """What the job decided before its pipeline runs (see the module docstring)."""

    config: IndexJobConfig  # the options, ``--shards auto`` replaced by the count
    version: str  # the new version's name
    live_version: str | None  # the live version's name, if there is one
    encodings: EncodingPlan  # the index's encoding and the wire's
    settings: ClientSettings  # what every embedding request carries
    endpoint: str  # the endpoint as the manifest records it (the local one by name)
    model: ModelSetup  # ``/info``, the name the manifest records, the token budget
    previous: PreviousVersion | None  # the live version whose vectors are reused
    skip: Mapping[str, list] | None  # a layered update's unchanged files: not read again
    images: bool  # the inputs may hold images (False: the image steps are left out)
    train: bool  # the pipeline trains the index and writes IVF shards
    # a layered update leaves out the unchanged records of record files (transforms.record_reuse)
    records: bool = False

    @property
    def factory(self) -> str | None:
        """``--index``; None when ``auto`` chooses by the corpus' size."""
        return forced_factory(self.config)

    @property
    def reached_with(self) -> dict[str, str | None]:
        """What the manifest tells readers about reaching a real endpoint: the *name* of
        its key's variable (never the key) and the deployment header. Nothing for the
        local endpoint, which readers start themselves."""
        if self.config.endpoint is None:
            return {"api_key_env": None, "deployment": None}
        return {"api_key_env": self.config.api_key_env, "deployment": self.config.deployment}


def forced_factory(cfg: IndexJobConfig) -> str | None:
    """The factory ``--index`` names; None for ``auto``, which chooses by size."""
    return None if cfg.index == "auto" else cfg.index


@contextlib.contextmanager
def planned(cfg: IndexJobConfig, run: RunOutput, fingerprint: dict | None) -> Iterator[JobPlan]:
    """The run's plan, with its endpoint up (the local one runs until the block ends)."""
    cfg = _resolved_shards(cfg, run, fingerprint)
    encodings = EncodingPlan.of(cfg.encoding_format, cfg.wire_encoding)
    with _endpoint(cfg, encodings) as (settings, endpoint):
        model = model_setup(settings, cfg)
        previous = _reusable(run, cfg, encodings, endpoint, model.model)
        skip, records = None, False
        if previous is not None and previous.layered and "://" not in previous.folder:
            skip = unchanged_files(Path(previous.folder), fingerprint) or None
            records = same_settings(Path(previous.folder), fingerprint)
        yield JobPlan(
            config=cfg,
            version=run.name,
            live_version=run.previous.rstrip("/").rsplit("/", 1)[-1] if run.previous else None,
            encodings=encodings,
            settings=settings,
            endpoint=endpoint,
            model=model,
            previous=previous,
            skip=skip,
            images=_any_images(fingerprint),
            train=_train_up_front(cfg, run, previous),
            records=records,
        )


@contextlib.contextmanager
def _endpoint(cfg: IndexJobConfig, encodings: EncodingPlan) -> Iterator[tuple[ClientSettings, str]]:
    """(the client's settings, the endpoint as the manifest records it)."""
    common = {
        "api_version": cfg.api_version,
        "model": cfg.model,
        "deployment": cfg.deployment,
        "encoding_format": encodings.wire,
        "dimensions": cfg.dimensions,
        "input_type": cfg.input_type,
        "max_inputs": cfg.max_inputs,
        "max_concurrency": cfg.max_concurrency,
    }
    if cfg.endpoint is None:
        with running_endpoint(EndpointConfig(model=cfg.local_model), subprocess=True) as ep:
            yield ClientSettings(endpoint=ep.url, **common), local_endpoint(cfg.local_model)
        return
    credential = EnvApiKey(var=cfg.api_key_env) if cfg.api_key_env else None
    yield ClientSettings(endpoint=cfg.endpoint, credential=credential, **common), cfg.endpoint


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


def _reusable(
    run: RunOutput, cfg: IndexJobConfig, encodings: EncodingPlan, endpoint: str, model: str
) -> PreviousVersion | None:
    """The live version, when its vectors are valid for this run's settings."""
    manifest = run.previous_manifest
    if run.previous is None or manifest is None or not cfg.reuse:
        return None
    same = (
        manifest.model == model
        and manifest.encoding == encodings.index
        and (
            encodings.index not in BIT_ENCODINGS
            or (manifest.rescore is not None) == encodings.rescored
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


def _any_images(fingerprint: dict | None) -> bool:
    """Whether the inputs' listing holds an image (True when there is no listing: an
    object-store output's run lists its inputs on the workers)."""
    from transforms.formats import IMAGE_EXTENSIONS

    if fingerprint is None:
        return True
    return any(Path(f[0]).suffix.lower() in IMAGE_EXTENSIONS for f in fingerprint["files"])


def _train_up_front(cfg: IndexJobConfig, run: RunOutput, previous: PreviousVersion | None) -> bool:
    """Whether the pipeline trains the index (``pipeline.training``): not when the finish
    is expected to update the live version's index."""
    if run.remote:  # the finish runs on a worker, which cannot start a training pipeline
        return True
    live = run.previous_manifest
    return trains_up_front(
        reusable=previous is not None,
        rebuild=cfg.rebuild,
        factory=forced_factory(cfg),
        live_factory=None if live is None else live.index_factory,
    )
