"""``corpusbeam report`` on a sample index the real job built (with failed inputs and
retries from a faulty endpoint): the HTML and PNGs are written, and every chart's numbers
are the run's own (report.json, failures.parquet, the manifest, the index)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from corpusbeam.cli.main import main
from corpusbeam.inference.server import EndpointConfig, FaultRates, running_endpoint
from indexes.storage import versions
from pipeline.index_job import IndexJobConfig, run_index_job
from pipeline.report_html import CHARTS, SCORE_QUERIES
from pipeline.sample_corpus import write_sample

pytest.importorskip("matplotlib", reason="corpusbeam report needs pip install 'corpusbeam[report]'")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    corpus = write_sample(root / "corpus")
    (corpus / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (corpus / "empty.txt").write_text("")
    faults = FaultRates(server_error=0.25)
    with running_endpoint(EndpointConfig(dimensions=64, faults=faults, seed=3)) as ep:
        result = run_index_job(
            IndexJobConfig(
                inputs=(str(corpus),), output=str(root / "out"), endpoint=ep.url, max_inputs=4
            )
        )
    return root / "out", result


def test_report_writes_html_and_pngs_from_the_runs_own_numbers(run, capsys):
    out, result = run
    assert result.exit_code == 3  # the broken and the empty file failed
    assert main(["report", str(out)]) == 0
    version = versions.current_version(out)
    folder = version / "report"
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(folder / "report.html")

    page = (folder / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    images = dict(
        re.findall(r'<figure id="(\w+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    )
    assert set(images) == set(CHARTS)
    for name in CHARTS:
        png = (folder / f"{name}.png").read_bytes()
        assert base64.b64decode(images[name]) == png  # the page embeds the same picture
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
        assert pixels.shape[0] > 200 and pixels.std() > 5  # something is drawn

    data = json.loads(
        re.search(
            r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
        ).group(1)
    )
    report = json.loads((version / "report.json").read_text())
    manifest = json.loads((version / "manifest.json").read_text())

    # Throughput and retries over time: integrated, they give the Beam counters' totals.
    def integral(t, rates, t0):
        edges = [t0, *t]
        return sum(r * (edges[i + 1] - edges[i]) for i, r in enumerate(rates))

    t0 = report["timeline"][0]["t"]
    moved = report["counts"]["embedded"] + report["counts"]["reused"]
    assert moved > 0
    assert integral(
        data["throughput"]["t"], data["throughput"]["inputs_per_s"], t0
    ) == pytest.approx(moved)
    retries = report["requests"]["retries"]
    assert retries > 0  # the endpoint answered 5xx a quarter of the time
    assert integral(data["retries"]["t"], data["retries"]["retries_per_s"], t0) == pytest.approx(
        retries
    )

    # Latency: every answered request the workers timed, as recorded in report.json: one
    # a request the endpoint answered (the Beam counter counts requests sent; dropped ones,
    # none here, would have no latency).
    assert data["latency"]["request_latency_ms"] == report["request_latency_ms"]
    assert len(report["request_latency_ms"]) == report["requests"]["requests"]
    assert all(ms > 0 for ms in report["request_latency_ms"])

    # Failures: the failures.parquet rows by stage and error.
    failures = pq.read_table(version / "failures.parquet").to_pylist()
    assert sum(data["failures"].values()) == len(failures) == report["counts"]["failed"] >= 2
    for f in failures:
        assert f"{f['stage']}: {f['error']}" in data["failures"]

    # Recall vs latency: the tuning's trials, or the one measured point, from the manifest.
    trials = manifest["recall"]["trials"] or [
        {"recall": manifest["recall"]["value"], "latency_ms": manifest["latency_ms"]}
    ]
    assert [(p["recall"], p["latency_ms"]) for p in data["recall"]] == [
        (t["recall"], t["latency_ms"]) for t in trials
    ]

    # Top-1 scores: one a sample query, scores as searches report them.
    assert len(data["scores"]) == min(SCORE_QUERIES, manifest["count"])
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in data["scores"])


def test_a_folder_without_a_run_report_is_refused_by_name(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "report.json" in err and str(tmp_path) in err
