"""``corpusbeam search`` and ``corpusbeam serve`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from corpusbeam.cli.main import main
from tests.support.cli import start_cli
from tests.support.endpoints import KEY
from tests.support.folders import make_versioned
from tests.support.images import scene_png
from tests.support.paths import REPO


def test_search_json_prints_the_hits_shape(float_folder, capsys):
    assert main(["search", str(float_folder), "the owl eats mice", "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 3
    assert set(hits[0]) == {"id", "score", "document_id", "uri", "text", "metadata", "ranks"}
    assert hits[0]["text"].startswith("the owl eats mice")


def test_search_takes_a_mode_and_refuses_an_unknown_one(float_folder, capsys):
    argv = ["search", str(float_folder), "the owl eats mice", "-k", "2", "--json"]
    assert main([*argv, "--mode", "lexical"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [h["ranks"] for h in hits] == [{"lexical": 1}, {"lexical": 2}]
    assert main([*argv, "--mode", "dense"]) == 0
    assert "ranks" not in json.loads(capsys.readouterr().out)["hits"][0]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--mode", "fuzzy"])
    assert exit_.value.code == 2
    assert "--mode: invalid choice: 'fuzzy'" in capsys.readouterr().err


def test_search_an_output_dir_with_a_filter(tmp_path, build_text, capsys):
    root = make_versioned(tmp_path / "out", build_text, "v7", tag="v7")
    flt = '{"lang": "fr"}'
    assert main(["search", str(root), "the cat eats fish", "--filter", flt, "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and {h["metadata"]["lang"] for h in hits} == {"fr"}
    assert {h["metadata"]["tag"] for h in hits} == {"v7"}


def test_search_an_image_and_plain_output(image_folder, tmp_path, capsys):
    path = tmp_path / "q.png"
    path.write_bytes(scene_png(1))
    assert main(["search", str(image_folder), "--image", str(path), "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "img-1" in out and "green ellipse" in out


def test_search_an_image_with_its_text(image_folder, tmp_path, capsys):
    path = tmp_path / "q.png"
    path.write_bytes(scene_png(2))
    args = ["search", str(image_folder), "brown stripes", "--image", str(path), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["document_id"] == "img-2"


def test_search_with_an_explicit_endpoint_and_key(float_folder, endpoint, monkeypatch, capsys):
    monkeypatch.setenv("CLI_SEARCH_KEY", KEY)
    args = ["search", str(float_folder), "the dog eats bones", "--json"]
    args += ["--endpoint", endpoint.url, "--api-key-env", "CLI_SEARCH_KEY"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["hits"][0]["text"].startswith("the dog eats bones")
    assert KEY not in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--filter", "{lang"], "filter"),
        (["--filter", '["en"]'], "JSON object"),
        (["-k", "0"], "k=0"),
        (["--api-key-env", "NO_SUCH_VARIABLE_SET"], "NO_SUCH_VARIABLE_SET"),
    ],
)
def test_search_errors_name_the_input(float_folder, capsys, extra, message):
    assert main(["search", str(float_folder), "the owl", *extra]) == 2
    assert message in capsys.readouterr().err


def test_search_refuses_a_folder_that_is_not_one(tmp_path, capsys):
    assert main(["search", str(tmp_path), "the owl"]) == 2
    assert "neither an index folder" in capsys.readouterr().err
    assert main(["search", str(tmp_path)]) == 2
    assert "give a text" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_command_in_a_child_process(float_folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "SVC_KEY": "k-123"}
    argv = ["serve", str(float_folder), "--name", "t"]
    argv += ["--port", "0", "--service-key-env", "SVC_KEY", "--log-level", "warning"]
    proc = start_cli(*argv, cwd=None, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("corpusbeam search: listening on "), line
        url = line.rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = httpx.post(
            f"{url}/search", json={"query": "the owl eats mice"}, headers={"api-key": "k-123"}
        )
        assert r.status_code == 200 and r.json()["hits"][0]["index"] == "t"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
