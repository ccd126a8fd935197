"""Pictures of a run and its index: ``write_report(DIR)`` -> one self-contained HTML file
and a PNG a chart.

Every chart is drawn from numbers the version holds (``report.json``, written by the
index job; ``failures.parquet``; ``manifest.json``; the index itself):

- ``throughput``: inputs embedded or reused a second over the run (the job's 1 s time
  series, ``report.json`` ``timeline``);
- ``latency``: histogram of the embedding requests' latencies (``request_latency_ms``:
  every answered request, sending to the last byte, timed by the workers' client);
- ``retries``: retries and 429 answers a second over the run (the time series);
- ``failures``: failed inputs by stage and error (``failures.parquet``);
- ``recall``: recall@k against mean single-query latency for every search setting tuning
  tried (``manifest.json`` ``recall.trials``; an exact index has the one point);
- ``scores``: distribution of the top-1 score of ``SCORE_QUERIES`` sample queries
  (indexed vectors sampled with a fixed seed, each left out of its own results, as the
  recall measurement does).

The same numbers go into the HTML as JSON (``<script id="report-data">``), so a test (or a
reader) can check each chart against the run. matplotlib (``pip install
corpusbeam[report]``) is imported when a report is written, not before.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from corpusbeam.errors import ConfigError
from indexes.building.tune import drop_ids
from indexes.reader import open_index
from indexes.storage import versions
from indexes.storage.files import MANIFEST

__all__ = ["CHARTS", "SCORE_QUERIES", "ReportFiles", "report_data", "write_report"]

CHARTS = ("throughput", "latency", "retries", "failures", "recall", "scores")
SCORE_QUERIES = 200
_TITLES = {
    "throughput": "Throughput over the run",
    "latency": "Embedding request latency",
    "retries": "Retries and 429s over time",
    "failures": "Failures by stage and reason",
    "recall": "Recall vs latency (tuning)",
    "scores": "Top-1 scores of sample queries",
}


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pngs: dict[str, Path]
    data: dict[str, Any]


def _rates(t: list[float], cumulative: list[int]) -> tuple[list[float], list[float]]:
    """Per-second rates between consecutive samples of a cumulative count."""
    mids, rates = [], []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        if dt > 0:
            mids.append(round(t[i], 3))
            rates.append((cumulative[i] - cumulative[i - 1]) / dt)
    return mids, rates


def _top1_scores(folder_path: Path, n: int, seed: int = 0) -> list[float]:
    folder = open_index(folder_path, verify=False)
    m = folder.manifest
    ids, xb, rv = folder.vectors()
    if ids.shape[0] < 2:
        return []
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(ids.shape[0], size=min(n, ids.shape[0]), replace=False))
    xq = xb[rows] if rv is None else rv[rows].astype(np.float32)
    res = folder.search(xq, 2)
    keep = drop_ids(res.I, ids[rows], 1)[:, 0]
    scores = []
    for q in range(xq.shape[0]):
        j = np.flatnonzero(res.I[q] == keep[q])
        if keep[q] < 0 or not j.size:
            continue
        d = float(res.D[q, j[0]])
        if res.metric == "hamming" and not res.rescored:
            d = 1.0 - 2.0 * d / m.dimensions  # the score searches show for bits
        scores.append(round(d, 6))
    return scores


def report_data(version: Path) -> dict[str, Any]:
    """Every chart's numbers, read from the version folder (see the module docstring)."""
    path = version / "report.json"
    if not path.is_file():
        raise ConfigError("DIR", str(version), "has no report.json: not a version the job wrote")
    run = json.loads(path.read_text())
    manifest = json.loads((version / MANIFEST).read_text())
    timeline = run.get("timeline") or []
    t = [p["t"] for p in timeline]
    moved = [p["inputs_embedded"] + p["inputs_reused"] for p in timeline]
    tp_t, tp = _rates(t, moved)
    rt_t, retries = _rates(t, [p["retries"] for p in timeline])
    _, throttled = _rates(t, [p["throttled"] for p in timeline])
    failures: dict[str, int] = {}
    fpath = version / "failures.parquet"
    if fpath.is_file():
        table = pq.read_table(fpath, columns=["stage", "error"])
        for stage, error in zip(
            table.column("stage").to_pylist(), table.column("error").to_pylist(), strict=True
        ):
            key = f"{stage}: {error}"
            failures[key] = failures.get(key, 0) + 1
    recall = manifest.get("recall") or {}
    trials = recall.get("trials") or []
    if trials:
        points = [
            {
                "label": ",".join(f"{k}={v}" for k, v in tr["params"].items()) or "exact",
                "recall": tr["recall"],
                "latency_ms": tr["latency_ms"],
            }
            for tr in trials
        ]
    elif recall:
        points = [
            {
                "label": manifest.get("index_factory", ""),
                "recall": recall.get("value"),
                "latency_ms": manifest.get("latency_ms"),
            }
        ]
    else:
        points = []
    return {
        "version": version.name,
        "index_factory": manifest.get("index_factory"),
        "count": manifest.get("count"),
        "recall_k": recall.get("k"),
        "counts": run.get("counts", {}),
        "requests": run.get("requests", {}),
        "seconds": run.get("seconds", {}),
        "throughput": {"t": tp_t, "inputs_per_s": tp, "total_moved": moved[-1] if moved else 0},
        "latency": {"request_latency_ms": run.get("request_latency_ms") or []},
        "retries": {"t": rt_t, "retries_per_s": retries, "throttled_per_s": throttled},
        "failures": failures,
        "recall": points,
        "scores": _top1_scores(version, SCORE_QUERIES),
    }


def _draw(name: str, data: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.set_title(_TITLES[name])
    empty = None
    if name == "throughput":
        d = data["throughput"]
        ax.plot(d["t"], d["inputs_per_s"], drawstyle="steps-post", color="#2f6fd6")
        ax.set_xlabel("seconds since the run started")
        ax.set_ylabel("inputs a second")
        empty = None if d["t"] else "no time series recorded"
    elif name == "latency":
        ms = data["latency"]["request_latency_ms"]
        if ms:
            ax.hist(ms, bins=min(40, max(5, len(ms) // 3)), color="#2f6fd6")
        ax.set_xlabel("milliseconds a request")
        ax.set_ylabel("requests")
        empty = None if ms else "no request in this run (all reused?)"
    elif name == "retries":
        d = data["retries"]
        ax.plot(d["t"], d["retries_per_s"], drawstyle="steps-post", label="retries")
        ax.plot(d["t"], d["throttled_per_s"], drawstyle="steps-post", label="429s")
        ax.set_xlabel("seconds since the run started")
        ax.set_ylabel("a second")
        ax.legend()
    elif name == "failures":
        f = data["failures"]
        if f:
            labels = sorted(f, key=lambda k: -f[k])
            ax.barh(labels, [f[k] for k in labels], color="#c0392b")
            ax.invert_yaxis()
            ax.set_xlabel("failed inputs")
        empty = None if f else "no failed inputs"
    elif name == "recall":
        pts = [p for p in data["recall"] if p["recall"] is not None]
        ax.plot([p["latency_ms"] for p in pts], [p["recall"] for p in pts], "o-", color="#2f6fd6")
        for p in pts:
            ax.annotate(p["label"], (p["latency_ms"], p["recall"]), fontsize=7)
        ax.set_xlabel("ms a query (one at a time)")
        ax.set_ylabel(f"recall@{data['recall_k']}")
        empty = None if pts else "recall was not measured"
    elif name == "scores":
        s = data["scores"]
        if s:
            ax.hist(s, bins=min(40, max(5, len(s) // 4)), color="#2f6fd6")
        ax.set_xlabel("top-1 score")
        ax.set_ylabel("queries")
        empty = None if s else "fewer than two vectors"
    if empty:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _html(data: dict[str, Any], pngs: dict[str, bytes]) -> str:
    c, r, s = data["counts"], data["requests"], data["seconds"]
    summary = (
        f"{c.get('documents_read', 0)} documents and {c.get('images_read', 0)} images read; "
        f"{c.get('embedded', 0)} embedded, {c.get('reused', 0)} reused, "
        f"{c.get('failed', 0)} failed; {r.get('requests', 0)} requests, "
        f"{r.get('retries', 0)} retries, {r.get('throttled_429', 0)} 429s; "
        f"{s.get('total', 0)} s. Index {data['index_factory']}, {data['count']} vectors."
    )
    figures = "\n".join(
        f'<figure id="{n}"><img alt="{html.escape(_TITLES[n])}" '
        f'src="data:image/png;base64,{base64.b64encode(pngs[n]).decode()}">'
        f"<figcaption>{html.escape(_TITLES[n])}</figcaption></figure>"
        for n in CHARTS
    )
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>corpusbeam report {html.escape(data["version"])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70rem;margin:auto;padding:1rem}}
main{{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1rem}}
figure{{margin:0}} img{{max-width:100%}}</style></head>
<body><h1>corpusbeam report: {html.escape(data["version"])}</h1>
<p>{html.escape(summary)}</p>
<main>
{figures}
</main>
<script type="application/json" id="report-data">{payload}</script>
</body></html>
"""


def write_report(path: str | os.PathLike, out: str | os.PathLike | None = None) -> ReportFiles:
    """Write ``report.html`` and a PNG a chart for the version at ``path`` (an output DIR:
    its live version; or a version folder) into ``out`` (default: ``<version>/report/``)."""
    version = versions.resolve_index_folder(path)
    data = report_data(Path(version))
    target = Path(out) if out is not None else Path(version) / "report"
    target.mkdir(parents=True, exist_ok=True)
    pngs = {name: _draw(name, data) for name in CHARTS}
    paths = {}
    for name, png in pngs.items():
        paths[name] = target / f"{name}.png"
        paths[name].write_bytes(png)
    page = target / "report.html"
    page.write_text(_html(data, pngs), encoding="utf-8")
    return ReportFiles(html=page, pngs=paths, data=data)
