"""The index job's ``/metrics``: its live progress in the Prometheus text format.

``serving(tracker, host=..., port=..., max_embed_tokens=...)`` serves ``GET /metrics`` from
a daemon thread (the standard library's HTTP server: no dependency) while the block runs;
each scrape renders ``metrics_page(tracker.snapshot(), max_embed_tokens)``: the stage (a
gauge with a ``stage`` label, 1 for the current one), the counts summed over every worker
process (``pipeline.job.tracking``), the inputs a second and in flight, the tokens used
(the endpoint's ``usage``), estimated before sending, and the ``--max-embed-tokens``
budget (0 when none). Port 0 picks a free port; the address is logged and yielded.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from corpusbeam.asgi.prometheus import CONTENT_TYPE, family, render, sample
from corpusbeam.errors import ConfigError
from pipeline.job.tracking import ProgressTracker, Snapshot

__all__ = ["PREFIX", "STAGES", "metrics_page", "serving"]

log = logging.getLogger(__name__)

PREFIX = "corpusbeam_job_"
# every stage a run goes through (pipeline.index_job, pipeline.job.tracking), each shown
# with 0 or 1 so a dashboard sees the whole set from the first scrape
STAGES = ("starting", "reading", "embedding", "building", "merging", "publishing")

# counter name (pipeline.job.tracking's counts) -> metric name, help text
_COUNTERS = (
    ("documents_read", "documents_read", "Documents read."),
    ("images_read", "images_read", "Images read."),
    ("chunks", "chunks", "Chunks cut from the documents."),
    ("inputs_embedded", "inputs_embedded", "Inputs embedded by the endpoint."),
    ("inputs_reused", "inputs_reused", "Inputs whose vectors the live version gave."),
    ("inputs_resumed", "inputs_resumed", "Inputs whose vectors a checkpoint gave."),
    ("inputs_failed", "inputs_failed", "Inputs that failed."),
    ("inputs_over_budget", "inputs_over_budget", "Inputs left unsent by the token budget."),
    ("requests", "requests", "Embeddings requests sent."),
    ("retries", "retries", "Embeddings requests retried."),
    ("throttled", "throttled", "Answers 429 (throttled)."),
    ("prompt_tokens", "prompt_tokens", "Tokens used, as the endpoint's usage counts them."),
    ("tokens_estimated", "tokens_estimated", "Tokens estimated before sending."),
)


def metrics_page(snap: Snapshot, max_embed_tokens: int | None = None) -> str:
    """The page a scrape gets (Prometheus text format 0.0.4)."""
    stages = STAGES if snap.stage in STAGES else (*STAGES, snap.stage)
    lines = family(
        f"{PREFIX}stage",
        "gauge",
        "The job's stage: 1 for the current one.",
        [sample(f"{PREFIX}stage", int(s == snap.stage), {"stage": s}) for s in stages],
    )
    for key, name, help_text in _COUNTERS:
        total = f"{PREFIX}{name}_total"
        lines += family(total, "counter", help_text, [sample(total, snap.get(key))])
    gauges = (
        ("max_embed_tokens", max_embed_tokens or 0, "The token budget (0: none)."),
        ("in_flight", snap.in_flight, "Requests in flight, over every worker."),
        ("inputs_per_second", round(snap.rate, 3), "Inputs embedded or reused a second."),
        ("inputs_total", -1 if snap.total is None else snap.total, "Inputs (-1: not known)."),
        ("elapsed_seconds", round(snap.elapsed, 3), "Seconds since the job started."),
    )
    for name, value, help_text in gauges:
        lines += family(f"{PREFIX}{name}", "gauge", help_text, [sample(f"{PREFIX}{name}", value)])
    return render(lines)


@contextlib.contextmanager
def serving(
    tracker: ProgressTracker,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    max_embed_tokens: int | None = None,
) -> Iterator[str | None]:
    """Serve ``/metrics`` while the block runs; yields its URL (``None``: port ``None``,
    nothing served)."""
    if port is None:
        yield None
        return

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = metrics_page(tracker.snapshot(), max_embed_tokens).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not the run's output

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ConfigError("metrics_port", port, f"cannot serve on {host}: {exc}") from exc
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}/metrics"
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="corpusbeam-job-metrics",
        daemon=True,
    )
    thread.start()
    log.info("serving the job's metrics at %s", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
