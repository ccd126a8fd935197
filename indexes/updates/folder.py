"""Updating the previous version's index instead of rebuilding it: a run costs what changed.

The index job's workers have written the new version's parts (``indexes.storage.part_files``).
When a previous version exists, ``update_folder`` finishes the new folder from it:

1. the change: ids and content hashes of the previous version's parts against the new
   parts' (read as two columns): ``stale`` ids (deleted, or changed) and ``fresh`` ones
   (added, or changed);
2. the previous version's main index files are hard-linked, not copied, and never
   written again (a killed update leaves them as they were);
3. ``tombstones.npy``: the main index's ids that no longer count, and ``delta.faiss``: an
   exact index of every vector added since the main index was built
   (``indexes.ann.segments``); readers search both as one index;
4. when the delta or the tombstones pass ``compact_fraction`` of the index, the
   main index is compacted: ``remove_ids`` and ``add_with_ids`` on a copy where the index
   type can remove (flat, int8 flat, binary flat, in-memory IVF), a rebuild otherwise
   (HNSW, IVF lists on disk, binary IVF shards);
5. the retraining policy: the index is rebuilt from the parts (trained again) when the
   vectors added since it was trained pass ``retrain_fraction`` of it (trained index
   types: IVF, PQ, SQ), or when recall@k measured after the update (at the live
   version's search parameters, on the recall probe: ``RECALL_QUERIES`` queries sampled
   from the parts with their exact neighbours, carried forward from the live version's
   probe by searching only the changed vectors, ``indexes.building.probe``) falls more than
   ``max_recall_drop`` below the recall measured when it was trained, beyond two
   standard errors of the measurement (0.0085 at recall 0.9 and 500 queries: a smaller
   drop is the query sample's, not the index's);
6. the tables: parts the workers wrote as layers (``indexes.storage.layers``: delta parts and
   removed ids over the live version's parts) or in full; files that came out
   byte-for-byte the same as the previous version's are replaced by hard links to them;
   the lexical index is rebuilt from the parts' text (streamed;
   ``UpdateOutcome.seconds["lexical"]`` says what it costs), or shared when no chunk
   changed;
7. the manifest (written last) records the segments, the tombstones, which version last
   trained the index, with how many vectors and what recall, and the recall now.

``update_folder`` returns an ``UpdateOutcome`` whose ``manifest`` is None when the policy
asks for a rebuild (``reason`` says why); the caller then assembles the folder in full
(``indexes.building.assemble.assemble_folder``), after ``discard_update`` removed what the update
wrote.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import IndexFolderError
from indexes.ann.choose import choose_index
from indexes.ann.merge import shard_group
from indexes.ann.segments import DELTA, TOMBSTONES, SegmentedIndex, make_delta
from indexes.ann.serialize import read_index, write_index
from indexes.ann.spec import IndexSpec
from indexes.ann.train import add_vectors
from indexes.building.assemble import _write_full_vectors, lexical_entry
from indexes.config import BuildConfig
from indexes.lexical.segment import LEXICAL_DIR
from indexes.storage.files import INDEX, MANIFEST
from indexes.storage.layer_reader import LayeredParts, open_parts
from indexes.storage.layers import Tables, tables_from_refs
from indexes.storage.manifest import Manifest, sanitize_endpoint
from indexes.storage.part_reader import Parts
from indexes.updates.change import Change, read_change
from indexes.updates.links import discard_update, file_entry, link_file, link_same
from indexes.updates.policy import (
    DEFAULT_COMPACT_FRACTION,
    DEFAULT_MAX_RECALL_DROP,
    DEFAULT_RETRAIN_FRACTION,
    UpdatePolicy,
    recall_drop,
    segments_plan,
)
from indexes.updates.probes import RecallNow, recall_now

__all__ = [
    "DEFAULT_COMPACT_FRACTION",
    "DEFAULT_MAX_RECALL_DROP",
    "DEFAULT_RETRAIN_FRACTION",
    "UpdateOutcome",
    "UpdatePolicy",
    "discard_update",
    "link_file",
    "update_folder",
]


@dataclass
class UpdateOutcome:
    """``manifest``: the updated folder's, or None when a rebuild is needed (``reason``)."""

    manifest: Manifest | None
    reason: str = ""
    stats: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class _Opened:
    """The previous version's manifest and the new version's tables, opened as ``reader``;
    ``from_vector``: the rescoring vectors are the parts' own float vectors."""

    prev: Manifest
    tables: Tables
    reader: Parts | LayeredParts
    from_vector: bool


@dataclass(frozen=True, eq=False)
class _Segments:
    """What steps 2.-4. wrote: ``index`` (main + delta - tombstones, as searched), ``main``
    (the main index), its ``main_count``, the tombstones ``dead``, the ``delta_ids``,
    ``compact``: whether the main index was compacted; ``all_ids``: the parts' ids."""

    index: SegmentedIndex
    main: object
    main_count: int
    dead: np.ndarray
    delta_ids: np.ndarray
    compact: bool
    all_ids: np.ndarray
    files: dict[str, dict]


def _spec_for(manifest: Manifest, spec: IndexSpec, count: int) -> IndexSpec:
    """The previous version's index type, as an ``IndexSpec`` (for tuning)."""
    if spec.factory == manifest.index_factory:
        return spec
    return choose_index(
        max(count, 1),
        manifest.dimensions,
        manifest.encoding,
        memory_budget=1 << 62,
        factory=manifest.index_factory,
    )


def update_folder(
    path: str | os.PathLike,
    previous: str | os.PathLike,
    *,
    spec: IndexSpec,
    parts: Sequence[dict],
    model: str,
    endpoint: str | None = None,
    api_version: str | None = None,
    input_type: str | None = None,
    config: BuildConfig | None = None,
    policy: UpdatePolicy | None = None,
) -> UpdateOutcome:
    """Finish the folder at ``path`` (whose ``parts`` the workers wrote: the dicts
    ``assemble_folder`` takes) by updating the index of the version at ``previous``."""
    config = config or BuildConfig()
    policy = policy or UpdatePolicy()
    t0 = time.monotonic()
    out, prev_dir = Path(path), Path(previous)
    if policy.rebuild:
        return UpdateOutcome(None, "a rebuild was asked for (--rebuild)")
    if not parts:
        raise IndexFolderError("no parts to assemble")
    opened = _open(out, prev_dir, spec, parts)
    if isinstance(opened, str):
        return UpdateOutcome(None, opened)
    prev, reader, count = opened.prev, opened.reader, opened.reader.count

    # 1. What changed; 5. (before anything is written) retrain, or compact.
    change = read_change(prev_dir, prev, reader)
    stats = change.stats()
    seconds = {"change": round(time.monotonic() - t0, 3)}
    compact, reason = segments_plan(prev, change, count, policy)
    if reason:
        return UpdateOutcome(None, reason, stats, seconds)

    # 2.-4. The segments (or the compacted main index).
    t = time.monotonic()
    spec = _spec_for(prev, spec, count)
    segs = _write_segments(out, prev_dir, prev, reader, change, spec, compact)
    seconds["segments"] = round(time.monotonic() - t, 3)

    # 6. Parts unchanged since the previous version: hard links to its files.
    t = time.monotonic()
    shared_files, shared, reader = _share_tables(out, prev_dir, opened, spec)
    stats["shared_files"] = shared
    seconds["share"] = round(time.monotonic() - t, 3)

    # 5. Recall now, at the main index's tuned parameters.
    t = time.monotonic()
    now = recall_now(
        out,
        prev_dir,
        prev,
        change,
        reader=reader,
        index=segs.index,
        built=None if compact else segs.main,  # the live version's main index, as it was
        all_ids=segs.all_ids,
        spec=spec,
        config=config,
    )
    seconds["recall"] = round(time.monotonic() - t, 3)
    reason = recall_drop(now.recall, now.trained, policy)
    if reason:
        return UpdateOutcome(None, reason, stats, seconds)

    # The lexical index, rebuilt from the parts' text (streamed).
    t = time.monotonic()
    lexical, lexical_files = _lexical(out, prev_dir, prev, opened.tables, reader, change, config)
    seconds["lexical"] = round(time.monotonic() - t, 3)

    # 7. The manifest, last.
    files = segs.files | shared_files | now.files | lexical_files
    labels = {"model": model, "api_version": api_version, "input_type": input_type}
    labels["endpoint"] = sanitize_endpoint(endpoint)
    manifest = _write_manifest(out, opened, change, segs, now, lexical, files, count, labels)
    stats.update(delta=int(segs.delta_ids.size), tombstones=int(segs.dead.size))
    seconds["total"] = round(time.monotonic() - t0, 3)
    return UpdateOutcome(manifest, "", stats, seconds)


def _open(out: Path, prev_dir: Path, spec: IndexSpec, parts: Sequence[dict]) -> _Opened | str:
    """The previous version's manifest and the new parts, opened; or why the previous
    version cannot be updated (other vectors, or nothing left to index)."""
    prev = Manifest.from_json((prev_dir / MANIFEST).read_text())
    tables = tables_from_refs(parts, prev.files, prev_dir.name, prev.lexical)
    rdtypes = {p.get("rescore_dtype") for p in parts}
    prev_rdtype = None if prev.rescore is None else prev.rescore["dtype"]
    from_vector = prev.rescore is not None and prev.rescore.get("from") == "vector"
    if (
        prev.encoding != spec.encoding
        or prev.dimensions != spec.dimensions
        or rdtypes != {None if from_vector else prev_rdtype}
    ):
        return "the previous version holds other vectors"
    reader = open_parts(
        out,
        tables.infos,
        tables.overlay,
        encoding=prev.encoding,
        dimensions=prev.dimensions,
        rescore_dtype=prev_rdtype if not from_vector else None,
    )
    if reader.count == 0:
        return "nothing left to index"
    return _Opened(prev, tables, reader, from_vector)


def _write_segments(
    out: Path,
    prev_dir: Path,
    prev: Manifest,
    reader: Parts | LayeredParts,
    change: Change,
    spec: IndexSpec,
    compact: bool,
) -> _Segments:
    """2.-4.: the previous version's main index files hard-linked (or the main index
    compacted into ``index.faiss``), the delta of the changed vectors and the tombstones."""
    all_ids = reader.ids()
    dead, delta_ids, main_count = change.dead, change.delta_ids, change.main_count
    pos = np.searchsorted(all_ids, delta_ids)
    if delta_ids.size and (
        pos.max() >= all_ids.size
        or not (all_ids[np.minimum(pos, all_ids.size - 1)] == delta_ids).all()
    ):
        raise IndexFolderError(f"{out}: a changed id is missing from the new parts")
    _, xd, _ = reader.rows(pos) if delta_ids.size else (None, None, None)
    files: dict[str, dict] = {}
    if compact:
        main = read_index(prev_dir / prev.index_files[0], prev.encoding)
        if dead.size:
            main.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(dead)))
        if delta_ids.size:
            add_vectors(main, xd, delta_ids, spec)
        tmp = out / f".{INDEX}.new"
        write_index(main, tmp)
        tmp.replace(out / INDEX)
        files[INDEX] = file_entry(out / INDEX)
        main_count, dead, delta_ids = int(main.ntotal), np.empty(0, np.int64), np.empty(0, np.int64)
        xd = None
    else:
        for name in prev.index_files:
            link_file(prev_dir / name, out / name)
            files[name] = dict(prev.files[name])
        main = _read_main(out, prev, spec)
    delta = make_delta(spec, xd if xd is not None else np.empty((0, 1)), delta_ids)
    write_index(delta, out / DELTA)
    np.save(out / TOMBSTONES, dead)
    files[DELTA] = file_entry(out / DELTA)
    files[TOMBSTONES] = file_entry(out / TOMBSTONES)
    index = SegmentedIndex(main, delta, dead, metric=prev.metric)
    return _Segments(index, main, main_count, dead, delta_ids, compact, all_ids, files)


def _read_main(out: Path, prev: Manifest, spec: IndexSpec):
    """The linked main index, read for measuring recall (IVF lists on disk stay there)."""
    shards = [read_index(out / f, prev.encoding) for f in prev.index_files[:1]]
    if prev.layout == "shards":
        shards = [read_index(out / f, prev.encoding) for f in prev.index_files]
    return shard_group(shards, spec) if len(shards) > 1 else shards[0]


def _share_tables(out: Path, prev_dir: Path, opened: _Opened, spec: IndexSpec):
    """6.: (the tables' checksum entries, how many files are hard links to the previous
    version's, the reader to go on with). Parts written byte-for-byte the same as the
    previous version's become links to them; when the parts' float vectors are the
    rescoring vectors, each part's ``rescore.npy`` is written (and linked when the same)."""
    prev, reader = opened.prev, opened.reader
    files = dict(opened.tables.files)
    shared = link_same(prev_dir, out, prev.files, files)
    if opened.from_vector:
        extra = _write_full_vectors(out, reader, spec)
        shared += link_same(prev_dir, out, prev.files, extra)
        reader = Parts(
            out,
            opened.tables.infos,
            encoding=prev.encoding,
            dimensions=prev.dimensions,
            rescore_dtype="float32",
        )
        files |= extra
    return files, shared, reader


def _lexical(out, prev_dir, prev: Manifest, tables: Tables, reader, change: Change, config):
    """(the manifest's ``lexical`` entry, its files' checksum entries): the live version's
    shared when it was built here from the same texts, else the workers' segments listed
    or the index built from the parts' text (streamed); (None, {}) without one."""
    lexical, files = None, {}
    same_text = change.unchanged and prev.lexical is not None
    if config.lexical and tables.lexical is None and same_text:
        # Built here (no per-part segments), from the same texts: share the live one's.
        lexical = dict(prev.lexical)
        for name, entry in prev.files.items():
            if name.startswith(f"{LEXICAL_DIR}/"):
                link_file(prev_dir / name, out / name)
                files[name] = dict(entry)
    elif config.lexical:  # the workers' segments listed, or built here from the parts
        lexical, built = lexical_entry(out, tables, reader)
        for name in built:
            files[name] = file_entry(out / name)
    return lexical, files


def _write_manifest(
    out: Path,
    opened: _Opened,
    change: Change,
    segs: _Segments,
    now: RecallNow,
    lexical: dict | None,
    files: dict[str, dict],
    count: int,
    labels: dict,
) -> Manifest:
    """7.: the manifest, written last (atomically): the segments, the tombstones, which
    version last trained the index, with how many vectors and what recall, and the recall
    now. ``labels``: model, endpoint (sanitised), api_version, input_type."""
    prev, compact = opened.prev, segs.compact
    segments = {
        "main": {"count": segs.main_count, "files": list(_main_files(prev, compact))},
        "delta": {"file": DELTA, "count": int(segs.delta_ids.size)},
        "tombstones": {"file": TOMBSTONES, "count": int(segs.dead.size)},
        "trained": now.trained,
        "added_since_training": change.added,
        "compacted": bool(compact),
    }
    manifest = Manifest(
        **labels,
        dimensions=prev.dimensions,
        encoding=prev.encoding,
        index_factory=prev.index_factory,
        count=count,
        metric=prev.metric,
        normalized=prev.normalized,
        search_params=now.params or dict(prev.search_params),
        layout="single" if compact else prev.layout,
        index_files=(INDEX,) if compact else prev.index_files,
        rescore=None if prev.rescore is None else dict(prev.rescore),
        parts=[i.as_dict() for i in opened.tables.infos],
        lexical=lexical,
        recall=now.recall,
        latency_ms=now.latency,
        files=dict(sorted(files.items())),
        segments=segments,
        overlay=opened.tables.overlay,
    )
    tmp = Path(tempfile.mkstemp(dir=out, prefix=".manifest.")[1])
    tmp.write_text(manifest.to_json())
    tmp.replace(out / MANIFEST)
    return manifest


def _main_files(prev: Manifest, compact: bool) -> tuple[str, ...]:
    """The main index's files: the previous version's, or the compacted ``index.faiss``."""
    return (INDEX,) if compact else prev.index_files
