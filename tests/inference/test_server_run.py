"""Starting the endpoint: in a thread, in a child process, from both command lines; the demo."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from corpusbeam.cli.main import build_parser
from corpusbeam.cli.main import main as corpusbeam_main
from corpusbeam.inference.server import API_VERSION, EndpointConfig, running_endpoint
from corpusbeam.inference.server.demo import run_demo
from corpusbeam.inference.server.flags import add_arguments

V = {"api-version": API_VERSION}
ROOT = str(Path(__file__).resolve().parents[2])  # the repository, for child processes


def test_subprocess_endpoint_with_a_key_from_the_environment():
    cfg = EndpointConfig(api_key="child-key", dimensions=64, rpm=1000, blocked_words=("nope",))
    with running_endpoint(cfg, subprocess=True) as ep:
        assert "child-key" not in repr(ep)
        r = httpx.post(
            f"{ep.url}/embeddings", params=V, headers={"api-key": "child-key"},
            json={"input": ["x"]},
        )  # fmt: skip
        assert r.status_code == 200
        assert len(r.json()["data"][0]["embedding"]) == 64
        assert (
            httpx.post(f"{ep.url}/embeddings", params=V, json={"input": ["x"]}).status_code == 401
        )
        assert ep.metrics()['corpusbeam_requests_total{route="/embeddings",status="200"}'] == 1


def test_python_dash_m_prints_its_url_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": ROOT, "MY_ENDPOINT_KEY": "k"}
    with subprocess.Popen(
        [sys.executable, "-m", "corpusbeam.inference.server", "--port", "0", "--api-key-env",
         "MY_ENDPOINT_KEY", "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True, env=env,
    ) as proc:  # fmt: skip
        try:
            line = proc.stdout.readline()
            assert line.startswith("corpusbeam endpoint: listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1].strip()
            headers = {"Authorization": "Bearer k"}
            r = httpx.get(f"{url}/info", params=V, headers=headers, timeout=10)
            assert r.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert proc.wait(timeout=10) in (0, -signal.SIGTERM)


def test_a_bad_flag_value_exits_2_naming_it():
    r = subprocess.run(
        [sys.executable, "-m", "corpusbeam.inference.server", "--port", "0", "--faults", "boom=1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert r.returncode == 2
    assert "faults" in r.stderr and "boom=1" in r.stderr


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


def test_corpusbeam_endpoint_has_the_same_flags():
    own = argparse.ArgumentParser()
    add_arguments(own)
    sub = build_parser()._subparsers._group_actions[0].choices["endpoint"]  # type: ignore[union-attr]
    assert _flags(own) <= _flags(sub)
    args = build_parser().parse_args(["endpoint", "--port", "0", "--rpm", "5", "--block", "x"])
    assert (args.port, args.rpm, args.block) == (0, 5, ["x"])


def test_demo_finds_every_expected_document(capsys):
    result = run_demo()
    assert result.ok
    assert set(result.best) == {"float", "ubinary"}
    assert corpusbeam_main(["demo"]) == 0
    assert "all queries found their document" in capsys.readouterr().out


def test_inference_imports_no_beam_and_nothing_from_pipeline():
    code = (
        "import sys, corpusbeam.inference, corpusbeam.inference.server, "
        "corpusbeam.inference.server.flags, corpusbeam.inference.server.run; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('apache_beam', 'pipeline', 'transforms', 'sentence_transformers', 'torch')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("argv", [["--model", "minilm", "--dimensions", "256"]])
def test_config_errors_from_the_corpusbeam_command(argv, capsys):
    assert corpusbeam_main(["endpoint", *argv]) == 2
    assert "dimensions=256" in capsys.readouterr().err


def test_answers_are_not_held_back_by_nagle(endpoint, client):
    # A listening socket made with proto 0 gets no TCP_NODELAY from asyncio, and every
    # answer then waits ~40 ms for a delayed ACK; 20 round trips would take ~0.8 s.
    client.get("/info")
    started = time.perf_counter()
    for _ in range(20):
        client.get("/info")
    assert time.perf_counter() - started < 0.4
