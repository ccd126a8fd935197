"""A killed run's embeddings are not lost: the rerun embeds only the rest (issue 24).

Runs go through a kill switch in front of the reference endpoint
(``tests/support/kill_switch.py``): after K requests it refuses the rest with 401, so the
run fails part way through, in process; both runs name the same endpoint, so the rerun
finds the checkpoints. Inputs are counted where the endpoint answered them. A batch is
``max_concurrency x max_inputs`` = 8 inputs here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.errors import JobError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.storage import versions
from pipeline.dry_run import dry_run
from pipeline.index_job import run_index_job
from tests.support.jobs import job
from tests.support.kill_switch import kill_switch
from tests.support.resume import BATCH, SMALL, ids_and_vectors, write_corpus
from transforms.checkpoints import CHECKPOINTS, checkpoint_location, read_checkpointed

DOCS = 64


@pytest.fixture(scope="module")
def switch():
    with running_endpoint(EndpointConfig(dimensions=32)) as ep, kill_switch(ep.url) as ks:
        yield ks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("resume-corpus"), DOCS)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, corpus, switch):
    """A clean run: the index a resumed run must equal."""
    out = tmp_path_factory.mktemp("clean")
    switch.reset()
    result = run_index_job(job(corpus, out, endpoint=switch.url, **SMALL))
    assert result.exit_code == ExitCode.OK
    CLEAN_TOKENS["tokens"] = result.report["requests"]["prompt_tokens"]
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


@pytest.fixture(scope="module")
def leftover(tmp_path_factory, corpus, switch):
    """A killed run's output: its checkpoints, the inputs it got back."""
    out = tmp_path_factory.mktemp("leftover")
    switch.fail_after = 2
    with pytest.raises(JobError):
        run_index_job(job(corpus, out, endpoint=switch.url, **SMALL))
    switch.fail_after = None
    _, answered = switch.reset()
    return out, answered


def test_the_reader_counts_what_is_checkpointed(leftover, switch):
    from pipeline.job.resume import checkpoint_digest

    out, answered = leftover
    cfg = job(out, out, endpoint=switch.url, **SMALL)
    digest = checkpoint_digest(cfg, model="corpusbeam-hash", endpoint=switch.url)
    [folder] = (out / CHECKPOINTS).iterdir()
    assert folder.name == digest  # the job's folder is the digest a dry run computes
    ids, digests = read_checkpointed(checkpoint_location(str(out), digest))
    assert answered - BATCH <= ids.size <= answered and ids.size == digests.size > 0
    assert np.all(np.diff(ids) > 0)


def test_other_settings_and_no_resume_embed_everything(leftover, corpus, switch):
    out, _ = leftover
    before = sorted(p.name for p in (out / CHECKPOINTS).rglob("*.npy"))
    other = run_index_job(job(corpus, out, endpoint=switch.url, **SMALL, max_tokens=400))
    assert switch.reset()[1] == DOCS and other.report["counts"]["resumed"] == 0
    # Another digest's checkpoints are neither read nor cleared.
    assert sorted(p.name for p in (out / CHECKPOINTS).rglob("*.npy")) == before
    # The same settings as the checkpoints' (the live version not reused either).
    cfg = job(corpus, out, endpoint=switch.url, **SMALL, resume=False, reuse=False)
    fresh = run_index_job(cfg)
    assert switch.reset()[1] == DOCS and fresh.report["counts"]["resumed"] == 0


def test_checkpoints_expire_after_their_age(tmp_path):
    from transforms.checkpoints import expire, write_batch
    from transforms.elements import Embedded

    e = Embedded(
        document_id="a", chunk_index=0, uri="a", modality="text", text="t", start=0, end=1,
        content_hash="h", vector=np.ones(4, np.float32),
    )  # fmt: skip
    location = checkpoint_location(str(tmp_path), "0123456789abcdef")
    write_batch(location, [e])
    assert expire(str(tmp_path), 7.0) == 0
    assert read_checkpointed(location)[0].size == 1
    assert expire(str(tmp_path), 7.0, now=time.time() + 8 * 86400) == 1
    assert read_checkpointed(location)[0].size == 0 and not list(Path(location).iterdir())


@pytest.fixture(scope="module")
def capped(tmp_path_factory, corpus, switch, clean):
    """A run capped at a third of a clean run's tokens, then the run after it."""
    out = tmp_path_factory.mktemp("capped")
    cap = CLEAN_TOKENS["tokens"] // 3
    first = run_index_job(job(corpus, out, endpoint=switch.url, **SMALL, max_embed_tokens=cap))
    first_inputs = switch.reset()[1]
    assert versions.read_current(out) is None  # nothing published
    assert list((out / CHECKPOINTS).glob("*/*.keys.npy"))
    # A dry run now counts what the next run takes from the checkpoints, sending nothing.
    planned = dry_run(job(corpus, out, endpoint=switch.url, **SMALL))
    assert switch.reset()[1] == 0
    second = run_index_job(job(corpus, out, endpoint=switch.url, **SMALL))
    DRY["chunks"] = planned.chunks
    return out, cap, first, first_inputs, second, switch.reset()[1]


DRY: dict[str, dict] = {}


CLEAN_TOKENS: dict[str, int] = {}


def test_the_token_cap_stops_within_a_batch_and_the_next_run_goes_on(capped):
    _, cap, first, first_inputs, second, second_inputs = capped
    assert first.exit_code == ExitCode.BUDGET_REACHED == 4
    budget = first.report["budget"]
    batch_tokens = CLEAN_TOKENS["tokens"] / DOCS * BATCH * 1.5
    assert budget["reached"] and budget["max_embed_tokens"] == cap
    assert 0 < budget["tokens_used"] <= cap + batch_tokens
    assert budget["tokens_estimated"] > 0 and budget["inputs_over_budget"] > 0
    assert first_inputs < DOCS
    # The next run embeds only what the capped one did not: nothing twice.
    assert second.exit_code == ExitCode.OK
    assert second_inputs == DOCS - first_inputs
    assert second.report["counts"]["resumed"] == first_inputs
    assert second.report["budget"]["max_embed_tokens"] is None
    # The dry run between them saw the checkpoints as the second run took them.
    assert DRY["chunks"]["checkpointed"] == first_inputs
    assert DRY["chunks"]["to_embed"] == second_inputs
