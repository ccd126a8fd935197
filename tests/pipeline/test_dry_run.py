"""``corpusbeam index --dry-run`` (pipeline.dry_run): what a run would do, before it runs.

One module fixture runs the story once, on a tiny corpus (40 records in two JSONL files,
three Markdown files) and the hash model at a loopback endpoint: a dry run with no live
version, a real first run, an edit of the records (4 edited, 4 deleted, 4 added, one moved
to the other file), a dry run (and one through the command line, ``--json``), then the
real update. The dry runs are checked against the endpoint's request counter, the output's
tree, and what the real runs then did. The S3 case runs on moto's server (a stand-in).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import pytest

from corpusbeam.cli.main import main
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.inference.token_budget import TokenBudget
from indexes.storage import versions
from indexes.storage.objectstore import open_store
from pipeline.dry_run import _time_and_cost, dry_run
from pipeline.dry_run_live import calibration
from pipeline.dry_run_text import describe
from pipeline.index_job import IndexJobConfig, run_index_job
from tests.support.jobs import Records, embedding_requests
from tests.support.jobs import update_job as job

PRICE = 2.5


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig()) as ep:
        yield ep


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: (size, modification time in ns)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            st = (Path(dirpath) / name).stat()
            out[os.path.relpath(Path(dirpath) / name, root)] = (st.st_size, st.st_mtime_ns)
    return out


def _cli_dry_run(corpus: Path, out: Path, url: str) -> dict:
    args = ["index", str(corpus), "-o", str(out), "--endpoint", url, "--shards", "4"]
    args += ["--dry-run", "--json", "--price-per-million-tokens", str(PRICE)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--runner=DirectRunner"]) == ExitCode.OK
    return json.loads(printed.getvalue())


@pytest.fixture(scope="module")
def story(tmp_path_factory, endpoint):
    root = tmp_path_factory.mktemp("dry-run")
    records = Records(root / "corpus", n=40)
    for name in ("alpha", "beta", "gamma"):
        (records.folder / f"{name}.md").write_text(f"# {name}\n\nA note on {name} and its kin.\n")
    out = root / "out"
    cfg = job(records.folder, out, endpoint.url)
    s = {"requests": [embedding_requests(endpoint)]}
    s["first_dry"] = dry_run(cfg)
    s["requests"].append(embedding_requests(endpoint))
    s["out_after_first_dry"] = out.exists()
    s["first"] = run_index_job(cfg)
    records.step()
    s["tree"] = [tree(out)]
    s["requests"].append(embedding_requests(endpoint))
    s["dry"] = dry_run(cfg, price_per_million_tokens=PRICE)
    s["requests"].append(embedding_requests(endpoint))
    s["tree"].append(tree(out))
    s["cli"] = _cli_dry_run(records.folder, out, endpoint.url)
    s["records"], s["out"], s["url"] = records, out, endpoint.url
    s["second_cfg"] = cfg
    return s


@pytest.fixture(scope="module")
def second(story):
    return run_index_job(story["second_cfg"])


def test_dry_runs_send_no_embedding_request_and_write_nothing(story):
    before_first, after_first, before, after = story["requests"]
    assert after_first == before_first
    assert after == before
    assert not story["out_after_first_dry"]  # not even the output's folder or its .lock
    assert story["tree"][0] == story["tree"][1]
    assert story["first_dry"].read_info and story["dry"].read_info


def test_first_dry_run_counts_everything_new(story):
    dry, first = story["first_dry"], story["first"].report
    assert dry.live_version is None and not dry.reuse
    assert dry.documents == {"new": 43, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert dry.chunks["to_embed"] == first["counts"]["embedded"] == 43
    assert dry.chunks["reused"] == 0
    assert not dry.tokens["calibrated"]
    # one batch of max_concurrency x max_inputs, packed by max_inputs: at least what
    # ceil(n / max_inputs) needs, at most what the runner's bundles made of it
    assert math.ceil(43 / 96) <= dry.requests <= first["requests"]["requests"]


def test_dry_run_after_a_change_counts_what_the_run_then_does(story, second):
    dry, report = story["dry"], second.report
    # 4 edited, 4 deleted, 4 added; the moved record keeps its id and text
    assert dry.documents == {"new": 4, "changed": 4, "unchanged": 35, "deleted": 4, "failed": 0}
    counts = report["counts"]
    assert dry.reuse and dry.live_version == story["first"].version
    assert dry.chunks["to_embed"] == counts["embedded"] == 8
    assert dry.chunks["reused"] == counts["reused"]
    assert dry.chunks["deleted"] == counts["deleted"] == 4
    assert dry.files["not_read_again"] == counts["files_skipped"] == 3  # the .md files
    assert dry.chunks["total"] == counts["indexed"]


def test_dry_run_tokens_are_calibrated_from_the_live_run(story, second):
    tokens = story["dry"].tokens
    measured = second.report["requests"]["prompt_tokens"]
    assert tokens["calibrated"] and "usage" in tokens["calibration"]
    assert tokens["to_embed"] == math.ceil(tokens["counted"] * tokens["ratio"])
    assert abs(tokens["to_embed"] - measured) <= 0.1 * measured


def test_dry_run_json_and_cost(story):
    got = story["cli"]
    assert got["documents"] == story["dry"].documents  # the corpus is as the dry run saw it
    assert got["price_per_million_tokens"] == PRICE
    assert got["cost"] == pytest.approx(got["tokens"]["to_embed"] * PRICE / 1e6)
    assert got["seconds"] == pytest.approx(
        got["tokens"]["to_embed"] / got["rate_tokens_per_second"], rel=0.01, abs=0.1
    )


def test_a_run_that_finds_the_output_locked_exits_busy(tmp_path, endpoint, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("one document\n")
    out = tmp_path / "out"
    args = ["index", str(corpus), "-o", str(out), "--endpoint", endpoint.url, "--progress=off"]
    with versions.acquire_lock(out):
        code = main([*args, "--runner=DirectRunner"])
    assert code == ExitCode.BUSY
    assert "another run is writing this output" in capsys.readouterr().err


def test_dry_run_on_s3_writes_nothing(s3, tmp_path, endpoint):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("one document about herons\n")
    (corpus / "b.md").write_text("another about otters\n")
    url = s3.url("dry")
    cfg = IndexJobConfig(
        inputs=(str(corpus),), output=url, endpoint=endpoint.url, pipeline_args=s3.pipeline_args()
    )
    before = embedding_requests(endpoint)
    first = dry_run(cfg)
    assert first.documents["new"] == 2 and first.chunks["to_embed"] == 2
    assert s3.keys("dry") == []  # no lease, no staging, no version
    assert embedding_requests(endpoint) == before
    run_index_job(cfg)
    (corpus / "a.md").write_text("one document about herons and egrets\n")
    stored = list(open_store(url).list())
    before = embedding_requests(endpoint)
    second = dry_run(cfg)
    assert list(open_store(url).list()) == stored
    assert embedding_requests(endpoint) == before
    assert second.reuse and second.documents["changed"] == 1
    assert second.documents["unchanged"] == 1 and second.chunks["to_embed"] == 1


def test_dry_run_text_says_what_and_how_sure(story):
    text = describe(story["dry"])
    assert "documents: 4 new, 4 changed, 4 deleted, 35 unchanged" in text
    assert "8 to embed" in text and "calibrated x" in text
    assert f"cost at {PRICE:g} a million tokens" in text
    assert "not calibrated" in describe(story["first_dry"])


def _report(prompt_tokens: int, reused: int, **too_long) -> dict:
    return {
        "requests": {"prompt_tokens": prompt_tokens, "prompt_patches": 0},
        "counts": {"embedded": 10, "reused": reused},
        "too_long": {"mode": "auto", "limit": 512, "tokenizer": False, "ratio": 0.9, **too_long},
    }


def test_calibration_comes_from_the_workers_ratio_when_the_live_run_reused():
    budget = TokenBudget(512, mode="auto")  # no tokenizer for this name: bytes / 4
    got = calibration(_report(900, reused=5), None, budget)
    assert got is not None and got.ratio == 0.9 and "learned" in got.source
    assert calibration(_report(0, reused=5), None, budget) is None  # no usage measured
    assert calibration(_report(900, reused=5, mode="estimate"), None, budget) is None
    assert calibration(_report(900, reused=5, limit=None), None, budget) is None
    assert calibration(_report(900, reused=5, tokenizer=True), None, budget) is None
    assert calibration(None, None, budget) is None


def test_time_and_cost_arithmetic():
    got = _time_and_cost(2_500_000, 5_000.0, 0.13)
    assert got["seconds"] == 500.0 and got["rate_tokens_per_second"] == 5_000.0
    assert got["cost"] == pytest.approx(0.325)
    assert _time_and_cost(10, None, None) == {
        "seconds": None,
        "rate_tokens_per_second": None,
        "price_per_million_tokens": None,
        "cost": None,
    }
