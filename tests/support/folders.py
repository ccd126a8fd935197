"""Fixtures: index folders for the search tests, embedded by the real local endpoint (hash model).

The folders record ``endpoint="local://hash"``, so a ``Searcher`` starts its own local
endpoint to embed queries, exactly as it would for an index the pipeline built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from corpusbeam.inference.client import ClientSettings, EmbeddingsClient
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes import BuildConfig, build_folder
from tests.support.images import scene_png

faiss.omp_set_num_threads(1)

D = 64
ANIMALS = ["cat", "dog", "horse", "parrot", "salmon", "tiger", "rabbit", "owl"]
FOODS = ["fish", "bones", "hay", "seeds", "insects", "meat", "carrots", "mice"]
PLACES = ["kitchen", "garden", "stable", "forest", "river", "jungle", "meadow", "barn"]


def corpus() -> list[str]:
    """64 distinct sentences: every animal with every food, each in its own place."""
    return [
        f"the {a} eats {f} in the {PLACES[(i + j) % len(PLACES)]}"
        for i, a in enumerate(ANIMALS)
        for j, f in enumerate(FOODS)
    ]


@pytest.fixture(scope="session")
def doc_client() -> Iterator[EmbeddingsClient]:
    """The hash model at its default native size, as ``local://hash`` promises."""
    with running_endpoint(EndpointConfig(model="hash")) as ep:
        with EmbeddingsClient(ClientSettings(endpoint=ep.url)) as client:
            yield client


def text_metadata(texts: list[str], tag: str = "v1") -> dict:
    n = len(texts)
    return {
        "document_id": [f"doc-{i // 2}" for i in range(n)],
        "chunk": [i % 2 for i in range(n)],
        "uri": [f"file:///corpus/doc-{i // 2}.txt" for i in range(n)],
        "modality": ["text"] * n,
        "text": texts,
        "lang": ["en" if i % 3 else "fr" for i in range(n)],
        "year": [2000 + i % 10 for i in range(n)],
        "tag": [tag] * n,
    }


BuildText = Callable[..., Path]


@pytest.fixture(scope="session")
def build_text(doc_client) -> BuildText:
    """``build_text(path, encoding, tag=..., texts=...)`` builds a text index folder."""

    def build(path: Path, encoding: str = "float", *, tag: str = "v1", texts=None) -> Path:
        texts = texts or corpus()
        rescore = None
        if encoding in ("ubinary", "binary"):
            xb = doc_client.embed_texts(
                texts, input_type="document", dimensions=D, encoding_format=encoding
            ).vectors
            rescore = doc_client.embed_texts(
                texts, input_type="document", dimensions=D, encoding_format="int8"
            ).vectors
        else:
            xb = doc_client.embed_texts(
                texts, input_type="document", dimensions=D, encoding_format=encoding
            ).vectors
        build_folder(
            path,
            xb,
            text_metadata(texts, tag),
            encoding=encoding,
            model="hash",
            dimensions=D,
            endpoint="local://hash",
            api_version="2024-05-01-preview",
            input_type="document",
            rescore_vectors=rescore,
            config=BuildConfig(eval_queries=16),
        )
        return path

    return build


@pytest.fixture(scope="session")
def float_folder(tmp_path_factory, build_text) -> Path:
    return build_text(tmp_path_factory.mktemp("float") / "texts")


@pytest.fixture(scope="session")
def binary_folder(tmp_path_factory, build_text) -> Path:
    return build_text(tmp_path_factory.mktemp("ubinary") / "texts-bits", "ubinary")


@pytest.fixture(scope="session")
def int8_folder(tmp_path_factory, build_text) -> Path:
    return build_text(tmp_path_factory.mktemp("int8") / "texts-int8", "int8")


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory, doc_client) -> Path:
    """Six pictures (three kinds, each twice with different sizes) with captions."""
    images = [scene_png(k) for k in range(3)]
    captions = ["red square and a white dot", "green ellipse and a line", "brown stripes"]
    xb = doc_client.embed_images(
        images, input_type="document", dimensions=D, encoding_format="float"
    ).vectors
    path = tmp_path_factory.mktemp("images") / "pictures"
    build_folder(
        path,
        xb,
        {
            "document_id": [f"img-{i}" for i in range(3)],
            "chunk": [0, 0, 0],
            "uri": [f"file:///corpus/img-{i}.png" for i in range(3)],
            "modality": ["image"] * 3,
            "text": captions,
        },
        encoding="float",
        model="hash",
        dimensions=D,
        endpoint="local://hash",
        api_version="2024-05-01-preview",
        input_type="document",
        config=BuildConfig(eval_queries=0),
    )
    return path


def make_versioned(root: Path, build_text: BuildText, version: str, **kw) -> Path:
    """``root/versions/<version>`` built, then ``root/CURRENT`` pointed at it atomically."""
    build_text(root / "versions" / version, **kw)
    flip(root, version)
    return root


def flip(root: Path, version: str) -> None:
    tmp = root / "CURRENT.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(root / "CURRENT")


@pytest.fixture
def xq_float(float_folder) -> np.ndarray:
    from indexes import open_index

    _, xb, _ = open_index(float_folder).vectors()
    return xb[:4]
