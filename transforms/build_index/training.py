"""Training and IVF shards on the workers, from the parts' small refs.

    part refs --Combine (TotalsFn)--> Choose (the index for that many vectors)
    TrainShards:
        part refs --Train (one worker: the sample, the smallest ids, read part by part)
        part refs --AddShard (IVF: trained copy + add_with_ids)--> shard files

A part's vectors are read ``BATCH_ROWS`` rows at a time (a part grows with the corpus);
the trained empty index and its spec go under ``staging`` (``staging.load_trained``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import asdict

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.merge import packed_lists
from indexes.ann.ondisk import shard_lists_bytes
from indexes.ann.serialize import deserialize_index, serialize_index
from indexes.ann.spec import IndexSpec
from indexes.ann.train import add_vectors, train_index
from indexes.memory import trim
from indexes.storage.tables import column_array
from transforms.build_index.staging import SHARD_LIST, read_bytes, save_trained, write_bytes
from transforms.part_layers import layered_ids, layered_vectors

__all__ = ["BATCH_ROWS", "AddShardFn", "TotalsFn", "TrainShards", "choose", "train_without_data"]

_ID_SPACE = 1 << 63


class TotalsFn(beam.CombineFn):
    """The parts' refs -> ``{"count": rows, "width": the widest vector}``."""

    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, ref):
        return (acc[0] + ref["rows"], max(acc[1], ref["width"]))

    def merge_accumulators(self, accs):
        accs = list(accs)
        return (sum(a[0] for a in accs), max((a[1] for a in accs), default=0))

    def extract_output(self, acc):
        return {"count": acc[0], "width": acc[1]}


def choose(_, totals: dict, settings: dict) -> dict | None:
    """The index to build for the job's vector count and width, as a dict."""
    if not totals["count"]:
        return None
    width = totals["width"]
    d = width * 8 if settings["encoding"] in codec.BIT_ENCODINGS else width
    spec = choose_index(
        totals["count"],
        d,
        settings["encoding"],
        memory_budget=settings["memory_budget"],
        factory=settings["factory"],
        train_per_centroid=settings["train_per_centroid"],
        limits=settings["auto_limits"],
    )
    return asdict(spec)


def _keep_rate(spec: dict) -> float:
    """Bernoulli rate that yields at least ``train_size`` vectors (mean + 6 sd above it)."""
    size = spec["train_size"]
    if not size or spec["count"] <= 0:
        return 0.0
    return min(1.0, (size + 6 * math.sqrt(size) + 10) / spec["count"])


BATCH_ROWS = 32_768  # a part's rows decoded at a time (a part grows with the corpus)


def _part_vectors(folder: str, ref: dict, encoding: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of one part, ``BATCH_ROWS`` rows at a time in id order (a layered
    part: its base's then its delta's)."""
    if ref.get("layered"):
        yield from layered_vectors(folder, ref, encoding, BATCH_ROWS)
        return
    data = pq.ParquetFile(io.BytesIO(read_bytes(f"{folder}/{ref['info']['name']}.vectors.parquet")))
    dtype = codec.natural_dtype(encoding)
    for batch in data.iter_batches(batch_size=BATCH_ROWS, columns=["id", "vector"]):
        t = pa.Table.from_batches([batch])
        yield t.column("id").to_numpy(), column_array(t, "vector", dtype)


def _part_ids(folder: str, ref: dict) -> np.ndarray:
    if ref.get("layered"):
        return layered_ids(folder, ref)
    data = read_bytes(f"{folder}/{ref['info']['name']}.vectors.parquet")
    return pq.read_table(io.BytesIO(data), columns=["id"]).column("id").to_numpy()


def _train(spec: dict | None, refs: list[dict], folder: str, settings: dict) -> dict | None:
    """Train the chosen index on a random sample of the parts' vectors (never the first
    rows), read part by part. Ids are hashes, so the sample is the ``train_size`` smallest
    ids: the same corpus trains on the same vectors, in id order, on every runner and
    whether its parts were written in full or as layers (a layered part reads its base's
    rows, then its delta's). A first pass reads only ids to find the cut; the second
    fills one array of exactly that many vectors."""
    if spec is None:
        return None
    index_spec = IndexSpec(**spec)
    encoding = settings["encoding"]
    dtype = codec.natural_dtype(encoding)
    width = codec.wire_width(index_spec.encoding, index_spec.dimensions)
    refs = sorted(refs, key=lambda r: r["part"])
    xs = np.empty((0, width), dtype=dtype)
    size = min(spec["train_size"], spec["count"])
    if size:
        bound = _keep_rate(spec) * _ID_SPACE
        low = np.sort(np.concatenate([i[i < bound] for i in (_part_ids(folder, r) for r in refs)]))
        cut = int(low[min(size, low.size) - 1]) if low.size else -1
        xs = np.empty((int((low <= cut).sum()), width), dtype=dtype)
        order = np.empty(xs.shape[0], dtype=np.int64)
        filled = 0
        for ref in refs:
            if ref["id_min"] > cut:
                break
            for ids, xb in _part_vectors(folder, ref, encoding):
                keep = ids <= cut
                n = int(keep.sum())
                xs[filled : filled + n] = xb[keep]
                order[filled : filled + n] = ids[keep]
                filled += n
                del ids, xb, keep
        if order.size > 1 and (np.diff(order) < 0).any():  # layered parts: into id order
            xs = xs[np.argsort(order, kind="stable")]
        del order
    trained = train_index(index_spec, xs, seed=settings["seed"], overwrite=True)
    del xs
    blob = serialize_index(trained)
    del trained
    trim()
    return {"spec": spec, "blob": blob}


def train_without_data(spec: IndexSpec, *, seed: int = 0) -> bytes | None:
    """The empty index ``TrainShards`` would make, when it needs no vectors (no training
    sample, no IVF shards: flat and graph indexes); None when it does."""
    if spec.nlist or min(spec.train_size, spec.count):
        return None
    return _train(asdict(spec), [], "", {"encoding": spec.encoding, "seed": seed})["blob"]


class AddShardFn(beam.DoFn):
    """IVF: the trained index with one part's vectors added, as a shard file: its inverted
    lists alone (``indexes.ann.ondisk.shard_lists_bytes``) for the float and int8 indexes that
    the finish merges on disk, or the whole index for binary ones, which stay shards."""

    def __init__(self, folder: str, staging: str, encoding: str) -> None:
        self._folder = folder.rstrip("/")
        self._staging = staging.rstrip("/")
        self._encoding = encoding

    def process(self, ref: dict, trained: dict | None) -> Iterator[dict]:
        if trained is None or not trained["spec"]["nlist"]:
            return
        spec = IndexSpec(**trained["spec"])
        index = deserialize_index(trained["blob"], self._encoding)
        if packed_lists(index):  # fast-scan: the finish adds the parts' vectors
            return
        for ids, xb in _part_vectors(self._folder, ref, self._encoding):
            add_vectors(index, xb, ids, spec)  # in id order: the same as one add
        if spec.family == "binary":
            path = f"{self._staging}/shard-{ref['part']:05d}.faiss"
            data = serialize_index(index)
        else:  # merged on disk: the lists are all it needs, not the quantizer's copy
            path = f"{self._staging}/shard-{ref['part']:05d}.lists"
            data = shard_lists_bytes(index)
        del index
        write_bytes(path, data)
        del data
        trim()
        yield {"part": ref["part"], "index": path}


class TrainShards(beam.PTransform):
    """Train the chosen index and add each part's vectors to a copy of it (IVF: a shard
    file a part), on the workers, from ``(part refs, spec)``: the refs
    ``BuildIndexShards`` writes and a one-element PCollection of the spec (a dict, or
    None when there is nothing to index). The trained empty index and its spec go to
    ``staging`` (``load_trained``); with ``shard_list`` the shards' ``{"part", "index"}``
    too (``read_shard_list``). Returns the shard refs."""

    def __init__(
        self, staging: str, *, folder: str, encoding: str, seed: int = 0, shard_list: bool = False
    ) -> None:
        super().__init__()
        codec.check_encoding(encoding)
        self._staging = staging
        self._folder = folder
        self._encoding = encoding
        self._settings = {"encoding": encoding, "seed": seed}
        self._shard_list = shard_list

    def expand(self, inputs):
        parts, spec = inputs
        # The training sample is read from the parts by the one worker that trains: it
        # never crosses a stage boundary (only the parts' small refs do).
        trained = spec | "Train" >> beam.Map(
            _train, beam.pvalue.AsList(parts), self._folder, self._settings
        )
        _ = trained | "SaveTrained" >> beam.Map(save_trained, self._staging)
        shards = parts | "AddShard" >> beam.ParDo(
            AddShardFn(self._folder, self._staging, self._encoding),
            beam.pvalue.AsSingleton(trained),
        )
        if self._shard_list:
            _ = (
                shards
                | "ShardJson" >> beam.Map(json.dumps, sort_keys=True)
                | "ShardList"
                >> beam.io.WriteToText(f"{self._staging}/{SHARD_LIST}", shard_name_template="")
            )
        return shards
