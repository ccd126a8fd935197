"""A killed run's embeddings are not lost: the rerun embeds only the rest (issue 24).

Runs go through a kill switch in front of the reference endpoint
(``tests/support/kill_switch.py``): after K requests it refuses the rest with 401, so the
run fails part way through, in process; both runs name the same endpoint, so the rerun
finds the checkpoints. Inputs are counted where the endpoint answered them. A batch is
``max_concurrency x max_inputs`` = 8 inputs here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.errors import JobError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.reader import open_index
from indexes.storage import versions
from pipeline.index_job import run_index_job
from tests.support.jobs import job
from tests.support.kill_switch import kill_switch
from transforms.checkpoints import CHECKPOINTS, checkpoint_location, read_checkpointed

DOCS = 64
BATCH = 8  # max_concurrency 2 x max_inputs 4
SMALL = {"max_inputs": 4, "max_concurrency": 2, "shards": 2}


def write_corpus(folder: Path, n: int = DOCS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"id": f"d{i}", "text": f"Document {i} on the {i % 7} river and {i * 13} hills."}
        )
        for i in range(n)
    ]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def ids_and_vectors(output: Path) -> tuple[np.ndarray, np.ndarray]:
    ids, xb, _ = open_index(versions.resolve_index_folder(output)).vectors()
    order = np.argsort(ids)
    return ids[order], xb[order]


@pytest.fixture(scope="module")
def switch():
    with running_endpoint(EndpointConfig(dimensions=32)) as ep, kill_switch(ep.url) as ks:
        yield ks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("resume-corpus"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, corpus, switch):
    """A clean run: the index a resumed run must equal."""
    out = tmp_path_factory.mktemp("clean")
    switch.reset()
    result = run_index_job(job(corpus, out, endpoint=switch.url, **SMALL))
    assert result.exit_code == ExitCode.OK
    return ids_and_vectors(out), switch.reset()


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, corpus, switch, clean):
    """A run killed after 3 requests, then the rerun."""
    out = tmp_path_factory.mktemp("killed")
    cfg = job(corpus, out, endpoint=switch.url, **SMALL)
    switch.fail_after = 3
    with pytest.raises(JobError):
        run_index_job(cfg)
    switch.fail_after = None
    first = switch.reset()
    left = sorted(p.name for p in (out / CHECKPOINTS).glob("*/*.keys.npy"))
    result = run_index_job(cfg)
    return out, first, left, result, switch.reset()


def test_the_rerun_embeds_only_what_the_killed_run_did_not(killed_and_resumed, clean):
    out, (_, first_inputs), left, result, (_, rerun_inputs) = killed_and_resumed
    assert 0 < first_inputs < DOCS and left  # killed part way, checkpoints on disk
    # Everything the killed run got back is resumed, less at most the batch in flight.
    assert DOCS - first_inputs <= rerun_inputs <= DOCS - first_inputs + BATCH
    assert result.report["counts"]["resumed"] == DOCS - rerun_inputs
    assert result.report["counts"]["embedded"] == rerun_inputs
    (ids, xb), _ = clean
    got_ids, got_xb = ids_and_vectors(out)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got_xb, xb)


def test_a_published_version_clears_its_checkpoints(killed_and_resumed):
    out = killed_and_resumed[0]
    assert not list((out / CHECKPOINTS).glob("*/*.npy"))


def test_the_reader_counts_what_is_checkpointed(tmp_path, corpus, switch):
    from pipeline.job.resume import checkpoint_digest

    cfg = job(corpus, tmp_path, endpoint=switch.url, **SMALL)
    switch.fail_after = 2
    with pytest.raises(JobError):
        run_index_job(cfg)
    switch.fail_after = None
    _, answered = switch.reset()
    [folder] = (tmp_path / CHECKPOINTS).iterdir()
    digest = checkpoint_digest(cfg, model="corpusbeam-hash-32", endpoint=switch.url)
    ids, digests = read_checkpointed(checkpoint_location(str(tmp_path), folder.name))
    assert answered - BATCH <= ids.size <= answered and ids.size == digests.size
    assert np.all(np.diff(ids) >= 0)
    assert isinstance(digest, str) and len(digest) == 16
