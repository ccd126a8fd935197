"""BuildIndexShards: the index built on the workers, in shards, for one final merge.

    embedded --Count--> Choose (the index for that many vectors)
    embedded --Sample (by id hash, sized by the choice)--> Train (one worker)
    embedded --by id % shards--> GroupByKey --> AddShard (each worker, its shards):
               copy of the trained index + add_with_ids (IVF); write shard files

Only the training sample (the chosen index's training size, 30-256 vectors a list)
meets on one worker; each shard holds ``1/shards`` of the vectors. A shard is files in
``staging``: ``shard-NNNNN.metadata.parquet`` and ``.vectors.parquet`` and, for IVF
indexes, ``.faiss``; flat and graph indexes cannot merge shards without re-adding every
vector, so the final step adds theirs once. Grouping by id also catches duplicates (the
same document id twice in the corpus): the first, by URI, is kept and the others go to
the failures output.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from indexes import build
from indexes.choose import IndexSpec, choose_index
from indexes.ids import chunk_id
from indexes.tables import METADATA_COLUMNS, fixed_size_list
from inference import codec
from inference.errors import ConfigError
from transforms.elements import Embedded, Failure
from transforms.read import FAILURES, Outputs

__all__ = [
    "BuildIndexShards",
    "load_trained",
    "metadata_row",
    "shard_rescore",
    "shard_tables",
]

_HASH_SPACE = 1 << 32


def metadata_row(e: Embedded, id_: int) -> dict:
    """One row of metadata.parquet for an embedded chunk or image."""
    return {
        "id": id_,
        "document_id": e.document_id,
        "chunk": e.chunk_index,
        "uri": e.uri,
        "modality": e.modality,
        "text": e.text,
        "char_start": e.start,
        "char_end": e.end,
        "content_hash": e.content_hash,
        "metadata_json": json.dumps(e.metadata, sort_keys=True, default=str),
    }


def shard_tables(items: list[tuple[int, Embedded]], encoding: str) -> tuple[pa.Table, np.ndarray]:
    """(metadata table, vectors array) for a shard's (id, Embedded) pairs, in id order."""
    items = sorted(items, key=lambda t: t[0])
    rows = [metadata_row(e, i) for i, e in items]
    table = pa.Table.from_pylist(rows, schema=SHARD_METADATA_SCHEMA)
    if items:
        xb = np.stack([np.asarray(e.vector) for _, e in items])
    else:
        xb = np.empty((0, 0), dtype=codec.natural_dtype(encoding))
    return table, xb.astype(codec.natural_dtype(encoding), copy=False)


def shard_rescore(items: list[tuple[int, Embedded]]) -> np.ndarray | None:
    """The rescoring vectors of a shard's (id, Embedded) pairs, in id order, or None
    when they carry none; all or none must carry one."""
    items = sorted(items, key=lambda t: t[0])
    have = [e.rescore is not None for _, e in items]
    if not items or not any(have):
        return None
    if not all(have):
        missing = next(e for _, e in items if e.rescore is None)
        raise ConfigError(
            "rescore",
            f"{missing.document_id}#{missing.chunk_index}",
            "some vectors have rescoring vectors and this one has none",
        )
    return np.stack([np.asarray(e.rescore) for _, e in items])


# The folder's metadata columns, then the user's metadata as one JSON object a row
# (``indexes.assemble.expand_metadata_json`` turns it into columns).
SHARD_METADATA_SCHEMA = pa.schema([*METADATA_COLUMNS.items(), ("metadata_json", pa.string())])


def _keyed(e: Embedded, shards: int) -> tuple[int, tuple[int, Embedded]]:
    id_ = chunk_id(e.document_id, e.chunk_index)
    return id_ % shards, (id_, e)


def _dimensions(vector: np.ndarray, encoding: str) -> int:
    width = int(np.asarray(vector).shape[-1])
    return width * 8 if encoding in codec.BIT_ENCODINGS else width


def _choose(_, count: int, first: list, settings: dict) -> dict | None:
    """The index to build for ``count`` vectors like ``first[0]``, as a dict."""
    if count == 0 or not first:
        return None
    spec = choose_index(
        count,
        _dimensions(first[0], settings["encoding"]),
        settings["encoding"],
        memory_budget=settings["memory_budget"],
        factory=settings["factory"],
        train_per_centroid=settings["train_per_centroid"],
    )
    return asdict(spec)


def _keep_rate(spec: dict) -> float:
    """Bernoulli rate that yields at least ``train_size`` vectors (mean + 6 sd above it)."""
    size = spec["train_size"]
    if not size or spec["count"] <= 0:
        return 0.0
    return min(1.0, (size + 6 * math.sqrt(size) + 10) / spec["count"])


def _sampled(e: Embedded, spec: dict | None) -> Iterator[np.ndarray]:
    """The vector of ``e`` if it is in the training sample: decided by its id's hash, so
    the same corpus trains on the same vectors on every runner."""
    if spec is None:
        return
    rate = _keep_rate(spec)
    if rate and (chunk_id(e.document_id, e.chunk_index) % _HASH_SPACE) < rate * _HASH_SPACE:
        yield np.asarray(e.vector)


def _train(spec: dict | None, sample: list, settings: dict) -> dict | None:
    """Train the chosen index on the sample (a random one, never the first rows)."""
    if spec is None:
        return None
    index_spec = IndexSpec(**spec)
    xs = np.stack(sample).astype(codec.natural_dtype(settings["encoding"])) if sample else None
    if xs is None:  # an index that needs no training still gets built from an empty sample
        width = codec.wire_width(index_spec.encoding, index_spec.dimensions)
        xs = np.empty((0, width), dtype=codec.natural_dtype(settings["encoding"]))
    trained = build.train_index(index_spec, xs, seed=settings["seed"])
    return {"spec": spec, "blob": build.serialize_index(trained)}


class _AddShardFn(beam.DoFn):
    def __init__(self, staging: str, encoding: str) -> None:
        self._staging = staging.rstrip("/")
        self._encoding = encoding

    def process(self, element: tuple[int, Iterable], trained: dict | None) -> Iterator:
        shard, group = element
        if trained is None:  # pragma: no cover - no vectors means no groups
            return
        spec = IndexSpec(**trained["spec"])
        kept: dict[int, Embedded] = {}
        for id_, e in sorted(group, key=lambda t: (t[0], t[1].uri)):
            if id_ in kept:
                first = kept[id_]
                yield beam.pvalue.TaggedOutput(
                    FAILURES,
                    Failure.of(
                        f"duplicate id: chunk {e.chunk_index} of {e.document_id!r} also comes "
                        f"from {first.uri}; ids must be unique (kept the first)",
                        source_id=f"{e.document_id}#{e.chunk_index}",
                        uri=e.uri,
                        stage="index",
                    ),
                )
                continue
            kept[id_] = e
        table, xb = shard_tables(list(kept.items()), self._encoding)
        ids = table.column("id").to_numpy()
        base = f"{self._staging}/shard-{shard:05d}"
        files = {
            "index": None,
            "metadata": f"{base}.metadata.parquet",
            "vectors": f"{base}.vectors.parquet",
        }
        if spec.nlist:
            # IVF shards merge their inverted lists: add here, on the worker. Flat and
            # graph indexes cannot merge shards without re-adding every vector, so the
            # final step builds them once from the shards' vectors instead.
            index = build.deserialize_index(trained["blob"], self._encoding)
            build.add_vectors(index, xb, ids, spec)
            files["index"] = f"{base}.faiss"
            _write(files["index"], build.serialize_index(index))
        _write(files["metadata"], _parquet(table))
        vectors = pa.table({"id": pa.array(ids, type=pa.int64()), "vector": fixed_size_list(xb)})
        rescore = shard_rescore(list(kept.items()))
        if rescore is not None:  # derived int8 rescoring vectors (binary indexes)
            vectors = vectors.append_column("rescore", fixed_size_list(rescore))
        _write(files["vectors"], _parquet(vectors))
        yield {"shard": shard, "count": len(kept), **files}


TRAINED_INDEX = "trained.faiss"
TRAINED_SPEC = "spec.json"


def _save_trained(trained: dict | None, staging: str) -> None:
    """The trained empty index and its spec, for the final merge (``load_trained``)."""
    if trained is not None:
        _write(f"{staging.rstrip('/')}/{TRAINED_INDEX}", trained["blob"])
        _write(f"{staging.rstrip('/')}/{TRAINED_SPEC}", json.dumps(trained["spec"]).encode())


def load_trained(staging: str) -> tuple[IndexSpec, bytes] | None:
    """What ``BuildIndexShards`` trained, or None when there was nothing to index."""
    spec_path = f"{staging.rstrip('/')}/{TRAINED_SPEC}"
    if not FileSystems.exists(spec_path):
        return None
    with FileSystems.open(spec_path) as f:
        spec = IndexSpec(**json.loads(f.read()))
    with FileSystems.open(f"{staging.rstrip('/')}/{TRAINED_INDEX}") as f:
        return spec, f.read()


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


class BuildIndexShards(beam.PTransform):
    """Build the index for ``Embedded`` elements on the workers: count them, train the
    chosen index once on a random sample, add the vectors shard by shard (``shards``
    groups by id) and write each shard's files under ``staging``, with the trained index
    and its spec for the final merge (``load_trained``). Returns
    ``Outputs(main=shard file dicts, failures)``.
    """

    def __init__(
        self,
        staging: str,
        *,
        encoding: str,
        factory: str | None = None,
        memory_budget: int,
        train_per_centroid: int = 64,
        shards: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        codec.check_encoding(encoding)
        if shards < 1:
            raise ConfigError("shards", shards, "must be at least 1")
        self._staging = staging
        self._encoding = encoding
        self._shards = shards
        self._settings = {
            "encoding": encoding,
            "factory": factory,
            "memory_budget": memory_budget,
            "train_per_centroid": train_per_centroid,
            "seed": seed,
        }

    def expand(self, embedded: beam.PCollection) -> Outputs:
        count = embedded | "Count" >> beam.combiners.Count.Globally()
        first = (
            embedded
            | "Vectors" >> beam.Map(lambda e: e.vector)
            | "First" >> beam.combiners.Sample.FixedSizeGlobally(1)
        )
        spec = (
            embedded.pipeline
            | "Once" >> beam.Create([None])
            | "Choose"
            >> beam.Map(
                _choose,
                beam.pvalue.AsSingleton(count),
                beam.pvalue.AsSingleton(first),
                self._settings,
            )
        )
        sample = (
            embedded
            | "Sample" >> beam.FlatMap(_sampled, beam.pvalue.AsSingleton(spec))
            | "SampleList" >> beam.combiners.ToList()
        )
        trained = spec | "Train" >> beam.Map(
            _train, beam.pvalue.AsSingleton(sample), self._settings
        )
        _ = trained | "SaveTrained" >> beam.Map(_save_trained, self._staging)
        shards = (
            embedded
            | "ById" >> beam.Map(_keyed, self._shards)
            | "Group" >> beam.GroupByKey()
            | "AddShard"
            >> beam.ParDo(
                _AddShardFn(self._staging, self._encoding), beam.pvalue.AsSingleton(trained)
            ).with_outputs(FAILURES, main="shards")
        )
        return Outputs(shards.shards, shards.failures)
