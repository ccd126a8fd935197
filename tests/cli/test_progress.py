"""``corpusbeam index``'s live progress, as a user sees it: a line redrawn on a pseudo-terminal,
plain log lines without one, and counts that come from worker processes on every runner."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import pytest

from corpusbeam.inference.server import EndpointConfig, running_endpoint
from tests.support.beam import RUNNERS
from tests.support.cli import cli_command
from tests.support.paths import REPO

DOCS = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def slow_endpoint():
    """40 ms a request; with 4 inputs a request and one in flight, 60 documents take
    about 15 requests: long enough to watch, short enough for a test."""
    with running_endpoint(EndpointConfig(dimensions=64, latency_ms=(40.0, 40.0))) as ep:
        yield ep


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress") / "corpus"
    root.mkdir()
    for i in range(DOCS):
        (root / f"doc{i:03d}.txt").write_text(f"document number {i} about topic {i % 7}\n")
    return root


def command(corpus, out, endpoint, *extra) -> list[str]:
    return cli_command(
        "index",
        str(corpus),
        "--output",
        str(out),
        "--endpoint",
        endpoint.url,
        "--max-inputs",
        "4",
        "--max-concurrency",
        "1",
        *extra,
    )


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250", "TERM": "xterm-256color"}


def embedded_values(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"embedded (\d+)", text)]


def test_on_a_terminal_the_progress_line_is_redrawn_as_the_run_advances(
    corpus, tmp_path, slow_endpoint
):
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        command(corpus, tmp_path / "out", slow_endpoint),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env(),
        cwd=REPO,
        close_fds=True,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in raw, "a terminal gets a line redrawn in place (cursor movements)"
    text = ANSI.sub("\n", raw.replace("\r", "\n"))
    values = embedded_values(text)
    distinct = sorted(set(values))
    assert len(distinct) >= 4, f"the line advanced {distinct}"  # 0, then at least three more
    assert distinct[-1] == DOCS
    assert values == sorted(values), "counts never go back"
    assert f"embedded {DOCS}/{DOCS}" in text  # the total, once known
    assert re.search(r"ETA \d+:\d\d", text)
    for stage in ("[reading]", "[merging]", "[publishing]"):
        assert stage in text


def test_without_a_terminal_plain_log_lines_come_every_n_seconds(corpus, tmp_path, slow_endpoint):
    proc = subprocess.run(
        command(corpus, tmp_path / "out", slow_endpoint, "--progress-every", "0.5"),
        capture_output=True,
        text=True,
        env=env(),
        cwd=REPO,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "corpusbeam.cli.display:" in line]
    assert len(lines) >= 4, proc.stderr[-2000:]
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr
    assert all(
        re.match(r"\d{4}-\d\d-\d\d [\d:,]+ INFO corpusbeam.cli.display: \[\w+\] ", x) for x in lines
    )
    assert f"embedded {DOCS}/{DOCS}" in lines[-1]
    assert len(set(embedded_values("\n".join(lines)))) >= 2


@pytest.mark.parametrize("runner", ["multiprocess", "portable"])
def test_counts_from_worker_processes_reach_the_launcher(corpus, tmp_path, slow_endpoint, runner):
    """On the multi-processing DirectRunner the launcher counts nothing itself: every number
    in its progress lines came over the channel from the workers."""
    proc = subprocess.run(
        command(corpus, tmp_path / "out", slow_endpoint, "--progress-every", "0.5")
        + RUNNERS[runner],
        capture_output=True,
        text=True,
        env=env(),
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "corpusbeam.cli.display:" in line]
    last = lines[-1]
    assert f"read {DOCS} docs" in last and f"embedded {DOCS}/{DOCS}" in last, last
    requests = int(re.search(r"(\d+) requests", last).group(1))
    assert requests >= DOCS // 4
