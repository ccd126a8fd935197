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
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.merge import packed_lists
from indexes.ann.ondisk import shard_lists_bytes
from indexes.ann.serialize import deserialize_index, serialize_index
from indexes.ann.spec import IndexSpec, family_of
from indexes.ann.train import add_vectors, train_index
from indexes.building.assemble import expand_metadata_json
from indexes.config import AutoLimits
from indexes.lexical.index import column_texts
from indexes.lexical.segment import encode_segment
from indexes.memory import trim
from indexes.storage.ids import chunk_id
from indexes.storage.layers import DELTA_PREFIX, part_number
from indexes.storage.part_files import encode_part, file_entry, parquet_bytes
from indexes.storage.part_ranges import id_starts, part_of
from indexes.storage.tables import METADATA_COLUMNS, column_array, metadata_table
from transforms import counters as progress
from transforms.elements import Embedded, Failure
from transforms.part_layers import (
    Carried,
    base_of,
    base_rows,
    carried_rows,
    concat_metadata,
    kept_in_base,
    layered_ids,
    layered_vectors,
    read_base_metadata,
    removed_entry,
)
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

_ID_SPACE = 1 << 63
_RUN_ROWS = 4096
PART_LIST = "parts.jsonl"
RUNS = "runs"  # in the staging: each part's embedded rows, until the part is written
SHARD_LIST = "shards.jsonl"  # TrainShards run on its own: {"part", "index"} a line
TRAINED_INDEX = "trained.faiss"
TRAINED_SPEC = "spec.json"
# An Embedded whose vector is empty (this marker) is reused: its vector is read from the previous
# version's part when the part is written (``ReuseVectors``).
REUSED_VECTOR = np.empty(0, dtype=np.uint8)
_RUN_ONLY = ("reused", "vector", "rescore", "row_digest")  # run columns a part does not keep

# A run file: the folder's metadata columns, the user's metadata as one JSON object a row
# (``indexes.building.assemble.expand_metadata_json`` turns it into columns), whether the row is
# reused, and its vector (a list column, empty for reused rows).
RUN_COLUMNS = pa.schema(
    [
        *METADATA_COLUMNS.items(),
        ("metadata_json", pa.string()),
        ("reused", pa.bool_()),
        ("row_digest", pa.int64()),
    ]
)


def _run_only(table: pa.Table) -> list[str]:
    """The columns of a run's ``table`` that a part does not keep."""
    return [c for c in _RUN_ONLY if c in table.column_names]


def _is_reused(e: Embedded) -> bool:
    return np.asarray(e.vector).size == 0


def row_digest(row: dict) -> int:
    """A metadata row's digest (signed 64-bit; its id left out): equal digests, equal rows.
    Parts keep them (``.digests.npy``), so an update recognises a row it need not write."""
    body = json.dumps({k: v for k, v in row.items() if k != "id"}, sort_keys=True, default=str)
    return int.from_bytes(
        hashlib.blake2b(body.encode(), digest_size=8).digest(), "little", signed=True
    )


def metadata_row(e: Embedded, id_: int) -> dict:
    """One metadata row for an embedded chunk or image."""
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


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def _read(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


class _WriteRunsFn(beam.DoFn):
    """Buffer embedded rows by part; every ``_RUN_ROWS`` rows (and at the bundle's end)
    write each part's rows to a run file and emit a small reference to it."""

    def __init__(self, staging: str, parts: int, encoding: str) -> None:
        self._staging = staging.rstrip("/")
        self._parts = parts
        self._dtype = codec.natural_dtype(encoding)

    def start_bundle(self) -> None:
        self._rows: dict[int, list[tuple[int, Embedded]]] = {}
        self._count = 0

    def process(self, e: Embedded) -> Iterator[dict]:
        id_ = chunk_id(e.document_id, e.chunk_index)
        self._rows.setdefault(int(part_of(id_, self._parts)), []).append((id_, e))
        self._count += 1
        if self._count >= _RUN_ROWS:
            yield from self._flush()

    def finish_bundle(self) -> Iterator:
        for ref in self._flush():
            yield GlobalWindows.windowed_value(ref)

    def _flush(self) -> Iterator[dict]:
        rows, self._rows, self._count = self._rows, {}, 0
        for part, items in sorted(rows.items()):
            yield self._write_run(part, items)

    def _write_run(self, part: int, items: list[tuple[int, Embedded]]) -> dict:
        rows = [metadata_row(e, i) for i, e in items]
        table = pa.Table.from_pylist(
            [
                {**row, "reused": _is_reused(e), "row_digest": row_digest(row)}
                for row, (_, e) in zip(rows, items, strict=True)
            ],
            schema=RUN_COLUMNS,
        )
        # A list column: each fresh row's vector, an empty list for a reused row.
        fresh = [np.asarray(e.vector).ravel() for _, e in items if not _is_reused(e)]
        lengths = [0 if _is_reused(e) else np.asarray(e.vector).size for _, e in items]
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        values = np.concatenate(fresh).astype(self._dtype) if fresh else np.empty(0, self._dtype)
        vectors = pa.ListArray.from_arrays(offsets, pa.array(values))
        table = table.append_column("vector", vectors)
        # Derived int8 rescoring vectors (binary indexes fed floats), likewise a list column.
        rescores = [None if _is_reused(e) or e.rescore is None else e.rescore for _, e in items]
        if any(r is not None for r in rescores):
            lengths = [0 if r is None else np.asarray(r).size for r in rescores]
            offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
            values = np.concatenate(
                [np.asarray(r, dtype=np.int8).ravel() for r in rescores if r is not None]
            )
            table = table.append_column(
                "rescore", pa.ListArray.from_arrays(offsets, pa.array(values, type=pa.int8()))
            )
        width = int(fresh[0].size) if fresh else 0
        path = f"{self._staging}/{RUNS}/part-{part:05d}/{uuid.uuid4().hex}.parquet"
        _write(path, parquet_bytes(table, row_group_size=None))
        return {"part": part, "path": path, "rows": len(items), "width": width}


def _previous_vectors(previous: dict | None, want: np.ndarray, dtype) -> tuple:
    """(ids, vectors, rescoring vectors or None) of the previous version's rows among the
    ids ``want`` (sorted), ids ascending: its delta parts' rows first (a delta row wins
    over the base's of the same id), then its base parts' for the ids still missing, each
    read only in the row groups that hold them."""
    if not previous or not want.size:
        return np.empty(0, np.int64), None, None
    overlay = (previous.get("overlay") or {}).get("parts", [])
    ids, xbs, rvs = [], [], []
    missing = want
    for infos in (overlay, previous["parts"]):
        got = []
        for info in infos:
            if not missing.size:
                break
            lo = np.searchsorted(missing, info["id_min"])
            hi = np.searchsorted(missing, info["id_max"], side="right")
            if lo == hi:
                continue
            path = f"{previous['folder']}/{info['name']}.vectors.parquet"
            t = pq.read_table(
                pa.BufferReader(_read(path)), filters=[("id", "in", missing[lo:hi].tolist())]
            )
            if not t.num_rows:
                continue
            got.append(t.column("id").to_numpy())
            ids.append(got[-1])
            xbs.append(column_array(t, "vector", dtype))
            if "rescore" in t.column_names:
                rvs.append(column_array(t, "rescore", np.dtype(np.int8)))
        if got:
            missing = np.setdiff1d(missing, np.concatenate(got), assume_unique=True)
    if not ids:
        return np.empty(0, np.int64), None, None
    rv = np.concatenate(rvs) if rvs and len(rvs) == len(ids) else None
    all_ids = np.concatenate(ids)
    order = np.argsort(all_ids, kind="stable")  # (no id twice: the base is read for the rest)
    return all_ids[order], np.concatenate(xbs)[order], None if rv is None else rv[order]


_WHO = ["document_id", "chunk", "uri"]


def _duplicate_of_live(e: dict):
    """A failure: a run row whose id a live row of another document holds (kept)."""
    return beam.pvalue.TaggedOutput(
        FAILURES,
        Failure.of(
            f"duplicate id: chunk {e['chunk']} of {e['document_id']!r} is also in "
            "a document the live version holds; ids must be unique (kept that one)",
            source_id=f"{e['document_id']}#{e['chunk']}",
            uri=e["uri"],
            stage="index",
        ),
    )


def _merged(meta, xb, rv, digests, c_meta, c_xb, c_rv, c_digests) -> tuple:
    """A part's rows and carried rows as one part's arrays, ids ascending."""
    ids = np.concatenate([meta.column("id").to_numpy(), c_meta.column("id").to_numpy()])
    order = np.argsort(ids, kind="stable")
    meta = concat_metadata(meta, c_meta).take(pa.array(order))
    xb = np.concatenate([xb, c_xb.astype(xb.dtype, copy=False)])[order]
    if (rv is None) != (c_rv is None):
        raise ConfigError("rescore", None, "some rows have rescoring vectors, others none")
    if rv is not None:
        rv = np.concatenate([rv, c_rv.astype(rv.dtype, copy=False)])[order]
    if digests is not None and c_digests is not None:
        digests = np.concatenate([digests, c_digests])[order]
    else:
        digests = None
    return meta, xb, rv, digests


class _WritePartFn(beam.DoFn):
    """All runs of one part -> the part's files in the version's folder."""

    def __init__(
        self, folder: str, parts: int, encoding: str, previous: dict | None, lexical: bool
    ) -> None:
        self._lexical = lexical
        self._folder = folder.rstrip("/")
        self._parts = parts
        self._encoding = encoding
        self._previous = previous
        self._unread_rows = progress.counter("rows_kept_unread")

    def process(self, element: tuple[int, Iterable[dict]]) -> Iterator:
        part, refs = element
        refs = list(refs)
        # Layered: the ids ReuseVectors found unchanged in the base part (no run row).
        kept = [np.asarray(r["kept"], dtype=np.int64) for r in refs if "kept" in r]
        pre_kept = np.unique(np.concatenate(kept)) if kept else np.empty(0, np.int64)
        refs = sorted((r for r in refs if "path" in r), key=lambda r: r["path"])
        carry = self._carried(part)
        if not refs:  # every row of the part is the base's, as it was (or the live delta's)
            layer = self._kept_only(part, pre_kept)
            if layer["base"] is None and carry is None:  # a live delta part alone: all gone
                return
            if carry is None:
                yield self._layer_ref(part, layer, None, {}, None, None)
            else:
                yield self._encode(part, *self._carried_arrays(carry), layer)
            return
        dtype = codec.natural_dtype(self._encoding)
        tables = [pq.read_table(io.BytesIO(_read(r["path"]))) for r in refs]
        width = max(r["width"] for r in refs)
        table = pa.concat_tables(tables, promote_options="permissive")
        del tables
        # Sort by id, then by URI: of the same id twice, the first by URI is kept.
        table = table.sort_by([("id", "ascending"), ("uri", "ascending")])
        ids = table.column("id").to_numpy()
        dup = np.zeros(ids.size, dtype=bool)
        dup[1:] = ids[1:] == ids[:-1]
        for row in np.flatnonzero(dup):
            e = table.slice(int(row), 1).to_pylist()[0]
            first = table.slice(int(row) - 1, 1).to_pylist()[0]
            yield beam.pvalue.TaggedOutput(
                FAILURES,
                Failure.of(
                    f"duplicate id: chunk {e['chunk']} of {e['document_id']!r} also comes "
                    f"from {first['uri']}; ids must be unique (kept the first)",
                    source_id=f"{e['document_id']}#{e['chunk']}",
                    uri=e["uri"],
                    stage="index",
                ),
            )
        if dup.any():
            table = table.filter(pa.array(~dup))
            ids = ids[~dup]
        if carry is not None:  # an id also in a file not read again: the live row stays
            twice = np.isin(ids, carry.ids)
            for e in table.filter(pa.array(twice)).select(_WHO).to_pylist():
                yield _duplicate_of_live(e)
            table, ids = table.filter(pa.array(~twice)), ids[~twice]
        layer = None
        if self._previous and self._previous.get("layered"):
            table, ids, layer = self._layer(part, table, ids, pre_kept)
            for e in layer.pop("duplicates", pa.table({})).to_pylist():
                yield _duplicate_of_live(e)
            if not ids.size:  # every row of the part is the base's, as it was
                if carry is None:
                    yield self._layer_ref(part, layer, None, {}, None, None)
                else:
                    yield self._encode(part, *self._carried_arrays(carry), layer)
                return
        reused = table.column("reused").to_numpy(zero_copy_only=False)
        # The vectors leave the table: once copied into xb, their Arrow column is freed
        # before the part is encoded (a part grows with the corpus).
        vectors = table.column("vector")
        table = table.drop_columns(["vector"])
        values = vectors.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        del vectors
        old_ids, old_xb, old_rv = np.empty(0, np.int64), None, None
        if reused.any():
            old_ids, old_xb, old_rv = _previous_vectors(self._previous, ids[reused], dtype)
        if width == 0 and old_xb is None:
            raise ConfigError("previous", None, "rows were marked reused, but no version is")
        width = width or old_xb.shape[1]
        xb = np.zeros((ids.size, width), dtype=dtype)
        xb[~reused] = values.astype(dtype, copy=False).reshape(-1, width)
        del values
        if reused.any():
            want = ids[reused]
            pos = np.minimum(np.searchsorted(old_ids, want), max(old_ids.size - 1, 0))
            if old_xb is None or old_xb.shape[1] != width or not (old_ids[pos] == want).all():
                raise ConfigError(
                    "previous",
                    self._previous["folder"] if self._previous else None,
                    "a reused id is missing from the previous version, or its width differs",
                )
            xb[reused] = old_xb[pos]
        if family_of(self._encoding) == "int8":  # int8 indexes rescore against their bytes
            rv = self._int8_rescore(xb)
        else:  # (the live version's rescore column of an int8 index is those bytes too)
            rv = self._derived_rescore(table, ids, reused, old_rv, pos if reused.any() else None)
        digests = table.column("row_digest").to_numpy()
        meta = metadata_table(expand_metadata_json(table.drop_columns(_run_only(table))))
        del table
        if carry is not None:
            meta, xb, rv, digests = _merged(meta, xb, rv, digests, *self._carried_arrays(carry))
        yield self._encode(part, meta, xb, rv, digests, layer)

    def _int8_rescore(self, xb: np.ndarray) -> np.ndarray:
        return (xb.astype(np.int16) - 128).astype(np.int8) if self._encoding == "uint8" else xb

    def _carried(self, part: int) -> Carried | None:
        """The live delta's rows of part ``part`` from files not read again (layered)."""
        if not (self._previous and self._previous.get("layered")):
            return None
        carry = carried_rows(self._previous, part, self._encoding)
        if carry is not None:
            self._unread_rows.inc(int(carry.ids.size))
        return carry

    def _carried_arrays(self, carry: Carried) -> tuple:
        """(meta, xb, rv, digests) of carried rows, as ``_encode`` takes them."""
        rv = self._int8_rescore(carry.xb) if family_of(self._encoding) == "int8" else carry.rv
        return carry.meta, carry.xb, rv, carry.digests

    def _encode(self, part, meta, xb, rv, digests, layer) -> dict:
        """Write a part's (or a layered part's delta part's) files; returns its ref."""
        d = xb.shape[1] * (8 if self._encoding in codec.BIT_ENCODINGS else 1)
        prefix = "part" if layer is None else DELTA_PREFIX
        info, blobs = encode_part(
            part,
            meta,
            xb,
            rv,
            encoding=self._encoding,
            dimensions=d,
            prefix=prefix,
            digests=digests,
        )
        segment = None
        if self._lexical:  # the part's BM25 segment, from its texts (indexes.lexical.segment)
            segment, more = encode_segment(
                f"{prefix}-{part:05d}", meta.column("id").to_numpy(), column_texts(meta)
            )
            blobs = {**blobs, **more}
        files = {}
        for name, blob in blobs.items():
            _write(f"{self._folder}/{name}", blob)
            files[name] = file_entry(blob)
        rdtype = None if rv is None else str(rv.dtype)
        if layer is None:
            ref = {
                "part": part,
                "info": info.as_dict(),
                "rows": info.rows,
                "id_min": info.id_min,
                "files": files,
                "width": xb.shape[1],
                "rescore_dtype": rdtype,
            }
        else:
            ref = self._layer_ref(part, layer, info.as_dict(), files, xb.shape[1], rdtype)
        if segment is not None:
            ref["lexical"] = segment
        del meta, blobs, xb, rv
        trim()  # one part at a time, really
        return ref

    def _layer(self, part: int, table: pa.Table, ids: np.ndarray, pre_kept: np.ndarray):
        """Layered mode: drop the rows the previous version's base part holds as they are
        (``pre_kept``: found so by ``ReuseVectors``; reused run rows equal to the base's);
        returns (the rest: the delta's rows, their ids, the layer's facts)."""
        base = base_of(self._previous, part)
        layer = {"base": base, "kept": 0, "removed": None}
        if base is None:
            return table, ids, layer
        base_ids, unread = self._base_rows(part, base)
        pre_kept = np.union1d(pre_kept, unread)
        reused = table.column("reused").to_numpy(zero_copy_only=False)
        kept = np.zeros(ids.size, dtype=bool)
        if (reused & np.isin(ids, base_ids)).any():  # compare them with the base's rows
            old = read_base_metadata(self._previous, base)
            meta = metadata_table(expand_metadata_json(table.drop_columns(_run_only(table))))
            kept = kept_in_base(meta, reused, old)
            del old, meta
        # A run row with an id kept from elsewhere: the same id twice (ids must be unique).
        twice = np.isin(ids, pre_kept) & ~kept
        layer["duplicates"] = table.filter(pa.array(twice)).select(["document_id", "chunk", "uri"])
        kept |= twice
        everything = np.union1d(pre_kept, ids[kept])
        gone = np.setdiff1d(base_ids, everything, assume_unique=True)
        layer["kept"] = int(everything.size)
        layer["removed"] = removed_entry(self._folder, part, gone)
        return table.filter(pa.array(~kept)), ids[~kept], layer

    def _base_rows(self, part: int, base: dict) -> tuple[np.ndarray, np.ndarray]:
        """(base part ``part``'s ids, the live ones from documents this run did not read:
        unchanged files, which stay as they are)."""
        ids, unread = base_rows(self._previous, base, part)
        self._unread_rows.inc(int(unread.size))
        return ids, unread

    def _kept_only(self, part: int, pre_kept: np.ndarray) -> dict | None:
        """A layered part none of whose rows this run wrote: the base part's ids minus
        ``pre_kept`` are removed. Without a base part (the live version had a delta part
        alone there), a layer with no base."""
        base = base_of(self._previous, part)
        if base is None and pre_kept.size:
            raise ConfigError("kept", part, "rows were kept from a base part that is not there")
        if base is None:
            return {"base": None, "kept": 0, "removed": None}
        base_ids, unread = self._base_rows(part, base)
        pre_kept = np.union1d(pre_kept, unread)
        gone = np.setdiff1d(base_ids, pre_kept, assume_unique=True)
        return {
            "base": base,
            "kept": int(pre_kept.size),
            "removed": removed_entry(self._folder, part, gone),
        }

    def _layer_ref(self, part, layer, info, files, width, rdtype) -> dict:
        """A layered part's reference: its delta part (or None), base part, removed ids."""
        base = layer["base"]
        mins = [i["id_min"] for i in (base, info) if i is not None]
        if layer["removed"]:  # the removed ids' file is one of this version's own files
            files = {**files, layer["removed"]["file"]: layer["removed"]["entry"]}
        return {
            "part": part,
            "layered": True,
            "info": info,
            "base": base,
            "base_folder": self._previous["folder"],
            "removed": layer["removed"],
            "rows": layer["kept"] + (info["rows"] if info else 0),
            "id_min": min(mins),
            "files": files,
            "width": width or self._previous["width"],
            "rescore_dtype": rdtype if info else self._previous.get("rescore_dtype"),
        }

    def _derived_rescore(self, table, ids, reused, old_rv, pos) -> np.ndarray | None:
        """The part's derived int8 rescoring vectors (binary indexes fed floats): fresh
        rows' from their runs, reused rows' from the previous version; None when no row
        carries one. Either every row carries one or none does."""
        col = table.column("rescore").combine_chunks() if "rescore" in table.column_names else None
        have = np.zeros(ids.size, dtype=bool)
        if col is not None:
            have = col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False) > 0
        from_old = reused & (old_rv is not None)
        if not have.any() and not from_old.any():
            return None
        if not (have | from_old).all():
            raise ConfigError("rescore", None, "some rows have rescoring vectors, others none")
        d = old_rv.shape[1] if old_rv is not None else len(col[int(np.argmax(have))])
        rv = np.zeros((ids.size, d), dtype=np.int8)
        if have.any():
            values = col.flatten().to_numpy(zero_copy_only=False)
            rv[have] = values.astype(np.int8).reshape(-1, d)
        if from_old.any():
            rv[from_old] = old_rv[pos[from_old[reused]]]
        return rv


class _TotalsFn(beam.CombineFn):
    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, ref):
        return (acc[0] + ref["rows"], max(acc[1], ref["width"]))

    def merge_accumulators(self, accs):
        accs = list(accs)
        return (sum(a[0] for a in accs), max((a[1] for a in accs), default=0))

    def extract_output(self, acc):
        return {"count": acc[0], "width": acc[1]}


def _choose(_, totals: dict, settings: dict) -> dict | None:
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


_BATCH_ROWS = 32_768  # a part's rows decoded at a time (a part grows with the corpus)


def _part_vectors(folder: str, ref: dict, encoding: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of one part, ``_BATCH_ROWS`` rows at a time in id order (a layered
    part: its base's then its delta's)."""
    if ref.get("layered"):
        yield from layered_vectors(folder, ref, encoding, _BATCH_ROWS)
        return
    data = pq.ParquetFile(io.BytesIO(_read(f"{folder}/{ref['info']['name']}.vectors.parquet")))
    dtype = codec.natural_dtype(encoding)
    for batch in data.iter_batches(batch_size=_BATCH_ROWS, columns=["id", "vector"]):
        t = pa.Table.from_batches([batch])
        yield t.column("id").to_numpy(), column_array(t, "vector", dtype)


def _part_ids(folder: str, ref: dict) -> np.ndarray:
    if ref.get("layered"):
        return layered_ids(folder, ref)
    with FileSystems.open(f"{folder}/{ref['info']['name']}.vectors.parquet") as f:
        return pq.read_table(io.BytesIO(f.read()), columns=["id"]).column("id").to_numpy()


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


class _AddShardFn(beam.DoFn):
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
        _write(path, data)
        del data
        trim()
        yield {"part": ref["part"], "index": path}


def _save_trained(trained: dict | None, staging: str) -> None:
    """The trained empty index and its spec, for the final step (``load_trained``)."""
    if trained is not None:
        _write(f"{staging.rstrip('/')}/{TRAINED_INDEX}", trained["blob"])
        _save_spec(trained["spec"], staging)


def _save_spec(spec: dict | None, staging: str) -> None:
    """The chosen index's spec alone (nothing trained: the job updates the live index)."""
    if spec is not None:
        _write(f"{staging.rstrip('/')}/{TRAINED_SPEC}", json.dumps(spec).encode())


def load_trained(staging: str) -> tuple[IndexSpec, bytes | None] | None:
    """(the chosen index's spec, the trained empty index: None when the job did not train
    one), or None when there was nothing to index."""
    spec_path = f"{staging.rstrip('/')}/{TRAINED_SPEC}"
    if not FileSystems.exists(spec_path):
        return None
    with FileSystems.open(spec_path) as f:
        spec = IndexSpec(**json.loads(f.read()))
    blob_path = f"{staging.rstrip('/')}/{TRAINED_INDEX}"
    if not FileSystems.exists(blob_path):
        return spec, None
    with FileSystems.open(blob_path) as f:
        return spec, f.read()


def read_shard_list(staging: str) -> dict[int, str]:
    """part -> shard file, of a ``TrainShards`` run on its own (``shard_list`` set)."""
    path = f"{staging.rstrip('/')}/{SHARD_LIST}"
    if not FileSystems.exists(path):
        return {}
    with FileSystems.open(path) as f:
        rows = [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line]
    return {int(r["part"]): r["index"] for r in rows}


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
        _ = trained | "SaveTrained" >> beam.Map(_save_trained, self._staging)
        shards = parts | "AddShard" >> beam.ParDo(
            _AddShardFn(self._folder, self._staging, self._encoding),
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


def read_part_list(staging: str) -> list[dict]:
    """The parts (and IVF shard files) ``BuildIndexShards`` wrote, in part order: each
    ``{"part", "info", "files", "rescore_dtype", "index"}``."""
    path = f"{staging.rstrip('/')}/{PART_LIST}"
    if not FileSystems.exists(path):
        return []
    rows: dict[int, dict] = {}
    with FileSystems.open(path) as f:
        for line in f.read().decode("utf-8").splitlines():
            if line:
                row = json.loads(line)
                rows.setdefault(row["part"], {"index": None}).update(
                    {k: v for k, v in row.items() if v is not None}
                )
    return [rows[p] for p in sorted(rows)]


class BuildIndexShards(beam.PTransform):
    """Write the index folder's parts and build its index shards from ``Embedded``
    elements (a PCollection, or a tuple of them each written in its own stage), on the
    workers: the parts into ``folder``, IVF shards, the trained index and the part list
    into ``staging`` (``read_part_list``, ``load_trained``). ``previous`` is
    ``{"folder", "parts"}`` of the version reused vectors come from. The last ``kept``
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
        previous: dict | None = None,
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
            >> beam.ParDo(_WriteRunsFn(self._staging, self._shards, self._encoding))
            for i, branch in enumerate(branches[: len(branches) - self._kept])
        ]
        runs += list(kept)  # {"part", "kept": ids}: rows a layered part keeps from its base
        if self._previous and self._previous.get("skipped"):
            # Every base part is written, even one no document read this run falls in.
            infos = [
                *self._previous["parts"],
                *(self._previous.get("overlay") or {}).get("parts", []),
            ]
            numbers = sorted({part_number(i["name"]) for i in infos})
            runs.append(p | "BaseParts" >> beam.Create([{"part": n, "kept": []} for n in numbers]))
        written = (
            tuple(runs)
            | "Runs" >> beam.Flatten()
            | "RunByPart" >> beam.Map(lambda r: (r["part"], r))
            | "GroupRuns" >> beam.GroupByKey()
            | "WritePart"
            >> beam.ParDo(
                _WritePartFn(
                    self._folder, self._shards, self._encoding, self._previous, self._lexical
                )
            ).with_outputs(FAILURES, main="parts")
        )
        parts = written.parts
        totals = parts | "Totals" >> beam.CombineGlobally(_TotalsFn())
        spec = (
            p
            | "Once" >> beam.Create([None])
            | "Choose" >> beam.Map(_choose, beam.pvalue.AsSingleton(totals), self._settings)
        )
        if self._train:
            shards = (parts, spec) | "TrainShards" >> TrainShards(
                self._staging,
                folder=self._folder,
                encoding=self._encoding,
                seed=self._settings["seed"],
            )
        else:  # the job updates the live index: the spec alone (TrainShards if it rebuilds)
            _ = spec | "SaveSpec" >> beam.Map(_save_spec, self._staging)
            shards = p | "NoShards" >> beam.Create([])
        _ = (
            (parts, shards)
            | "PartsAndShards" >> beam.Flatten()
            | "PartJson" >> beam.Map(json.dumps, sort_keys=True)
            | "PartList"
            >> beam.io.WriteToText(f"{self._staging}/{PART_LIST}", shard_name_template="")
        )
        return Outputs(parts, written.failures)


def has_trained(staging: str) -> bool:
    """Whether ``BuildIndexShards`` trained an index (there was something to index),
    without reading it."""
    return FileSystems.exists(f"{staging.rstrip('/')}/{TRAINED_SPEC}")
