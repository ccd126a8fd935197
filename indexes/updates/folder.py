"""Updating the previous version's index instead of rebuilding it: a run costs what changed.

The index job's workers have written the new version's parts (``indexes.storage.parts``). When a
previous version exists, ``update_folder`` finishes the new folder from it:

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
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import ConfigError, IndexFolderError
from indexes.ann.choose import IndexSpec, choose_index
from indexes.ann.merge import shard_group
from indexes.ann.search import index_id_view
from indexes.ann.segments import DELTA, TOMBSTONES, SegmentedIndex, make_delta, read_tombstones
from indexes.ann.serialize import ONDISK_SUFFIX, read_index, write_index
from indexes.ann.train import add_vectors
from indexes.building.assemble import _SAMPLED, _write_full_vectors, lexical_entry
from indexes.building.probe import (
    MARGIN,
    PROBE,
    RECALL_QUERIES,
    Probe,
    advance_probe,
    load_probe,
    sample_probe,
)
from indexes.building.tune import measure, recall_at_k
from indexes.config import BuildConfig
from indexes.lexical.segment import LEXICAL_DIR
from indexes.storage.files import INDEX, MANIFEST, sha256
from indexes.storage.layers import LayeredParts, open_parts, tables_from_refs
from indexes.storage.manifest import Manifest, sanitize_endpoint
from indexes.storage.parts import PartInfo, Parts

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

DEFAULT_RETRAIN_FRACTION = 0.2
DEFAULT_COMPACT_FRACTION = 0.1
DEFAULT_MAX_RECALL_DROP = 0.01


@dataclass(frozen=True, kw_only=True)
class UpdatePolicy:
    """When an update gives way to a rebuild: ``retrain_fraction`` of the index added since
    training (trained index types), recall more than ``max_recall_drop`` below the last
    training's; ``compact_fraction``: the delta's or the tombstones' share of the index past
    which the main index is compacted. ``rebuild`` forces a rebuild."""

    retrain_fraction: float = DEFAULT_RETRAIN_FRACTION
    compact_fraction: float = DEFAULT_COMPACT_FRACTION
    max_recall_drop: float = DEFAULT_MAX_RECALL_DROP
    rebuild: bool = False

    def __post_init__(self) -> None:
        for name in ("retrain_fraction", "compact_fraction", "max_recall_drop"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(name, value, "must be within [0, 1]")


@dataclass
class UpdateOutcome:
    """``manifest``: the updated folder's, or None when a rebuild is needed (``reason``)."""

    manifest: Manifest | None
    reason: str = ""
    stats: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def _ids_and_hashes(reader: Parts | LayeredParts) -> tuple[np.ndarray, np.ndarray]:
    """Every id (ascending) and its content hash, read as two columns."""
    t = reader.metadata(["id", "content_hash"])
    if t.num_rows == 0:
        return np.empty(0, np.int64), np.empty(0, object)
    return t.column("id").to_numpy(), t.column("content_hash").to_numpy(zero_copy_only=False)


def _change(prev: tuple, new: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(stale, fresh) ids: deleted or changed, and added or changed."""
    (pid, ph), (nid, nh) = prev, new
    common, pi, ni = np.intersect1d(pid, nid, assume_unique=True, return_indices=True)
    changed = common[ph[pi] != nh[ni]]
    removed = np.setdiff1d(pid, nid, assume_unique=True)
    added = np.setdiff1d(nid, pid, assume_unique=True)
    return np.union1d(removed, changed), np.union1d(added, changed)


def link_file(src: Path, dst: Path) -> None:
    """``dst`` becomes a hard link to ``src`` (replacing any file there, atomically)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    if tmp.exists():
        tmp.unlink()
    os.link(src, tmp)
    tmp.replace(dst)


def _entry(path: Path) -> dict:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def _removable(manifest: Manifest) -> bool:
    """Whether the main index can drop ids in place (FAISS ``remove_ids``)."""
    return manifest.layout == "single" and "HNSW" not in manifest.index_factory


def _trains(factory: str) -> bool:
    return "IVF" in factory or "PQ" in factory or ("SQ" in factory and "direct" not in factory)


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


def discard_update(path: str | os.PathLike) -> None:
    """Remove what ``update_folder`` wrote into ``path``: the links to the previous
    version's index files, the segments; files shared with it by hard links become the
    new folder's own copies, so that the rebuild never writes into a shared file."""
    out = Path(path)
    for f in out.rglob("*"):  # a part or lexical file shared with the previous version
        if f.is_file() and f.stat().st_nlink > 1 and f.parent.name != "shards":
            tmp = f.with_name(f".{f.name}.own")
            shutil.copyfile(f, tmp)  # the rebuild may write it: its own copy, not the link
            tmp.replace(f)
    for name in (INDEX, INDEX + ONDISK_SUFFIX, DELTA, TOMBSTONES):
        if (out / name).exists():
            (out / name).unlink()
    shards = out / "shards"
    if shards.is_dir():
        for f in shards.iterdir():
            f.unlink()
        shards.rmdir()


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
    prev = Manifest.from_json((prev_dir / MANIFEST).read_text())
    tables = tables_from_refs(parts, prev.files, prev_dir.name, prev.lexical)
    infos, overlay, table_files = tables.infos, tables.overlay, tables.files
    rdtypes = {p.get("rescore_dtype") for p in parts}
    prev_rdtype = None if prev.rescore is None else prev.rescore["dtype"]
    from_vector = prev.rescore is not None and prev.rescore.get("from") == "vector"
    if (
        prev.encoding != spec.encoding
        or prev.dimensions != spec.dimensions
        or rdtypes != {None if from_vector else prev_rdtype}
    ):
        return UpdateOutcome(None, "the previous version holds other vectors")
    reader = open_parts(
        out,
        infos,
        overlay,
        encoding=prev.encoding,
        dimensions=prev.dimensions,
        rescore_dtype=prev_rdtype if not from_vector else None,
    )
    count = reader.count
    if count == 0:
        return UpdateOutcome(None, "nothing left to index")

    # 1. What changed.
    prev_reader = open_parts(
        prev_dir,
        [PartInfo.from_dict(p) for p in prev.parts],
        prev.overlay,
        encoding=prev.encoding,
        dimensions=prev.dimensions,
    )
    stale, fresh = _change(_ids_and_hashes(prev_reader), _ids_and_hashes(reader))
    del prev_reader
    seg = prev.segments or {}
    if seg:
        dead_prev = read_tombstones(prev_dir / seg["tombstones"]["file"])
        old_delta = read_index(prev_dir / seg["delta"]["file"], prev.encoding)
        delta_prev = index_id_view(old_delta).copy()  # a view into the index: copied
        del old_delta
        main_count = int(seg["main"]["count"])
        trained = dict(seg["trained"])
        added = int(seg.get("added_since_training", 0))
    else:
        dead_prev, delta_prev, main_count = np.empty(0, np.int64), np.empty(0, np.int64), prev.count
        trained = {
            "version": prev_dir.name,
            "count": prev.count,
            "recall": None if prev.recall is None else prev.recall["value"],
        }
        added = 0
    delta_prev = np.sort(np.asarray(delta_prev, dtype=np.int64))
    dead = np.union1d(dead_prev, np.setdiff1d(stale, delta_prev))
    delta_ids = np.union1d(np.setdiff1d(delta_prev, stale), fresh)
    added += int(fresh.size)
    stats = {
        "stale": int(stale.size),
        "fresh": int(fresh.size),
        "delta": int(delta_ids.size),
        "tombstones": int(dead.size),
        "added_since_training": added,
    }
    seconds = {"change": round(time.monotonic() - t0, 3)}
    if _trains(prev.index_factory) and added > policy.retrain_fraction * count:
        return UpdateOutcome(
            None,
            f"{added} vectors added since training, more than {policy.retrain_fraction} of "
            f"{count}: retrain",
            stats,
            seconds,
        )
    limit = policy.compact_fraction * count
    compact = delta_ids.size > limit or dead.size > limit
    if compact and not _removable(prev):
        return UpdateOutcome(
            None,
            f"delta {delta_ids.size} or tombstones {dead.size} pass {policy.compact_fraction} of "
            f"{count}, and a {prev.index_factory} ({prev.layout}) index cannot remove ids: rebuild",
            stats,
            seconds,
        )

    # 2.-4. The segments (or the compacted main index).
    t = time.monotonic()
    all_ids = reader.ids()
    pos = np.searchsorted(all_ids, delta_ids)
    if delta_ids.size and (
        pos.max() >= all_ids.size
        or not (all_ids[np.minimum(pos, all_ids.size - 1)] == delta_ids).all()
    ):
        raise IndexFolderError(f"{out}: a changed id is missing from the new parts")
    _, xd, _ = reader.rows(pos) if delta_ids.size else (None, None, None)
    spec = _spec_for(prev, spec, count)
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
        files[INDEX] = _entry(out / INDEX)
        main_count, dead, delta_ids = int(main.ntotal), np.empty(0, np.int64), np.empty(0, np.int64)
        xd = None
    else:
        for name in prev.index_files:
            link_file(prev_dir / name, out / name)
            files[name] = dict(prev.files[name])
        # Read, for measuring recall (IVF lists on disk stay there).
        shards = [read_index(out / f, prev.encoding) for f in prev.index_files[:1]]
        if prev.layout == "shards":
            shards = [read_index(out / f, prev.encoding) for f in prev.index_files]
        main = shard_group(shards, spec) if len(shards) > 1 else shards[0]
    delta = make_delta(spec, xd if xd is not None else np.empty((0, 1)), delta_ids)
    write_index(delta, out / DELTA)
    np.save(out / TOMBSTONES, dead)
    files[DELTA] = _entry(out / DELTA)
    files[TOMBSTONES] = _entry(out / TOMBSTONES)
    index = SegmentedIndex(main, delta, dead, metric=prev.metric)
    seconds["segments"] = round(time.monotonic() - t, 3)

    # 6. Parts unchanged since the previous version: hard links to its files.
    t = time.monotonic()
    shared = 0
    for name, entry in table_files.items():
        old = prev.files.get(name)
        if old is not None and old["sha256"] == entry["sha256"]:
            link_file(prev_dir / name, out / name)
            shared += 1
        files[name] = entry
    extra = {}
    if from_vector:
        extra = _write_full_vectors(out, reader, spec)
        for name, entry in extra.items():
            if prev.files.get(name, {}).get("sha256") == entry["sha256"]:
                link_file(prev_dir / name, out / name)
                shared += 1
        reader = Parts(
            out, infos, encoding=prev.encoding, dimensions=prev.dimensions, rescore_dtype="float32"
        )
    files |= extra
    stats["shared_files"] = shared
    seconds["share"] = round(time.monotonic() - t, 3)

    # 5. Recall now, at the main index's tuned parameters (the same figures when nothing changed).
    t = time.monotonic()
    rescore = None if prev.rescore is None else dict(prev.rescore)
    store = None
    if rescore is not None:
        from indexes.ann.search import RescoreStore

        store = RescoreStore(all_ids, reader.rescore_rows(), dimensions=prev.dimensions)
    if not stale.size and not fresh.size and prev.recall is not None:
        # The same vectors in the same index: the live version's figures hold.
        recall, latency, params = dict(prev.recall), prev.latency_ms, dict(prev.search_params)
        if PROBE in prev.files:
            link_file(prev_dir / PROBE, out / PROBE)
            files[PROBE] = dict(prev.files[PROBE])
    else:
        built = None if compact else main  # the live version's main index, as it was
        probe, baseline = _probes(
            reader, prev_dir, prev, stale, fresh, spec, config, not seg, built
        )
        recall, latency = None, None
        if probe is not None:
            recall, latency = _measure(index, spec, probe, config, store, rescore, prev)
            probe.save(out)
            files[PROBE] = _entry(out / PROBE)
        params = dict(prev.search_params)
        if recall is not None and baseline is not None and prev.recall is not None:
            # The first update after a build: the trained index's recall measured again
            # the same way (its parameters, the probe's queries and exact neighbours), so
            # that the rule compares like with like (a build's figure comes out of tuning).
            trained["recall_build"] = trained["recall"]
            trained["recall"] = baseline["value"]
    seconds["recall"] = round(time.monotonic() - t, 3)
    if recall is not None and trained.get("recall") is not None:
        margin = policy.max_recall_drop + _noise(recall)
        if recall["value"] < trained["recall"] - margin:
            return UpdateOutcome(
                None,
                f"recall@{recall['k']} {recall['value']} after the update, more than "
                f"{policy.max_recall_drop} (+ {margin - policy.max_recall_drop:.4f}, two "
                f"standard errors of the measurement) below {trained['recall']} when "
                "trained: rebuild",
                stats,
                seconds,
            )

    # The lexical index, rebuilt from the parts' text (streamed).
    t = time.monotonic()
    lexical = None
    same_text = not stale.size and not fresh.size and prev.lexical is not None
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
            files[name] = _entry(out / name)
    seconds["lexical"] = round(time.monotonic() - t, 3)

    # 7. The manifest, last.
    segments = {
        "main": {"count": main_count, "files": list(_main_files(prev, compact))},
        "delta": {"file": DELTA, "count": int(delta_ids.size)},
        "tombstones": {"file": TOMBSTONES, "count": int(dead.size)},
        "trained": trained,
        "added_since_training": added,
        "compacted": bool(compact),
    }
    manifest = Manifest(
        model=model,
        dimensions=prev.dimensions,
        encoding=prev.encoding,
        index_factory=prev.index_factory,
        count=count,
        metric=prev.metric,
        endpoint=sanitize_endpoint(endpoint),
        api_version=api_version,
        input_type=input_type,
        normalized=prev.normalized,
        search_params=params or dict(prev.search_params),
        layout="single" if compact else prev.layout,
        index_files=(INDEX,) if compact else prev.index_files,
        rescore=rescore,
        parts=[i.as_dict() for i in infos],
        lexical=lexical,
        recall=recall,
        latency_ms=latency,
        files=dict(sorted(files.items())),
        segments=segments,
        overlay=overlay,
    )
    tmp = Path(tempfile.mkstemp(dir=out, prefix=".manifest.")[1])
    tmp.write_text(manifest.to_json())
    tmp.replace(out / MANIFEST)
    stats.update(delta=int(delta_ids.size), tombstones=int(dead.size))
    seconds["total"] = round(time.monotonic() - t0, 3)
    return UpdateOutcome(manifest, "", stats, seconds)


def _noise(recall: dict) -> float:
    """Two standard errors of a recall measured on ``queries`` x ``k`` results: a drop
    smaller than that beyond ``max_recall_drop`` is the sample's, not the index's."""
    n = max(int(recall["queries"]) * int(recall["k"]), 1)
    r = float(recall["value"])
    return 2 * (r * (1 - r) / n) ** 0.5


def _probes(reader, prev_dir: Path, prev: Manifest, stale, fresh, spec, config, first: bool, built):
    """(this version's recall probe, the previous index's recall on the previous probe when
    ``first``: the first update after a build; ``built``: the live version's main index as
    ``update_folder`` read it, or None). The previous version's probe is carried forward
    at the cost of the change (``indexes.building.probe``); without one, or when too few of its
    queries are left, a probe is sampled with one exact pass over the vectors."""
    if config.eval_queries == 0:
        return None, None
    queries = max(config.eval_queries, RECALL_QUERIES)
    old = load_probe(prev_dir) if PROBE in prev.files else None
    baseline = None
    if first and built is not None and old is not None and prev.rescore is None:
        # The build kept its probe and nothing rescores: the index already read will do
        # (a built version is its main index alone), not the whole folder read again.
        baseline = _measure(built, spec, old, config, None, None, prev)[0]
    elif first:
        from indexes.reader import open_index

        folder = open_index(prev_dir, verify=False)
        if old is None:
            old = sample_probe(
                folder.parts, min(queries, folder.parts.count), config.k, seed=config.seed + 1
            )
        store = folder.rescore_store()
        baseline = _measure(folder.index, spec, old, config, store, prev.rescore, prev)[0]
        del folder, store
    if old is not None and old.k == config.k and reader.count > 4 * (config.k + MARGIN):
        carried = advance_probe(old, reader, stale, fresh)
        if carried is not None:
            return carried, baseline
    return sample_probe(
        reader, min(queries, reader.count), config.k, seed=config.seed + 1
    ), baseline


def _measure(index, spec, probe: Probe, config, store, rescore, prev: Manifest):
    """(recall dict, latency ms) of ``index`` at the live version's search parameters on
    the probe's queries against their exact neighbours; no tuning sweep."""
    I, latency = measure(  # noqa: E741
        index,
        spec,
        probe.xq,
        config.k,
        params=dict(prev.search_params),
        rescore=store,
        rescore_factor=rescore["factor"] if rescore else 1,
        exclude=probe.query_ids,
    )
    recall = {
        "k": config.k,
        "value": round(recall_at_k(I, probe.gt_ids[:, : config.k], config.k), 5),
        "queries": probe.queries,
        "reference": probe.reference,
        "source": _SAMPLED,
        "rescored": store is not None,
    }
    return recall, round(latency, 4)


def _main_files(prev: Manifest, compact: bool) -> tuple[str, ...]:
    """The main index's files: the previous version's, or the compacted ``index.faiss``."""
    return (INDEX,) if compact else prev.index_files
