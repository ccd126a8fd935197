"""When an update gives way to a rebuild (``indexes.updates.folder``): the retraining and
compaction thresholds, and the recall rule with its allowance for the measurement's noise."""

from __future__ import annotations

from dataclasses import dataclass

from corpusbeam.errors import ConfigError
from indexes.storage.manifest import Manifest
from indexes.updates.change import Change

__all__ = [
    "DEFAULT_COMPACT_FRACTION",
    "DEFAULT_MAX_RECALL_DROP",
    "DEFAULT_RETRAIN_FRACTION",
    "UpdatePolicy",
    "recall_drop",
    "segments_plan",
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


def _removable(manifest: Manifest) -> bool:
    """Whether the main index can drop ids in place (FAISS ``remove_ids``)."""
    return manifest.layout == "single" and "HNSW" not in manifest.index_factory


def _trains(factory: str) -> bool:
    return "IVF" in factory or "PQ" in factory or ("SQ" in factory and "direct" not in factory)


def segments_plan(
    prev: Manifest, change: Change, count: int, policy: UpdatePolicy
) -> tuple[bool, str]:
    """(whether the main index is compacted, why a rebuild is needed: "" when it is not),
    before anything is written: retrain past ``retrain_fraction``, compact past
    ``compact_fraction`` (a rebuild where the index type cannot remove ids)."""
    if _trains(prev.index_factory) and change.added > policy.retrain_fraction * count:
        return False, (
            f"{change.added} vectors added since training, more than "
            f"{policy.retrain_fraction} of {count}: retrain"
        )
    limit = policy.compact_fraction * count
    delta, dead = change.delta_ids.size, change.dead.size
    compact = delta > limit or dead > limit
    if compact and not _removable(prev):
        return compact, (
            f"delta {delta} or tombstones {dead} pass {policy.compact_fraction} of "
            f"{count}, and a {prev.index_factory} ({prev.layout}) index cannot remove ids: rebuild"
        )
    return compact, ""


def _noise(recall: dict) -> float:
    """Two standard errors of a recall measured on ``queries`` x ``k`` results: a drop
    smaller than that beyond ``max_recall_drop`` is the sample's, not the index's."""
    n = max(int(recall["queries"]) * int(recall["k"]), 1)
    r = float(recall["value"])
    return 2 * (r * (1 - r) / n) ** 0.5


def recall_drop(recall: dict | None, trained: dict, policy: UpdatePolicy) -> str:
    """Why a rebuild is needed ("" when it is not): recall after the update more than
    ``max_recall_drop`` (plus the measurement's noise) below the recall when trained."""
    if recall is None or trained.get("recall") is None:
        return ""
    margin = policy.max_recall_drop + _noise(recall)
    if recall["value"] >= trained["recall"] - margin:
        return ""
    return (
        f"recall@{recall['k']} {recall['value']} after the update, more than "
        f"{policy.max_recall_drop} (+ {margin - policy.max_recall_drop:.4f}, two "
        f"standard errors of the measurement) below {trained['recall']} when "
        "trained: rebuild"
    )
