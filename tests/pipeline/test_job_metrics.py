"""``--metrics-port``: a running index job serves its progress at ``/metrics`` (issue 24:
"Report and /metrics of the job carry tokens used, estimated and the budget").

One job on the direct runner, through the reference endpoint with 150 ms added to each
request (16 requests, 2 at a time: the run embeds for over a second), is scraped over
loopback while it runs; the pages are read back with ``parse_metrics``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.cli import index as index_cli
from corpusbeam.cli.main import build_parser
from corpusbeam.errors import ConfigError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from pipeline.index_job import run_index_job
from pipeline.job.metrics_server import serving
from pipeline.job.tracking import ProgressTracker
from tests.support.jobs import job
from tests.support.resume import SMALL, write_corpus

DOCS = 64
CAP = 1_000_000  # a budget the run stays within: shown, never reached
P = "corpusbeam_job_"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """The job's pages, scraped every 50 ms while it ran, its result, and its URL."""
    corpus = write_corpus(tmp_path_factory.mktemp("metrics-corpus"), DOCS)
    out = tmp_path_factory.mktemp("metrics-out")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with running_endpoint(EndpointConfig(dimensions=32, latency_ms=(150.0, 150.0))) as ep:
        cfg = job(corpus, out, endpoint=ep.url, max_embed_tokens=CAP, metrics_port=port, **SMALL)
        done: dict = {}
        runner = threading.Thread(target=lambda: done.update(result=run_index_job(cfg)))
        runner.start()
        pages: list[str] = []
        while runner.is_alive():
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                pages.append(_get(url))  # fails before it serves and after it stops
            time.sleep(0.05)
        runner.join()
    return [parse_metrics(p) for p in pages], pages, done["result"], url, out


def test_a_running_job_serves_its_stage_counts_tokens_and_budget(scraped):
    metrics, pages, result, *_ = scraped
    assert result.exit_code == ExitCode.OK
    embedding = [m for m in metrics if m[f'{P}stage{{stage="embedding"}}'] == 1]
    assert embedding, [m for m in metrics if m]  # seen while embedding, not only after
    mid = next(m for m in embedding if m[f"{P}requests_total"] > 0)
    assert mid[f"{P}prompt_tokens_total"] > 0 and mid[f"{P}tokens_estimated_total"] > 0
    assert mid[f"{P}inputs_embedded_total"] < DOCS  # part way through
    assert all(m[f"{P}max_embed_tokens"] == CAP for m in metrics)
    # one stage at a time; counts only grow and end within the report's totals
    assert all(sum(v for k, v in m.items() if k.startswith(f"{P}stage{{")) == 1 for m in metrics)
    requests = [m[f"{P}requests_total"] for m in metrics]
    assert requests == sorted(requests)
    assert requests[-1] <= result.report["requests"]["requests"]
    tokens = [m[f"{P}prompt_tokens_total"] for m in metrics]
    assert tokens == sorted(tokens) and tokens[-1] <= result.report["budget"]["tokens_used"]
    for name in ("stage", "inputs_over_budget_total", "prompt_tokens_total", "max_embed_tokens"):
        assert f"# HELP {P}{name} " in pages[-1]


def test_the_server_stops_with_the_job(scraped):
    url = scraped[3]
    with pytest.raises(urllib.error.URLError):
        _get(url)


def test_retry_failures_takes_the_flags_of_its_own_command_line(scraped, monkeypatch):
    """The recorded job's port is not reused: ``retry-failures`` serves where it is told."""
    seen = []

    def capture(cfg, args):
        seen.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(index_cli, "_run_job", capture)
    for argv in ([], ["--metrics-port", "0", "--metrics-host", "0.0.0.0"]):
        args = build_parser().parse_args(["retry-failures", str(scraped[4]), *argv])
        with pytest.raises(SystemExit):
            index_cli.run_retry(args)
    assert [(c.metrics_port, c.metrics_host) for c in seen] == [
        (None, "127.0.0.1"),
        (0, "0.0.0.0"),
    ]


def test_port_0_picks_a_free_port_and_no_budget_shows_0(caplog):
    tracker = ProgressTracker(patterns=1)
    tracker.stage("starting")
    with caplog.at_level("INFO"), serving(tracker, port=0) as url:
        assert url is not None and not url.endswith(":0/metrics")
        assert f"serving the job's metrics at {url}" in caplog.text
        m = parse_metrics(_get(url))
        assert m[f'{P}stage{{stage="starting"}}'] == 1 and m[f"{P}max_embed_tokens"] == 0
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(url.replace("/metrics", "/other"))
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(ConfigError, match="metrics_port"), serving(tracker, port=port):
            pass  # the port is taken: an error naming the option
    with serving(tracker, port=None) as off:
        assert off is None


def test_a_bad_port_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="metrics_port"):
        job(tmp_path, tmp_path / "out", metrics_port=70000)
