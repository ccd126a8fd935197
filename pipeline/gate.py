"""The quality gate: a finished version goes live only if it is not worse than the live one.

    corpusbeam index ... --gate-queries queries.jsonl --gate-qrels qrels.tsv [--gate-max-drop 0.01]
    corpusbeam index ... --min-recall 0.9

After the new version is finished and before ``CURRENT`` moves, the job measures it
(``pipeline.gate_measure``: nDCG@10 and recall@100 on the labelled queries, recall@10
against exact search) and compares it with the live version on the same queries:

- the live version's figures are the ones its own gate recorded when it was published
  (its ``gate.json``) when they were measured on the same two files; otherwise the live
  version is measured now, with the queries embedded through this run's endpoint. The
  recorded figures come first because a broken deployment (the wrong model behind the
  same name and dimensions) would embed the queries for both versions: measured now, the
  live version would look as broken as the new one;
- the new version is rejected when its nDCG@10 is below the live one's by more than
  ``--gate-max-drop``, or (``--min-recall``, with or without labels) its recall@10
  against exact search is below the floor.

A rejected version is kept, renamed into place and marked: ``gate.json`` beside its
manifest says ``"status": "rejected"`` and why (a separate file: the manifest refuses
fields it does not know, so older readers are unaffected). ``CURRENT`` does not move, the
run exits ``ExitCode.GATE_REJECTED`` and its report's ``gate`` entry says what was
measured against what. A version that passes gets a ``gate.json`` too, whose figures
the next run's gate compares with. With no live version the gate only records figures
(and applies ``--min-recall``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from corpusbeam.errors import ConfigError
from indexes.building.labels import load_qrels, load_queries

__all__ = ["GateVerdict", "Labels", "check_gate_config", "gate_lines", "gate_wanted", "read_labels"]


def gate_wanted(cfg) -> bool:
    """Whether the run's configuration asks for a gate."""
    return cfg.gate_queries is not None or cfg.min_recall is not None


def check_gate_config(cfg) -> None:
    """Refuse gate settings (and a ``keep`` count) that cannot work, naming the option;
    ``IndexJobConfig`` calls it when it is made."""
    if (cfg.gate_queries is None) != (cfg.gate_qrels is None):
        given = "--gate-queries" if cfg.gate_queries else "--gate-qrels"
        raise ConfigError(given, cfg.gate_queries or cfg.gate_qrels, "needs the other one too")
    for name in ("gate_queries", "gate_qrels"):
        path = getattr(cfg, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(name, path, "no such file")
    if cfg.gate_queries is not None:
        read_labels(cfg.gate_queries, cfg.gate_qrels)  # a bad line fails now, not after the run
    if not 0 <= cfg.gate_max_drop <= 1:
        raise ConfigError("gate_max_drop", cfg.gate_max_drop, "must be between 0 and 1")
    if cfg.min_recall is not None and not 0 < cfg.min_recall <= 1:
        raise ConfigError("min_recall", cfg.min_recall, "must be in (0, 1]")
    if isinstance(cfg.keep, bool) or not isinstance(cfg.keep, int) or cfg.keep < 1:
        raise ConfigError("keep", cfg.keep, "must be a whole number >= 1")


@dataclass(frozen=True)
class Labels:
    """The judged queries of the gate's two files, and a digest of both."""

    ids: tuple[str, ...]  # sorted
    texts: tuple[str, ...]
    judged: Mapping[str, Mapping[str, int]]
    digest: str  # figures recorded on other files are not compared


def read_labels(queries_path: str, qrels_path: str) -> Labels:
    """The queries with at least one relevant document in the qrels (BEIR layout,
    ``indexes.building.labels``); ConfigError when there is none."""
    queries = load_queries(queries_path)
    qrels = load_qrels(qrels_path)
    judged = {q: j for q, j in qrels.items() if q in queries and any(s > 0 for s in j.values())}
    if not judged:
        raise ConfigError(
            "gate_qrels", qrels_path, "no query of the qrels is in the queries with a relevant one"
        )
    h = hashlib.sha256()
    for path in (queries_path, qrels_path):
        h.update(Path(path).read_bytes())
    ids = tuple(sorted(judged))
    return Labels(ids, tuple(queries[q] for q in ids), judged, h.hexdigest())


@dataclass(frozen=True)
class GateVerdict:
    """What the gate measured, against what, and its decision (written as ``gate.json``)."""

    status: str  # "passed" or "rejected"
    reasons: tuple[str, ...]
    version: str
    new: dict  # the new version's figures
    live_version: str | None
    live: dict | None  # the live version's figures, or None when there is none
    against: str  # where the live figures come from
    max_drop: float
    min_recall: float | None
    queries: dict | None  # {"file", "qrels", "digest"}
    seconds: float = 0.0  # the gate's own time: the measurements (not the query embedding)

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def decide(
    cfg,
    version: str,
    new: dict,
    live: tuple[str | None, dict | None, str],
    digest: str | None,
) -> GateVerdict:
    """The verdict on ``new`` against ``live`` (its name, its figures, where they come
    from) under the run's margins."""
    live_version, live_figures, against = live
    reasons = []
    if live_figures is not None and "ndcg@10" in new and "ndcg@10" in live_figures:
        drop = round(live_figures["ndcg@10"] - new["ndcg@10"], 4)
        if drop > cfg.gate_max_drop:
            reasons.append(
                f"nDCG@10 {new['ndcg@10']:.4f} is {drop:.4f} below the live version "
                f"{live_version}'s {live_figures['ndcg@10']:.4f} ({against}); --gate-max-drop "
                f"allows {cfg.gate_max_drop:g}"
            )
    recall = new.get("recall@10_vs_exact")
    if cfg.min_recall is not None and recall is not None and recall < cfg.min_recall:
        reasons.append(
            f"recall@10 against exact search {recall:.4f} is below --min-recall "
            f"{cfg.min_recall:g} ({new['recall_queries']})"
        )
    queries = None
    if cfg.gate_queries is not None:
        queries = {"file": cfg.gate_queries, "qrels": cfg.gate_qrels, "digest": digest}
    return GateVerdict(
        status="rejected" if reasons else "passed",
        reasons=tuple(reasons),
        version=version,
        new=new,
        live_version=live_version,
        live=live_figures,
        against=against,
        max_drop=cfg.gate_max_drop,
        min_recall=cfg.min_recall,
        queries=queries,
    )


def recorded(gate_json: bytes | None, digest: str | None) -> dict | None:
    """The figures a version's own gate recorded, if measured on the same queries."""
    if not gate_json or digest is None:
        return None
    try:
        data = json.loads(gate_json)
    except ValueError:
        return None
    if data.get("status") != "passed" or (data.get("queries") or {}).get("digest") != digest:
        return None
    figures = data.get("new")
    return figures if isinstance(figures, dict) and "ndcg@10" in figures else None


def download_version(store, prefix: str, manifest) -> Path:
    """A temporary local copy of an object-store version whose manifest the launcher
    holds (not yet written to the store); the caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="corpusbeam-gate-"))
    try:
        for name in manifest.files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            store.download(f"{prefix}/{name}", folder / name)
        (folder / "manifest.json").write_text(manifest.to_json())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def gate_lines(gate: dict) -> list[str]:
    """A gate's verdict and figures in words (``gate.json``, the report's ``gate``)."""
    new = gate.get("new") or {}
    figures = ", ".join(f"{k} {v}" for k, v in new.items() if isinstance(v, int | float))
    lines = [f"gate {gate.get('status')}: {gate.get('version')} {figures}"]
    live = gate.get("live")
    if live:
        theirs = ", ".join(f"{k} {v}" for k, v in live.items() if isinstance(v, int | float))
        lines.append(f"  against {gate.get('live_version')} {theirs} ({gate.get('against')})")
    else:
        lines.append(f"  {gate.get('against')}")
    lines += [f"  rejected: {r}" for r in gate.get("reasons", [])]
    return lines
