"""evaluate_folder and the ``corpusbeam evaluate`` command."""

import json

import numpy as np
import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes import BuildConfig, build_folder
from indexes.building.evaluate import evaluate_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory, xb, metadata):
    path = tmp_path_factory.mktemp("e") / "idx"
    build_folder(
        path,
        codec.quantize(xb, "ubinary"),
        metadata,
        encoding="ubinary",
        model="m",
        rescore_vectors=xb,
        config=BuildConfig(eval_queries=50),
    )
    return path


def test_evaluate_folder_sampled_and_given(folder, xq):
    out = evaluate_folder(folder, n_queries=40)
    assert out["queries"] == 40 and out["rescored"]
    assert out["source"].endswith("left out of its own results")
    assert out["reference"] == "exact inner product, float vectors"
    assert out["recall_at_10"] >= 0.9 and out["latency_ms"] > 0
    given = evaluate_folder(folder, xq=xq, k=5, rescore=False)
    assert given["source"] == "given" and not given["rescored"]
    assert given["recall_at_5"] < out["recall_at_10"]
    with pytest.raises(ConfigError):
        evaluate_folder(folder, k=0)


def test_cli_evaluate(folder, tmp_path, capsys):
    qpath = tmp_path / "q.npy"
    np.save(qpath, np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32))
    assert main(["evaluate", str(folder), "--query-file", str(qpath), "-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["queries"] == 8 and "recall_at_3" in out
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "not an index folder" in capsys.readouterr().err
