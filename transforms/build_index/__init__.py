"""BuildIndexShards: the index's parts and shards written on the workers, nothing gathered.

    embedded --WriteRuns (in the stage that embeds: buffered rows to run files)--> run refs
    run refs --by part--> GroupByKey (small refs) --> WritePart (each worker, its parts):
        read the part's runs, fill reused vectors from the previous version's part,
        sort by id, drop duplicate ids (to failures), write the part's Parquet files
    part refs --Combine--> Choose (the index for that many vectors)
    TrainShards (when the job will build the index in full; an update that keeps the
    live index skips it, and trains later only if it must rebuild after all):
        part refs --Train (one worker: the sample, the smallest ids, read part by part)
        part refs --AddShard (IVF: trained copy + add_with_ids)--> shard files

Only small records (file names, counts, id ranges) cross a stage boundary, so the
in-process runner, which keeps each PCollection between stages in memory, holds no
vectors or texts there; a worker holds one part at a time. The parts (see
``indexes.storage.part_ranges``: part ``s`` covers a fixed id range) are written straight
into the new version's folder; runs, IVF shards and the trained index go under ``staging``.

A module a step: ``runs`` (WriteRuns, the run files' schema), ``parts`` (WritePart),
``vectors`` (a part's fresh, reused and rescoring vectors), ``layered`` (what a layered
part keeps of its base part and removes), ``training`` (Choose, TrainShards) and
``staging`` (the files left under ``staging`` for the job's final step).
"""

from __future__ import annotations

import json

import apache_beam as beam

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.config import AutoLimits
from indexes.storage.layers import part_number
from indexes.storage.part_ranges import id_starts
from transforms.build_index.parts import WritePartFn
from transforms.build_index.runs import REUSED_VECTOR, WriteRunsFn, metadata_row, row_digest
from transforms.build_index.staging import (
    PART_LIST,
    RUNS,
    SHARD_LIST,
    has_trained,
    load_trained,
    read_part_list,
    read_shard_list,
    save_spec,
)
from transforms.build_index.training import TotalsFn, TrainShards, choose, train_without_data
from transforms.previous import PreviousVersion
from transforms.read import FAILURES, Outputs

__all__ = [
    "PART_LIST",
    "REUSED_VECTOR",
    "RUNS",
    "SHARD_LIST",
    "BuildIndexShards",
    "TrainShards",
    "has_trained",
    "load_trained",
    "metadata_row",
    "read_part_list",
    "read_shard_list",
    "row_digest",
    "train_without_data",
]


class BuildIndexShards(beam.PTransform):
    """Write the index folder's parts and build its index shards from ``Embedded``
    elements (a PCollection, or a tuple of them each written in its own stage), on the
    workers: the parts into ``folder``, IVF shards, the trained index and the part list
    into ``staging`` (``read_part_list``, ``load_trained``). ``previous`` is the version
    reused vectors come from (``transforms.previous.PreviousVersion``). The last ``kept``
    PCollections of the input are ``ReuseVectors``' kept references (layered updates).
    ``lexical``: each part also gets its BM25 segment (``indexes.lexical.segment``).
    ``train``: train the index and write the IVF shards (``TrainShards``); without, only
    the chosen spec is saved (an update that keeps the live index needs no training).
    Returns ``Outputs(main=part refs, failures)``.
    """

    def __init__(
        self,
        staging: str,
        *,
        folder: str,
        encoding: str,
        factory: str | None = None,
        memory_budget: int,
        auto_limits: AutoLimits | None = None,
        train_per_centroid: int = 64,
        shards: int = 8,
        seed: int = 0,
        previous: PreviousVersion | None = None,
        kept: int = 0,
        lexical: bool = False,
        train: bool = True,
    ) -> None:
        super().__init__()
        self._train = train
        self._kept = kept
        self._lexical = lexical
        codec.check_encoding(encoding)
        if shards < 1:
            raise ConfigError("shards", shards, "must be at least 1")
        id_starts(shards)
        self._staging = staging
        self._folder = folder
        self._encoding = encoding
        self._shards = shards
        self._previous = previous
        self._settings = {
            "encoding": encoding,
            "factory": factory,
            "memory_budget": memory_budget,
            "auto_limits": auto_limits,
            "train_per_centroid": train_per_centroid,
            "seed": seed,
        }

    def expand(self, embedded) -> Outputs:
        branches = embedded if isinstance(embedded, tuple) else (embedded,)
        p = branches[0].pipeline
        kept = branches[len(branches) - self._kept :] if self._kept else ()
        runs = [
            branch
            | f"WriteRuns{i}"
            >> beam.ParDo(WriteRunsFn(self._staging, self._shards, self._encoding))
            for i, branch in enumerate(branches[: len(branches) - self._kept])
        ]
        runs += list(kept)  # {"part", "kept": ids}: rows a layered part keeps from its base
        if self._previous is not None and self._previous.skipped:
            # Every base part is written, even one no document read this run falls in.
            infos = [*self._previous.parts, *self._previous.delta_parts]
            numbers = sorted({part_number(i["name"]) for i in infos})
            runs.append(p | "BaseParts" >> beam.Create([{"part": n, "kept": []} for n in numbers]))
        written = (
            tuple(runs)
            | "Runs" >> beam.Flatten()
            | "RunByPart" >> beam.Map(lambda r: (r["part"], r))
            | "GroupRuns" >> beam.GroupByKey()
            | "WritePart"
            >> beam.ParDo(
                WritePartFn(
                    self._folder, self._shards, self._encoding, self._previous, self._lexical
                )
            ).with_outputs(FAILURES, main="parts")
        )
        parts = written.parts
        totals = parts | "Totals" >> beam.CombineGlobally(TotalsFn())
        spec = (
            p
            | "Once" >> beam.Create([None])
            | "Choose" >> beam.Map(choose, beam.pvalue.AsSingleton(totals), self._settings)
        )
        if self._train:
            shards = (parts, spec) | "TrainShards" >> TrainShards(
                self._staging,
                folder=self._folder,
                encoding=self._encoding,
                seed=self._settings["seed"],
            )
        else:  # the job updates the live index: the spec alone (TrainShards if it rebuilds)
            _ = spec | "SaveSpec" >> beam.Map(save_spec, self._staging)
            shards = p | "NoShards" >> beam.Create([])
        _ = (
            (parts, shards)
            | "PartsAndShards" >> beam.Flatten()
            | "PartJson" >> beam.Map(json.dumps, sort_keys=True)
            | "PartList"
            >> beam.io.WriteToText(f"{self._staging}/{PART_LIST}", shard_name_template="")
        )
        return Outputs(parts, written.failures)
