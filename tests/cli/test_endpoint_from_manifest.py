"""Readers reach the endpoint an index was built with from its manifest alone: its URL and
the *name* of the variable holding its key (``--api-key-env``), never the key.

The folder is built by the real job (``corpusbeam index``) against a local reference
endpoint that requires a key; ``corpusbeam search`` then runs in a child process with no
endpoint flags, with the variable set and unset.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import ConfigError
from corpusbeam.inference.client.credentials import EnvApiKey
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.embedder import EmbedderPool
from corpusbeam.retrieval.service.run import open_live_indexes, running_service
from indexes.storage import versions
from indexes.storage.manifest import Manifest
from tests.support.manifests import small_manifest

ROOT = Path(__file__).resolve().parents[2]
VAR = "CORPUSBEAM_TEST_ENDPOINT_KEY"
SECRET = "manifest-test-key-5f3a9c"
DOCS = {
    "owl.txt": "the owl eats mice in the barn at night",
    "dog.txt": "the dog eats bones in the yard",
    "cat.txt": "the cat eats fish by the river",
    "cow.txt": "the cow eats grass in the field",
}


@pytest.fixture(scope="module")
def keyed():
    """A local endpoint that refuses requests without ``SECRET``."""
    with running_endpoint(EndpointConfig(api_key=SECRET)) as ep:
        yield ep


@pytest.fixture(scope="module")
def built(keyed, tmp_path_factory):
    """An index output DIR built with ``--endpoint URL --api-key-env VAR``."""
    root = tmp_path_factory.mktemp("keyed")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    out = root / "out"
    argv = ["index", str(corpus), "-o", str(out), "--endpoint", keyed.url]
    argv += ["--api-key-env", VAR, "--progress", "off", "--runner=DirectRunner"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(VAR, SECRET)
        assert main(argv) == 0
    return out


def _search(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "corpusbeam", "search", str(out), "the owl eats mice"]
    return subprocess.run(
        [*argv, "-k", "2", "--mode", "dense", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def _env_without_var() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != VAR}


def test_the_manifest_names_the_variable_and_no_file_holds_the_key(built, keyed):
    manifest = Manifest.from_json((versions.current_version(built) / "manifest.json").read_text())
    assert manifest.endpoint == keyed.url
    assert manifest.api_key_env == VAR
    for path in built.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_search_needs_no_endpoint_flags_when_the_variable_is_set(built):
    proc = _search(built, {**_env_without_var(), VAR: SECRET})
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits = json.loads(proc.stdout)["hits"]
    assert hits[0]["text"].startswith("the owl eats mice")


def test_search_names_the_variable_when_it_is_unset(built):
    proc = _search(built, _env_without_var())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert VAR in proc.stderr and "not set" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_embeds_queries_with_the_manifests_key_variable(built, monkeypatch):
    monkeypatch.setenv(VAR, SECRET)
    with running_service([built]) as service:
        r = httpx.post(f"{service.url}/search", json={"query": "the dog eats bones", "k": 1})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["text"].startswith("the dog eats bones")


def test_serve_refuses_to_start_without_the_key(built, monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    with EmbedderPool() as pool, pytest.raises(ConfigError, match=VAR):
        open_live_indexes([built], embedders=pool)


def test_an_explicit_key_variable_wins_over_the_manifests(built, monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    monkeypatch.setenv("OTHER_KEY_VAR", SECRET)
    manifest = Manifest.from_json((versions.current_version(built) / "manifest.json").read_text())
    with EmbedderPool(credential=EnvApiKey(var="OTHER_KEY_VAR")) as pool:
        embedder = pool.get(manifest)
        assert embedder.settings.credential == EnvApiKey(var="OTHER_KEY_VAR")
        vectors = embedder.embed_texts(
            ["the owl"], dimensions=manifest.dimensions, encoding="float"
        )
        assert vectors.shape == (1, manifest.dimensions)


def test_folders_without_a_key_variable_keep_their_manifest_and_digest():
    """Both fields are written only when set: older manifests read and digest the same."""
    base = small_manifest(dimensions=4, created="2026-01-01T00:00:00Z")
    data = json.loads(base.to_json())
    assert "api_key_env" not in data and "deployment" not in data
    body = json.dumps(
        {k: v for k, v in data.items() if k != "digest"}, sort_keys=True, separators=(",", ":")
    )
    assert data["digest"] == hashlib.sha256(body.encode()).hexdigest()  # the fields' digest
    named = Manifest.from_json(replace(base, api_key_env=VAR, deployment="d1").to_json())
    assert (named.api_key_env, named.deployment) == (VAR, "d1")
    assert named.compute_digest() != base.compute_digest()


def test_a_manifest_refuses_a_key_variable_that_is_not_a_name():
    with pytest.raises(ConfigError, match="api_key_env"):
        small_manifest(dimensions=4, api_key_env="sk-live key/with spaces")
