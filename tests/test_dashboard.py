"""The Grafana dashboard (dashboards/grafana-corpusbeam.json) queries only series that a live
search service and a live reference endpoint answer on /metrics, with labels they carry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.inference.server import API_VERSION, EndpointConfig, FaultRates, running_endpoint
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import running_service

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "grafana-corpusbeam.json"
NAME = re.compile(r"\bcorpusbeam_[a-z_]+")
GROUPED = re.compile(r"by \(([^)]*)\) \((?:rate|increase)\((corpusbeam_[a-z_]+)")


def queries(dashboard: dict) -> list[str]:
    out = []
    for panel in dashboard["panels"]:
        out += [t["expr"] for t in panel.get("targets", [])]
    out += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return out


def series(text: str) -> dict[str, set[str]]:
    """Sample lines' names -> the label names they carry."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s", line)
        labels = set(re.findall(r'(\w+)="', m.group(2) or ""))
        out.setdefault(m.group(1), set()).update(labels)
    return out


def test_every_series_the_dashboard_queries_is_in_a_live_metrics_answer(float_folder):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard)
    wanted = {name for e in exprs for name in NAME.findall(e)}
    assert len(wanted) >= 12

    live: dict[str, set[str]] = {}
    config = ServiceConfig(poll_interval=0)
    with (
        running_service([float_folder], config=config) as svc,
        httpx.Client(base_url=svc.url, timeout=30) as http,
    ):
        assert http.post("/search", json={"query": "the cat eats fish", "k": 3}).status_code == 200
        assert http.post("/search", json={"k": 3}).status_code == 400
        text = http.get("/metrics").text
        parse_metrics(text)  # well-formed
        live.update(series(text))
    faults = FaultRates(server_error=0.3)
    with (
        running_endpoint(EndpointConfig(faults=faults, seed=1)) as ep,
        httpx.Client(base_url=ep.url, params={"api-version": API_VERSION}, timeout=30) as http,
    ):
        for i in range(12):
            http.post("/embeddings", json={"input": [f"text {i}"]})
        http.post("/embeddings", json={"input": []})
        for name, labels in series(http.get("/metrics").text).items():
            live.setdefault(name, set()).update(labels)

    missing = sorted(wanted - set(live))
    assert missing == [], f"the dashboard queries series no /metrics answers: {missing}"
    for e in exprs:
        for labels, name in GROUPED.findall(e):
            used = {x.strip() for x in labels.split(",")}
            assert used <= live[name], f"{name} has no label {used - live[name]} ({e})"


def test_the_readme_points_at_the_dashboard():
    readme = (DASHBOARD.parents[1] / "README.md").read_text()
    assert "dashboards/grafana-corpusbeam.json" in readme
