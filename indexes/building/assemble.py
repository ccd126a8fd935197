"""Assembling an index folder whose parts the index job's workers wrote, in bounded memory.

The workers wrote the folder's id-range parts (``indexes.storage.part_files``) into it and, for IVF
indexes, one shard a part: the inverted lists of the trained index with the part's
vectors added (``indexes.ann.ondisk.shard_lists_bytes``), or for binary IVF the whole index.
``assemble_folder`` handles only small things and streams the rest:

- the index: IVF shards merge on disk (``merge_ondisk``: lists in a file beside
  ``index.faiss``, RAM about one list), or stay shards (binary IVF, which FAISS cannot
  merge on disk); flat and graph indexes get each part's vectors added in turn (what the
  final index needs in RAM, no more);
- recall: queries sampled by global row number, exact ground truth by searching part
  after part and keeping the running top k (``indexes.building.recall``), then the usual tuning;
  the same exact pass gives the recall probe the next update carries forward
  (``indexes.building.probe``: ``recall_probe.npz``, listed in the manifest's files), so no update
  pays an exact pass over every vector for it;
- the manifest, with the parts' checksums the workers computed, written last.

Shard files on this machine's disk are merged where they are; others are read through a
``read`` callable (the index job passes one that reads any Beam filesystem), into the
folder, and deleted after the merge.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from corpusbeam.errors import IndexFolderError
from indexes.ann.merge import merge_ondisk, packed_lists, shard_group
from indexes.ann.search import RescoreStore
from indexes.ann.serialize import deserialize_index, read_index, write_index
from indexes.ann.spec import IndexSpec
from indexes.ann.train import add_vectors, prepare_vectors, training_sample
from indexes.building.evaluate import tune_measured
from indexes.building.probe import MARGIN, PROBE, RECALL_QUERIES, Probe
from indexes.building.recall import streaming_topk
from indexes.building.steps import Combined
from indexes.building.writer import rescore_entry
from indexes.config import BuildConfig
from indexes.lexical.segment import LEXICAL_DIR, build_lexical, lexical_info
from indexes.memory import resident, trim
from indexes.storage.files import INDEX, MANIFEST, SHARDS, sha256, shard_file
from indexes.storage.layer_reader import LayeredParts, open_parts
from indexes.storage.layers import Tables, tables_from_refs
from indexes.storage.manifest import Manifest, sanitize_endpoint
from indexes.storage.part_files import RESCORE_SUFFIX
from indexes.storage.part_reader import Parts

__all__ = ["assemble_folder", "expand_metadata_json"]

log = logging.getLogger(__name__)

_SAMPLED = "sampled from the indexed vectors, each left out of its own results"


def _read_local(path: str) -> bytes:
    return Path(path).read_bytes()


def expand_metadata_json(table: pa.Table) -> pa.Table:
    """Turn a ``metadata_json`` column (one JSON object a row) into one column a key.

    Values keep their types where a column's values agree, else become strings.
    """
    if "metadata_json" not in table.column_names:
        return table
    rows = [json.loads(s) if s else {} for s in table.column("metadata_json").to_pylist()]
    table = table.drop_columns(["metadata_json"])
    keys = sorted({k for r in rows for k in r} - set(table.column_names))
    for key in keys:
        values = [r.get(key) for r in rows]
        try:
            column = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            column = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        table = table.append_column(key, column)
    return table


def _combine(
    out: Path,
    spec: IndexSpec,
    trained: bytes,
    parts: Parts,
    shard_files: Sequence[str],
    read: Callable[[str], bytes],
    expected: int,
) -> Combined:
    """The folder's index file(s) from the workers' shards or, for flat and graph
    indexes and fast-scan IVF (whose packed lists cannot merge), from the parts' vectors
    added part by part."""
    index = deserialize_index(trained, spec.encoding)
    if not spec.nlist or packed_lists(index):
        for ids, xb, _ in parts.iter_vectors(rescore=False):
            add_vectors(index, xb, ids, spec)
        write_index(index, out / INDEX)
        return Combined(index, "single", (INDEX,))
    if len(shard_files) != expected:
        raise IndexFolderError(
            f"{len(shard_files)} shard indexes for {expected} parts: a worker's shard is missing"
        )
    (out / SHARDS).mkdir()
    names = tuple(shard_file(s) for s in range(len(shard_files)))
    if spec.family == "binary":  # FAISS merges only float IVF lists on disk
        for name, path in zip(names, shard_files, strict=True):
            (out / name).write_bytes(read(path))
        shards = [read_index(out / n, spec.encoding) for n in names]
        index = shard_group(shards, spec) if len(shards) > 1 else shards[0]
        return Combined(index, "shards", names)
    # The merge reads local shard files where they are (the staging of a local output);
    # those of an object store are fetched, one file each, and deleted after the merge.
    paths, fetched = [], []
    for name, path in zip(names, shard_files, strict=True):
        if Path(path).is_file():
            paths.append(Path(path))
            continue
        (out / name).write_bytes(read(path))
        paths.append(out / name)
        fetched.append(out / name)
    ivfdata = merge_ondisk(index, paths, out / INDEX, spec)  # index: still empty
    for path in fetched:
        path.unlink()
    (out / SHARDS).rmdir()
    return Combined(read_index(out / INDEX, spec.encoding), "ondisk", (INDEX, ivfdata))


def assemble_folder(
    path: str | os.PathLike,
    *,
    spec: IndexSpec,
    trained: bytes,
    parts: Sequence[dict],
    model: str,
    endpoint: str | None = None,
    api_version: str | None = None,
    input_type: str | None = None,
    config: BuildConfig | None = None,
    read: Callable[[str], bytes] | None = None,
    previous: Manifest | None = None,
    base_version: str | None = None,
) -> Manifest:
    """Finish the folder at ``path`` from the ``parts`` the workers wrote into it (dicts
    with ``info``: ``PartInfo`` as a dict, ``files``: their checksums, ``rescore_dtype``
    and, for IVF indexes, ``index``: the shard file). ``trained`` is the serialised empty
    trained index the shards were copied from. Layered parts (``indexes.storage.layers``) name
    their base parts, which the caller has linked into the folder: ``previous`` is the
    manifest of the version they come from, ``base_version`` its name."""
    config = config or BuildConfig()
    read = read or _read_local
    if not parts:
        raise IndexFolderError("no parts to assemble")
    out = Path(path)
    parts = sorted(parts, key=lambda p: p["part"])
    tables, rdtype = _tables(parts, previous, base_version)
    reader = _open_tables(out, tables, spec, rdtype)
    config.apply_threads()
    combined = _combine(
        out, spec, trained, reader, [p["index"] for p in parts if p.get("index")], read, len(parts)
    )
    trim()  # the shards' lists, loaded for the merge, are freed: give the memory back
    log.info("index combined (%s): %s", combined.layout, resident())
    measured = _rescore_and_tune(out, spec, tables, reader, rdtype, combined.index, config)
    log.info("recall measured and search tuned: %s", resident())
    # Nothing below searches: unmap the index (tuning touched its lists' pages; the
    # rescoring vectors went with the tuning step) before the lexical build.
    layout, index_files = combined.layout, combined.index_files
    del combined
    lexical, files = _lexical_and_checksums(out, tables, measured, index_files, config)
    manifest = Manifest(
        model=model,
        dimensions=spec.dimensions,
        encoding=spec.encoding,
        index_factory=spec.factory,
        count=measured.reader.count,
        metric=spec.metric,
        endpoint=sanitize_endpoint(endpoint),
        api_version=api_version,
        input_type=input_type,
        normalized=spec.family == "float",
        search_params=measured.params,
        layout=layout,
        index_files=index_files,
        rescore=measured.rescore,
        parts=[i.as_dict() for i in tables.infos],
        lexical=lexical,
        recall=measured.recall,
        latency_ms=measured.latency,
        files=dict(sorted(files.items())),
        overlay=tables.overlay,
    )
    _write_manifest(out, manifest)
    return manifest


@dataclass(frozen=True, eq=False)
class _Measured:
    """What the tuning step leaves: the ``reader`` to go on with (over the full vectors
    written for rescoring, if any), the manifest's ``rescore`` entry, the ``recall``,
    ``latency`` and tuned search ``params``, and the full vectors' checksums (``extra``)."""

    reader: Parts | LayeredParts
    rescore: dict | None
    recall: dict | None
    latency: float | None
    params: dict
    extra: dict[str, dict]


def _tables(
    parts: Sequence[dict], previous: Manifest | None, base_version: str | None
) -> tuple[Tables, str | None]:
    """(what the parts' references make of the tables, the parts' rescoring dtype)."""
    tables = tables_from_refs(
        parts,
        None if previous is None else previous.files,
        base_version,
        None if previous is None else previous.lexical,
    )
    dtypes = {p.get("rescore_dtype") for p in parts}
    if len(dtypes) != 1:
        raise IndexFolderError(f"the parts disagree on their rescoring vectors: {dtypes}")
    return tables, dtypes.pop()


def _open_tables(out: Path, tables: Tables, spec: IndexSpec, rescore_dtype: str | None):
    return open_parts(
        out,
        tables.infos,
        tables.overlay,
        encoding=spec.encoding,
        dimensions=spec.dimensions,
        rescore_dtype=rescore_dtype,
    )


def _rescore_and_tune(
    out: Path, spec: IndexSpec, tables: Tables, reader, rdtype, index, config: BuildConfig
) -> _Measured:
    """The rescoring vectors (a compressed float index: each part's full vectors written),
    then recall measured and the search parameters tuned."""
    extra: dict[str, dict] = {}
    from_vector = rdtype is None and spec.rescore
    if from_vector:  # a compressed float index: each part's full vectors, for rescoring
        layers = [reader.base, reader.delta] if isinstance(reader, LayeredParts) else [reader]
        for layer in layers:  # (a layered folder's base and delta parts, row for row)
            extra |= _write_full_vectors(out, layer, spec)
        rdtype = "float32"
        reader = _open_tables(out, tables, spec, rdtype)
    rescore = rescore_entry(rdtype, spec, config, from_vector=from_vector)
    store = None
    if rdtype is not None:
        store = RescoreStore(reader.ids(), reader.rescore_rows(), dimensions=spec.dimensions)
    recall, latency, params = _tune(index, spec, reader, config, store, rescore, out)
    return _Measured(reader, rescore, recall, latency, params, extra)


def _lexical_and_checksums(
    out: Path, tables: Tables, measured: _Measured, index_files, config: BuildConfig
) -> tuple[dict | None, dict[str, dict]]:
    """(the manifest's ``lexical`` entry, every file's checksum entry): the tables' and
    the full vectors' as the workers and the tuning step computed them, the index files,
    the recall probe and the lexical files the launcher wrote, checksummed here."""
    files = tables.files | measured.extra
    local = [*index_files, *([PROBE] if (out / PROBE).is_file() else [])]
    lexical = None
    if config.lexical:
        lexical, built = lexical_entry(out, tables, measured.reader)
        local += built
    for name in local:
        if (out / name).is_file():
            files[name] = {"sha256": sha256(out / name), "bytes": (out / name).stat().st_size}
    return lexical, files


def _write_manifest(out: Path, manifest: Manifest) -> None:
    """The manifest, written last and atomically."""
    tmp = Path(tempfile.mkstemp(dir=out, prefix=".manifest.")[1])
    tmp.write_text(manifest.to_json())
    tmp.replace(out / MANIFEST)


def lexical_entry(out: Path, tables: Tables, reader) -> tuple[dict, list[str]]:
    """(the manifest's ``lexical`` entry, the files the launcher wrote for it). The workers
    wrote a segment for each part (``indexes.lexical.segment``): the entry lists them
    (and the removed ids' files) and nothing is built here. Otherwise (parts from a
    version without per-part segments) the index is built from the parts' text, streamed
    (bounded memory, one segment of postings at a time)."""
    if tables.lexical is not None:
        return lexical_info(tables.lexical, tables.removed_files), []
    lexical = build_lexical(out, reader.ids(), reader.iter_column("text"))
    log.info("lexical index built on the launcher: %s", resident())
    built = [f for f in (out / LEXICAL_DIR).rglob("*") if f.is_file()]
    return lexical, [f.relative_to(out).as_posix() for f in built]


def _write_full_vectors(out: Path, reader: Parts, spec: IndexSpec) -> dict[str, dict]:
    """Each part's normalised float vectors as its ``rescore.npy``, part by part; returns
    the files' checksums."""
    files = {}
    for i, (_, xb, _) in enumerate(reader.iter_vectors(rescore=False)):
        name = reader.infos[i].name + RESCORE_SUFFIX
        tmp = out / f"{name}.tmp.npy"  # a new file, never into a file shared by a hard link
        np.save(tmp, prepare_vectors(xb, spec.encoding, spec.dimensions))
        tmp.replace(out / name)
        files[name] = {"sha256": sha256(out / name), "bytes": (out / name).stat().st_size}
    return files


def _tune(index, spec: IndexSpec, parts: Parts, config: BuildConfig, store, rescore, out: Path):
    """(recall dict, latency ms, params) measured on queries sampled from the parts. The
    exact pass that gives their ground truth also gives the recall probe's (its own
    queries, ``k + MARGIN`` deep), which is saved into ``out``."""
    if config.eval_queries == 0:
        return None, None, {}
    rows = training_sample(parts.count, config.eval_queries, seed=config.seed + 1)
    # The probe an update would sample (indexes.updates.folder): the same rows, the same seed.
    probe_rows = training_sample(
        parts.count,
        min(max(config.eval_queries, RECALL_QUERIES), parts.count),
        seed=config.seed + 1,
    )
    both = np.union1d(rows, probe_rows)  # one exact pass for both sets of queries
    ids, xb, rv = parts.rows(both)
    xq = xb if rv is None else rv.astype("float32")
    D, I, ref = streaming_topk(parts, xq, config.k + MARGIN, exclude=ids)  # noqa: E741
    p = np.searchsorted(both, probe_rows)
    Probe(ids[p], xq[p], I[p], D[p], config.k, ref, "Hamming" in ref, int(p.size)).save(out)
    t = np.searchsorted(both, rows)
    ids, xq, I_gt = ids[t], xq[t], I[t, : config.k]
    recall, latency, tuned_params = tune_measured(
        index,
        spec,
        xq,
        I_gt,
        ref,
        config=config,
        store=store,
        rescore_factor=rescore["factor"] if rescore else 1,
        exclude=ids,
        source=_SAMPLED,
    )
    params = dict(tuned_params)
    if rescore is not None and "rescore_factor" in params:
        rescore["factor"] = params.pop("rescore_factor")  # kept with the vectors it is about
    return recall, latency, params
