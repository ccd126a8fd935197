"""Index folders: build, write, open and check.

Layout (every file is listed with its sha256 in the manifest)::

    manifest.json        what was built, from what, how well it searches (indexes.manifest)
    index.faiss          the index (layout "single"), or
    index.faiss + index.faiss.ivfdata   an IVF index with its lists on disk ("ondisk"), or
    shards/shard-00000.faiss ...        shards searched together ("shards")
    metadata.parquet     one row a vector: id, document_id, chunk, uri, modality, text,
                         char_start, char_end, content_hash, then the user's columns
    vectors.parquet      id, vector (fixed-size list in the encoding's natural dtype) and,
                         when rescoring is on, rescore (fixed-size list of int8 or float32)
    rescore.npy          the rescore column again as a plain (n, d) array, memory-mapped at
                         search time so only the candidates' rows are read

Every table is sorted by id and every index gets its vectors in that order; ids, never row
positions, link the index to its metadata. ``open_index`` verifies the manifest, the
checksums and the caller's expectations before loading anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexes import build
from indexes.choose import (
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_TRAIN_PER_CENTROID,
    IndexSpec,
    choose_index,
    family_of,
)
from indexes.filters import filter_ids
from indexes.ids import chunk_ids
from indexes.manifest import Manifest, check_expected, sanitize_endpoint
from indexes.search import RescoreStore, SearchResult, index_id_view, search
from indexes.tune import reference_neighbours, tune_index
from inference import codec
from inference.errors import ConfigError, IndexFolderError

__all__ = [
    "METADATA_COLUMNS",
    "BuildConfig",
    "IndexFolder",
    "build_folder",
    "column_array",
    "metadata_table",
    "open_index",
    "rebuild_folder",
]

MANIFEST = "manifest.json"
METADATA = "metadata.parquet"
VECTORS = "vectors.parquet"
RESCORE = "rescore.npy"
INDEX = "index.faiss"

METADATA_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.int64(),
    "document_id": pa.string(),
    "chunk": pa.int32(),
    "uri": pa.string(),
    "modality": pa.string(),
    "text": pa.string(),
    "char_start": pa.int64(),
    "char_end": pa.int64(),
    "content_hash": pa.string(),
}


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """How to build: index choice, pieces, tuning and rescoring.

    ``shards`` splits the add into that many pieces built from one trained index;
    ``merge`` is ``memory`` (one index), ``ondisk`` (IVF lists in a file beside the index,
    memory-mapped) or ``none`` (keep the shards, search them together).
    ``eval_queries`` held-out queries measure recall@``k`` against exact search;
    ``rescore_factor`` candidates a result are rescored when rescoring vectors are given
    (default 4 for int8 indexes, 20 for binary ones: bits lose more; on MiniLM
    embeddings 10 candidates a result kept 0.948 of exact float recall@10, 20 kept 0.977).
    """

    memory_budget: int = DEFAULT_MEMORY_BUDGET
    factory: str | None = None
    train_per_centroid: int = DEFAULT_TRAIN_PER_CENTROID
    seed: int = 0
    shards: int = 1
    merge: str = "memory"
    latency_budget_ms: float = 10.0
    target_recall: float = 0.99
    eval_queries: int = 200
    k: int = 10
    rescore_factor: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ConfigError("shards", self.shards, "must be >= 1")
        if self.merge not in ("memory", "ondisk", "none"):
            raise ConfigError("merge", self.merge, "must be memory, ondisk or none")
        if self.eval_queries < 0:
            raise ConfigError("eval_queries", self.eval_queries, "must be >= 0")
        if self.k < 1:
            raise ConfigError("k", self.k, "must be >= 1")
        if self.rescore_factor is not None and self.rescore_factor < 1:
            raise ConfigError("rescore_factor", self.rescore_factor, "must be >= 1")
        if self.latency_budget_ms <= 0:
            raise ConfigError("latency_budget_ms", self.latency_budget_ms, "must be positive")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads", self.threads, "must be >= 1")


# ------------------------------------------------------------------ metadata and vectors


def metadata_table(metadata: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    """Normalise metadata to the folder's schema: the standard columns (missing ones null)
    with their types, then the user's columns; computes ``id`` from (document_id, chunk)
    when absent, and checks given ids against it."""
    table = metadata if isinstance(metadata, pa.Table) else pa.table(dict(metadata))
    for required in ("document_id", "chunk"):
        if required not in table.column_names:
            raise ConfigError("metadata", table.column_names, f"needs a {required} column")
    docs = table.column("document_id").to_pylist()
    chunks = table.column("chunk").to_pylist()
    ids = chunk_ids(docs, chunks)
    if "id" in table.column_names:
        given = np.asarray(table.column("id").to_numpy(zero_copy_only=False), dtype=np.int64)
        if not np.array_equal(given, ids):
            bad = int(np.flatnonzero(given != ids)[0])
            raise ConfigError("metadata.id", int(given[bad]), f"row {bad}: not chunk_id(doc, n)")
    columns: dict[str, pa.Array] = {}
    n = table.num_rows
    for name, dtype in METADATA_COLUMNS.items():
        if name == "id":
            columns[name] = pa.array(ids, type=dtype)
        elif name in table.column_names:
            try:
                columns[name] = table.column(name).cast(dtype)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ConfigError(
                    f"metadata.{name}", str(table.column(name).type), str(exc)
                ) from None
        else:
            columns[name] = pa.nulls(n, type=dtype)
    for name in table.column_names:
        if name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def _fixed_list(x: np.ndarray, dtype: pa.DataType) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(x).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])


_ARROW = {
    np.dtype(np.float32): pa.float32(),
    np.dtype(np.int8): pa.int8(),
    np.dtype(np.uint8): pa.uint8(),
}


def vectors_schema(encoding: str, d: int, rescore_dtype: np.dtype | None) -> pa.Schema:
    """Explicit schema of vectors.parquet (fixed-size lists, never inferred)."""
    width = codec.wire_width(encoding, d)
    fields = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("vector", pa.list_(_ARROW[codec.natural_dtype(encoding)], width)),
    ]
    if rescore_dtype is not None:
        fields.append(pa.field("rescore", pa.list_(_ARROW[np.dtype(rescore_dtype)], d)))
    return pa.schema(fields)


def column_array(table: pa.Table, name: str, dtype: np.dtype) -> np.ndarray:
    col = table.column(name).combine_chunks()
    width = col.type.list_size
    values = col.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.astype(dtype, copy=False).reshape(-1, width))


# ------------------------------------------------------------------ writing


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_folder(
    path: str | os.PathLike,
    xb: np.ndarray,
    metadata: pa.Table | Mapping[str, Sequence[Any]],
    *,
    encoding: str,
    model: str,
    dimensions: int | None = None,
    endpoint: str | None = None,
    api_version: str | None = None,
    input_type: str | None = None,
    rescore_vectors: np.ndarray | None = None,
    xq_eval: np.ndarray | None = None,
    config: BuildConfig | None = None,
    prebuilt: tuple[IndexSpec, Any] | None = None,
) -> Manifest:
    """Build an index folder at ``path`` (which must not exist or be empty).

    ``prebuilt``: an index already holding ``xb`` under the metadata's ids, with its spec
    (``indexes.assemble`` merges shards built on workers into one), written as it is.

    ``xb``: vectors in ``encoding``'s natural dtype, one row per metadata row.
    ``rescore_vectors``: optional (n, d) int8 or float32 copy for rescoring (for binary
    encodings the int8 or float answer for the same inputs). ``xq_eval``: held-out float
    (or natural dtype) queries for measuring recall; else ``config.eval_queries`` indexed
    vectors are sampled.
    """
    config = config or BuildConfig()
    codec.check_encoding(encoding)
    if config.threads:
        faiss.omp_set_num_threads(config.threads)
    table = metadata_table(metadata)
    n = table.num_rows
    xb = np.asarray(xb)
    if xb.ndim != 2 or xb.shape[0] != n:
        raise ConfigError("xb", xb.shape, f"expected {n} rows, one per metadata row")
    if dimensions is None:
        dimensions = xb.shape[1] * (8 if encoding in codec.BIT_ENCODINGS else 1)
    width = codec.wire_width(encoding, dimensions)
    if xb.shape[1] != width:
        raise ConfigError("xb", xb.shape, f"{encoding} with {dimensions} dimensions has {width}")
    if rescore_vectors is not None:
        rescore_vectors = np.asarray(rescore_vectors)
        if rescore_vectors.shape != (n, dimensions) or rescore_vectors.dtype not in (
            np.int8,
            np.float32,
        ):
            raise ConfigError(
                "rescore_vectors",
                (rescore_vectors.shape, str(rescore_vectors.dtype)),
                f"expected int8 or float32 of shape ({n}, {dimensions})",
            )
    if rescore_vectors is None and family_of(encoding) == "int8":
        # int8 rescoring: the float query against the stored bytes themselves.
        rescore_vectors = (xb.astype(np.int16) - 128).astype(np.int8) if encoding == "uint8" else xb
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("path", os.fspath(out), "exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)

    # One order everywhere: ascending id.
    ids = table.column("id").to_numpy()
    order = np.argsort(ids, kind="stable")
    table = table.take(pa.array(order))
    ids = ids[order]
    xb = xb[order]
    if rescore_vectors is not None:
        rescore_vectors = rescore_vectors[order]

    if prebuilt is not None:
        spec, index = prebuilt
        if index.ntotal != n:
            raise ConfigError("prebuilt", index.ntotal, f"expected an index of {n} vectors")
        build.write_index(index, out / INDEX)
        layout, index_files = "single", (INDEX,)
    else:
        spec = choose_index(
            n,
            dimensions,
            encoding,
            memory_budget=config.memory_budget,
            factory=config.factory,
            train_per_centroid=config.train_per_centroid,
        )
        if config.merge == "ondisk" and (spec.family == "binary" or not spec.nlist):
            raise ConfigError(
                "merge", "ondisk", f"needs a float or int8 IVF index, not {spec.factory}"
            )
        index, layout, index_files = _build_index(out, xb, ids, spec, config)

    _write_tables(out, table, ids, xb, rescore_vectors, encoding, dimensions)
    store = None
    rescore_info = None
    if rescore_vectors is not None:
        np.save(out / RESCORE, rescore_vectors, allow_pickle=False)
        store = RescoreStore(ids, np.load(out / RESCORE, mmap_mode="r"), dimensions=dimensions)
        factor = config.rescore_factor or (20 if spec.family == "binary" else 4)
        rescore_info = {"file": RESCORE, "dtype": str(rescore_vectors.dtype), "factor": factor}

    recall, latency, params = _evaluate_build(
        index, spec, xb, ids, rescore_vectors, store, xq_eval, config, rescore_info
    )
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            rel = p.relative_to(out).as_posix()
            files[rel] = {"sha256": _sha256(p), "bytes": p.stat().st_size}
    manifest = Manifest(
        model=model,
        dimensions=dimensions,
        encoding=encoding,
        index_factory=spec.factory,
        count=n,
        metric=spec.metric,
        endpoint=sanitize_endpoint(endpoint),
        api_version=api_version,
        input_type=input_type,
        normalized=spec.family == "float",
        search_params=params,
        layout=layout,
        index_files=tuple(index_files),
        rescore=rescore_info,
        recall=recall,
        latency_ms=latency,
        files=files,
    )
    (out / MANIFEST).write_text(manifest.to_json())
    return manifest


def _build_index(
    out: Path, xb: np.ndarray, ids: np.ndarray, spec: IndexSpec, config: BuildConfig
) -> tuple[object, str, tuple[str, ...]]:
    """Train once, add ``config.shards`` pieces from the serialised trained index (as
    workers would), then merge or group them; returns (index, layout, index_files)."""
    encoding = spec.encoding
    n = xb.shape[0]
    trained = build.train_index(spec, xb, seed=config.seed)
    blob = build.serialize_index(trained)
    bounds = np.linspace(0, n, config.shards + 1).astype(int)
    shard_dir = out / "shards"
    shard_files: list[str] = []
    if config.merge != "memory":
        shard_dir.mkdir()
    shards = []
    for s in range(config.shards):
        lo, hi = bounds[s], bounds[s + 1]
        shard = build.deserialize_index(blob, encoding)
        build.add_vectors(shard, xb[lo:hi], ids[lo:hi], spec)
        if shard_dir.exists():
            name = f"shards/shard-{s:05d}.faiss"
            build.write_index(shard, out / name)
            shard_files.append(name)
        shards.append(shard)
    if config.merge == "none":
        layout, index_files = "shards", tuple(shard_files)
        index = build.shard_group(shards, spec) if len(shards) > 1 else shards[0]
    elif config.merge == "ondisk":
        layout = "ondisk"
        del shards
        ivfdata = build.merge_ondisk(
            build.deserialize_index(blob, encoding),
            [out / f for f in shard_files],
            out / INDEX,
            spec,
        )
        index_files = (INDEX, ivfdata)
        shutil.rmtree(shard_dir)
        index = build.read_index(out / INDEX, encoding)
    else:
        layout = "single"
        index = build.merge_indexes(shards, spec) if len(shards) > 1 else shards[0]
        if shard_dir.exists():
            shutil.rmtree(shard_dir)
        build.write_index(index, out / INDEX)
        index_files = (INDEX,)
    return index, layout, tuple(index_files)


def _write_tables(
    out: Path,
    table: pa.Table,
    ids: np.ndarray,
    xb: np.ndarray,
    rescore_vectors: np.ndarray | None,
    encoding: str,
    dimensions: int,
) -> None:
    """metadata.parquet and vectors.parquet (explicit schema, fixed-size lists)."""
    pq.write_table(table, out / METADATA)
    rdtype = None if rescore_vectors is None else rescore_vectors.dtype
    vcols = [pa.array(ids, type=pa.int64()), _fixed_list(xb, _ARROW[xb.dtype])]
    if rescore_vectors is not None:
        vcols.append(_fixed_list(rescore_vectors, _ARROW[rescore_vectors.dtype]))
    vschema = vectors_schema(encoding, dimensions, rdtype)
    pq.write_table(pa.Table.from_arrays(vcols, schema=vschema), out / VECTORS)


def _evaluate_build(index, spec, xb, ids, rescore_vectors, store, xq_eval, config, rescore_info):
    """Tune and measure recall@k on held-out queries; returns (recall dict, latency, params)."""
    if config.eval_queries == 0 and xq_eval is None:
        return None, None, {}
    d = spec.dimensions
    exclude = None
    if xq_eval is not None:
        xq = np.asarray(xq_eval)
        source = "given"
    else:
        rows = build.training_sample(xb.shape[0], config.eval_queries, seed=config.seed + 1)
        xq = xb[rows] if rescore_vectors is None else rescore_vectors[rows].astype(np.float32)
        exclude = ids[rows]
        source = "sampled from the indexed vectors, each left out of its own results"
    I_gt, ref = reference_neighbours(
        xb,
        ids,
        xq,
        config.k,
        encoding=spec.encoding,
        d=d,
        rescore_vectors=rescore_vectors,
        exclude=exclude,
    )
    tuned = tune_index(
        index,
        spec,
        xq,
        I_gt,
        k=config.k,
        latency_budget_ms=config.latency_budget_ms,
        target_recall=config.target_recall,
        rescore=store,
        rescore_factor=rescore_info["factor"] if rescore_info else 1,
        exclude=exclude,
    )
    recall = {
        "k": config.k,
        "value": round(tuned.recall, 5),
        "queries": int(xq.shape[0]),
        "reference": ref,
        "source": source,
        "rescored": store is not None,
    }
    return recall, round(tuned.latency_ms, 4), tuned.params


# ------------------------------------------------------------------ reading


class IndexFolder:
    """An opened, verified index folder. Use ``open_index`` to make one."""

    def __init__(self, path: Path, manifest: Manifest, index, spec: IndexSpec) -> None:
        self.path = path
        self.manifest = manifest
        self.index = index
        self.spec = spec
        self._metadata: pa.Table | None = None
        self._store: RescoreStore | None = None

    def metadata(self) -> pa.Table:
        """metadata.parquet (read once)."""
        if self._metadata is None:
            self._metadata = pq.read_table(self.path / METADATA)
        return self._metadata

    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(ids, vectors in the natural dtype, rescore vectors or None) from vectors.parquet."""
        t = pq.read_table(self.path / VECTORS)
        ids = t.column("id").to_numpy()
        xb = column_array(t, "vector", codec.natural_dtype(self.manifest.encoding))
        rv = None
        if "rescore" in t.column_names:
            rv = column_array(t, "rescore", np.dtype(self.manifest.rescore["dtype"]))
        return ids, xb, rv

    def rescore_store(self) -> RescoreStore | None:
        """The memory-mapped rescoring vectors, or None when the folder has none."""
        if self.manifest.rescore is None:
            return None
        if self._store is None:
            vec = np.load(self.path / self.manifest.rescore["file"], mmap_mode="r")
            ids = index_id_view(self.index)
            if ids is None or ids.shape[0] != vec.shape[0] or not (ids[1:] > ids[:-1]).all():
                ids = pq.read_table(self.path / VECTORS, columns=["id"]).column("id").to_numpy()
            self._store = RescoreStore(ids, vec, dimensions=self.manifest.dimensions)
        return self._store

    def search(
        self,
        xq: np.ndarray,
        k: int = 10,
        *,
        filter: dict | None = None,
        rescore: bool | None = None,
        params: dict[str, int] | None = None,
    ) -> SearchResult:
        """k nearest of ``xq``; ``filter`` uses the ``indexes.filters`` syntax; ``rescore``
        None rescoring when the folder has rescoring vectors and the query is float."""
        store = None
        if rescore is not False and self.manifest.rescore is not None:
            if np.asarray(xq).dtype.kind == "f":
                store = self.rescore_store()
            elif rescore:
                raise ConfigError("xq", np.asarray(xq).dtype, "rescoring needs float queries")
        elif rescore:
            raise ConfigError("rescore", rescore, "this folder holds no rescoring vectors")
        allowed = None if filter is None else filter_ids(self.metadata(), filter)
        return search(
            self.index,
            xq,
            k,
            encoding=self.manifest.encoding,
            d=self.manifest.dimensions,
            params={**self.manifest.search_params, **(params or {})},
            allowed_ids=allowed,
            rescore=store,
            rescore_factor=self.manifest.rescore["factor"] if store else 1,
        )

    def lookup(self, I: np.ndarray) -> list[list[dict | None]]:  # noqa: E741
        """The metadata rows of result ids ``I`` (nq, k), matched by id; None for -1."""
        table = self.metadata()
        ids = table.column("id").to_numpy()
        pos = np.searchsorted(ids, I)
        pos = np.minimum(pos, max(len(ids) - 1, 0))
        rows = table.to_pylist()
        return [
            [rows[p] if i >= 0 and ids[p] == i else None for p, i in zip(pr, ir, strict=True)]
            for pr, ir in zip(pos, I, strict=True)
        ]


def open_index(
    path: str | os.PathLike,
    *,
    expect_encoding: str | None = None,
    expect_model: str | None = None,
    expect_dimensions: int | None = None,
    verify: bool = True,
    mmap: bool = False,
) -> IndexFolder:
    """Open an index folder, refusing a damaged or mismatched one with IndexFolderError.

    Checks, in order: manifest present and valid; the caller's expected encoding, model
    and dimensions; every listed file present with its size and (``verify``) sha256; the
    index's dimensions, type and vector count against the manifest.
    """
    folder = Path(path)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise IndexFolderError(f"{folder} is not an index folder: {MANIFEST} missing")
    manifest = Manifest.from_json(mpath.read_text())
    check_expected(
        manifest, encoding=expect_encoding, model=expect_model, dimensions=expect_dimensions
    )
    for name in (METADATA, VECTORS, *manifest.index_files):
        if name not in manifest.files:
            raise IndexFolderError(f"manifest lists no checksum for {name}")
    for name, info in manifest.files.items():
        p = folder / name
        if not p.is_file():
            raise IndexFolderError(f"{folder}: file {name} is missing")
        if p.stat().st_size != info.get("bytes"):
            raise IndexFolderError(f"{folder}: file {name} has the wrong size (damaged?)")
        if verify and _sha256(p) != info.get("sha256"):
            raise IndexFolderError(f"{folder}: file {name} fails its sha256 check (damaged?)")
    _check_vectors_schema(folder, manifest)
    spec = IndexSpec(
        encoding=manifest.encoding,
        dimensions=manifest.dimensions,
        count=manifest.count,
        factory=manifest.index_factory,
    )
    if manifest.layout == "shards":
        shards = [
            build.read_index(folder / f, manifest.encoding, mmap=mmap) for f in manifest.index_files
        ]
        index = build.shard_group(shards, spec) if len(shards) > 1 else shards[0]
    else:
        index = build.read_index(folder / manifest.index_files[0], manifest.encoding, mmap=mmap)
    is_binary = isinstance(index, faiss.IndexBinary | faiss.IndexBinaryShards)
    if is_binary != (family_of(manifest.encoding) == "binary"):
        raise IndexFolderError(
            f"{folder}: the index file does not hold a {manifest.encoding} index"
        )
    if index.d != manifest.dimensions or index.ntotal != manifest.count:
        raise IndexFolderError(
            f"{folder}: index has d={index.d}, {index.ntotal} vectors; manifest says "
            f"d={manifest.dimensions}, {manifest.count}"
        )
    return IndexFolder(folder, manifest, index, spec)


def _check_vectors_schema(folder: Path, manifest: Manifest) -> None:
    """vectors.parquet must hold the manifest's encoding at its width."""
    try:
        schema = pq.read_schema(folder / VECTORS)
    except (OSError, pa.ArrowInvalid) as exc:
        raise IndexFolderError(f"{folder}: cannot read {VECTORS} ({exc})") from None
    rdtype = None if manifest.rescore is None else np.dtype(manifest.rescore["dtype"])
    want = vectors_schema(manifest.encoding, manifest.dimensions, rdtype)
    if not schema.remove_metadata().equals(want):
        raise IndexFolderError(
            f"{folder}: {VECTORS} holds {schema.field('vector').type}, not "
            f"{manifest.encoding} vectors of {manifest.dimensions} dimensions"
        )


def rebuild_folder(
    src: str | os.PathLike, dst: str | os.PathLike, *, config: BuildConfig | None = None
) -> Manifest:
    """A new folder at ``dst`` from the vectors and metadata stored in ``src`` (verified
    first): another index type, budget or sharding, without embedding anything again."""
    old = open_index(src)
    m = old.manifest
    _, xb, rv = old.vectors()
    if rv is not None and family_of(m.encoding) == "int8":
        rv = None  # the int8 twin is made again from the vectors
    return build_folder(
        dst,
        xb,
        old.metadata(),
        encoding=m.encoding,
        model=m.model,
        dimensions=m.dimensions,
        endpoint=m.endpoint,
        api_version=m.api_version,
        input_type=m.input_type,
        rescore_vectors=rv,
        config=config,
    )
