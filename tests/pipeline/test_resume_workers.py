"""Resume with several worker processes (issue 24): ``--direct_running_mode=multi_processing
--direct_num_workers=2``, on ``s3://`` (moto's server, a stand-in for S3) and locally.

- a run on S3 killed part way (the kill switch refuses requests after K: see
  ``tests/support/kill_switch.py``): the rerun embeds only the rest plus at most one batch
  a worker, and its index equals a clean run's;
- one worker process SIGKILLed (not the launcher) while it embeds: the job runs the
  pipeline again from the checkpoints, completes, and no input is embedded more than twice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.errors import JobError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from pipeline.index_job import run_index_job
from tests.support.jobs import job
from tests.support.kill_switch import kill_switch
from tests.support.resume import BATCH, SMALL, ids_and_vectors, write_corpus

DOCS = 96
FILES = 4  # the workers share the files
WORKERS = 2


@pytest.fixture(scope="module")
def switch():
    config = EndpointConfig(dimensions=32, latency_ms=(20.0, 40.0))
    with running_endpoint(config) as ep, kill_switch(ep.url) as ks:
        yield ks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("workers-corpus"), DOCS, FILES)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, corpus, switch):
    out = tmp_path_factory.mktemp("clean")
    result = run_index_job(job(corpus, out, endpoint=switch.url, **SMALL))
    assert result.exit_code == ExitCode.OK
    TOKENS["clean"] = result.report["requests"]["prompt_tokens"]
    switch.reset()
    return ids_and_vectors(out)


TOKENS: dict[str, int] = {}


def _sdk_workers() -> list[int]:
    """The pids of Beam SDK worker processes (``_talking_to`` picks this run's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if stat and "sdk_worker_main" in cmd:
            found.append(int(entry.name))
    return found


def _quiet(switch, timeout: float = 15) -> None:
    """Until no request has reached the switch for half a second: a failed pipeline's
    other worker may still be finishing its bundle."""
    deadline = time.monotonic() + timeout
    last = -1
    while switch.requests != last and time.monotonic() < deadline:
        last = switch.requests
        time.sleep(0.5)


def _talking_to(port: int, pids: list[int]) -> list[int]:
    """Of ``pids``, those with a TCP connection to 127.0.0.1:``port`` open."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if int(cols[2].split(":")[1], 16) == port:
            inodes.add(cols[9])
    found = []
    for pid in pids:
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        if any(link[8:-1] in inodes for link in links if link.startswith("socket:[")):
            found.append(pid)
    return found


def test_a_killed_run_on_s3_with_two_workers_resumes(s3, corpus, switch, clean):
    url = s3.url("resume")
    cfg = job(corpus, url, endpoint=switch.url, **SMALL)
    cfg = type(cfg)(**{**cfg.__dict__, "pipeline_args": s3.pipeline_args("multiprocess")})
    switch.fail_after = 6
    with pytest.raises(JobError):
        run_index_job(cfg)
    _quiet(switch)
    switch.fail_after = None
    _, answered = switch.reset()
    assert 0 < answered < DOCS
    assert any(k.startswith("checkpoints/") for k in s3.keys("resume"))
    result = run_index_job(cfg)
    _, rerun = switch.reset()
    assert DOCS - answered <= rerun <= DOCS - answered + WORKERS * BATCH
    assert result.report["counts"]["resumed"] == DOCS - rerun
    assert not any(k.startswith("checkpoints/") for k in s3.keys("resume"))  # consumed: cleared
    ids, xb = clean
    from indexes.reader import open_index
    from indexes.storage import versions

    got_ids, got_xb, _ = open_index(versions.resolve_index_folder(url)).vectors()
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], ids)
    np.testing.assert_array_equal(got_xb[order], xb)


# Beam's own threads for the killed worker (its gRPC reader, the job service's
# run_worker) raise when it dies: expected here, not a failure of the job.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_killed_worker_process_is_run_again_from_the_checkpoints(tmp_path, corpus, switch):
    cfg = job(corpus, tmp_path, runner="multiprocess", endpoint=switch.url, **SMALL)
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if switch.inputs >= DOCS // 3:
                workers = _talking_to(int(switch.url.rsplit(":", 1)[1]), _sdk_workers())
                if workers:
                    os.kill(workers[0], signal.SIGKILL)
                    killed.append(workers[0])
            time.sleep(0.01)

    switch.reset()
    watcher = threading.Thread(target=kill_one_worker, daemon=True)
    watcher.start()
    result = run_index_job(cfg)
    watcher.join()
    assert killed, "no worker process was killed"
    assert result.exit_code == ExitCode.OK
    assert result.report["counts"]["indexed"] == DOCS
    seen = switch.seen
    assert len(seen) == DOCS and max(seen.values()) <= 2
    assert result.report["counts"]["resumed"] > 0  # the second attempt took checkpoints


def test_two_workers_share_the_token_cap(tmp_path, corpus, switch, clean):
    cap = TOKENS["clean"] // 2
    cfg = job(corpus, tmp_path, runner="multiprocess", endpoint=switch.url, **SMALL)
    cfg = type(cfg)(**{**cfg.__dict__, "max_embed_tokens": cap})
    switch.reset()
    result = run_index_job(cfg)
    assert result.exit_code == ExitCode.BUDGET_REACHED
    budget = result.report["budget"]
    per_request = TOKENS["clean"] / DOCS * SMALL["max_inputs"] * 1.5
    # Each process checks every ledger before a request: at most one request over, each.
    assert budget["tokens_used"] <= cap + WORKERS * per_request
    assert budget["reached"] and switch.reset()[1] < DOCS
    ledgers = list(tmp_path.glob("versions/*-staging.partial/budget/*.json"))
    assert len(ledgers) == WORKERS  # both processes embedded, each with its ledger
