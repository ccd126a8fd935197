"""Recall after an update (``indexes.updates.folder``, step 5): measured at the live
version's search parameters on the recall probe (``indexes.building.probe``), carried
forward from the live version's probe at the cost of the change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes.building.assemble import _SAMPLED
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
from indexes.storage.manifest import Manifest
from indexes.updates.change import Change
from indexes.updates.links import file_entry, link_file

__all__ = ["RecallNow", "recall_now"]


@dataclass(frozen=True)
class RecallNow:
    """The manifest's ``recall``, ``latency_ms`` and ``search_params`` after the update;
    ``trained``: the segments' ``trained`` entry (its recall measured again on the first
    update after a build); ``files``: the probe's checksum entry."""

    recall: dict | None
    latency: float | None
    params: dict
    trained: dict
    files: dict[str, dict]


def recall_now(
    out: Path,
    prev_dir: Path,
    prev: Manifest,
    change: Change,
    *,
    reader,
    index,
    built,
    all_ids: np.ndarray,
    spec,
    config,
) -> RecallNow:
    """Recall now, at the main index's tuned parameters (the same figures when nothing
    changed). ``index``: the updated index as searched; ``built``: the live version's main
    index as it was (None when compacted); ``all_ids``: the parts' ids, ascending."""
    store = None
    if prev.rescore is not None:
        from indexes.ann.search import RescoreStore

        store = RescoreStore(all_ids, reader.rescore_rows(), dimensions=prev.dimensions)
    trained = dict(change.trained)
    if change.unchanged and prev.recall is not None:
        # The same vectors in the same index: the live version's figures hold.
        files = {}
        if PROBE in prev.files:
            link_file(prev_dir / PROBE, out / PROBE)
            files[PROBE] = dict(prev.files[PROBE])
        return RecallNow(
            dict(prev.recall), prev.latency_ms, dict(prev.search_params), trained, files
        )
    probe, baseline = _probes(
        reader, prev_dir, prev, change.stale, change.fresh, spec, config, change.first, built
    )
    recall, latency, files = None, None, {}
    if probe is not None:
        recall, latency = _measure(index, spec, probe, config, store, prev.rescore, prev)
        probe.save(out)
        files[PROBE] = file_entry(out / PROBE)
    if recall is not None and baseline is not None and prev.recall is not None:
        # The first update after a build: the trained index's recall measured again
        # the same way (its parameters, the probe's queries and exact neighbours), so
        # that the rule compares like with like (a build's figure comes out of tuning).
        trained["recall_build"] = trained["recall"]
        trained["recall"] = baseline["value"]
    return RecallNow(recall, latency, dict(prev.search_params), trained, files)


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
