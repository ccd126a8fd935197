"""The manifest: format version and endpoint credentials."""

import json

import pytest

from corpusbeam.errors import ConfigError, IndexFolderError
from indexes.storage.manifest import Manifest, sanitize_endpoint
from tests.support.indexes import ENDPOINT
from tests.support.manifests import small_manifest


def test_unknown_format_version(float_folder, tmp_path):
    data = json.loads((float_folder / "manifest.json").read_text())
    data["format_version"] = 99
    with pytest.raises(IndexFolderError, match="format_version"):
        Manifest.from_json(json.dumps(data))


def test_sanitize_endpoint():
    assert sanitize_endpoint(ENDPOINT) == "https://models.example.com/embeddings"
    assert sanitize_endpoint("http://127.0.0.1:8088/") == "http://127.0.0.1:8088/"
    with pytest.raises(ConfigError, match="endpoint"):
        small_manifest(count=1, endpoint=ENDPOINT)
