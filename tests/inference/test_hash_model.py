"""The hash model's promises: deterministic, lexical, image-aware, input-type aware."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corpusbeam.inference.server import hash_tokenizer as tokens
from corpusbeam.inference.server.hashmodel import HashModel
from tests.support.images import near_duplicate, scene


@pytest.fixture(scope="module")
def model() -> HashModel:
    return HashModel(256)


def test_tokenizer():
    assert tokens.tokenize("Don't stop!") == ["Don", "'", "t", "stop", "!"]
    assert tokens.count_tokens("Don't stop!") == 5
    assert tokens.count_tokens("  ") == 0
    assert tokens.words("Hello, World 42") == ["hello", "world", "42"]
    assert tokens.count_tokens("naïve café") == 2


def test_vectors_are_normalised_float32(model):
    xb = model.embed_texts(["a", "some longer text here", "ü"], "text")
    assert xb.dtype == np.float32 and xb.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1.0, rtol=1e-5)


def test_deterministic_across_instances_and_processes(model):
    texts = ["The quick brown fox", "jumps over the lazy dog"]
    xb = model.embed_texts(texts, "query")
    np.testing.assert_array_equal(xb, HashModel(256).embed_texts(texts, "query"))
    # a fresh interpreter (different hash() salt) gives the same bytes
    code = (
        "import sys; from corpusbeam.inference.server.hashmodel import HashModel; "
        f"sys.stdout.write(HashModel(256).embed_texts({texts!r}, 'query').tobytes().hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    ).stdout
    assert out == xb.tobytes().hex()


def test_near_texts_are_closer_than_far_texts(model):
    a, near, far = model.embed_texts(
        [
            "The quick brown fox jumps over the lazy dog",
            "A quick brown fox jumped over the lazy dogs",
            "Quarterly revenue grew by ten percent in Europe",
        ],
        "text",
    )
    assert a @ near > 0.5
    assert a @ near > a @ far + 0.3
    # a typo keeps most of the similarity (character n-grams)
    x, typo, other = model.embed_texts(
        ["embeddings endpoint", "embedings endpiont", "vector database"], "text"
    )
    assert x @ typo > 0.2 and x @ typo > x @ other + 0.15


def test_input_type_changes_the_vector_but_keeps_retrieval(model):
    docs = ["cats purr and sleep", "rockets fly to orbit", "bread needs yeast and flour"]
    queries = ["why do cats purr", "how do rockets reach orbit", "flour and yeast for bread"]
    text = model.embed_texts(docs, "text")
    d = model.embed_texts(docs, "document")
    q = model.embed_texts(docs, "query")
    assert not np.allclose(text, d) and not np.allclose(d, q)
    assert (text * d).sum(axis=1).min() > 0.98
    xq = model.embed_texts(queries, "query")
    assert ((xq @ d.T).argmax(axis=1) == np.arange(3)).all()


def test_truncation_keeps_similarity_order(model):
    xb = model.embed_texts(["red apples", "red apple", "blue whales"], "text")[:, :64]
    xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    assert xb[0] @ xb[1] > xb[0] @ xb[2]


def test_near_duplicate_image_is_closer_than_a_different_image(model):
    base = scene(0)
    images = [base, near_duplicate(base), base.crop((4, 4, 316, 236)), scene(1), scene(2)]
    xb = model.embed_images(images, [None] * len(images), "text")
    np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1.0, rtol=1e-5)
    assert xb[0] @ xb[1] > 0.9  # resized + recoloured
    assert xb[0] @ xb[2] > 0.9  # slightly shifted
    assert max(xb[0] @ xb[3], xb[0] @ xb[4]) < 0.7


def test_transparent_and_palette_images(model):
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    a, b = model.embed_images([rgba, white], [None, None], "text")
    assert a @ b > 0.999  # transparent composites on white
    pal = scene(1).convert("P")
    (p,) = model.embed_images([pal], [None], "text")
    (rgb,) = model.embed_images([scene(1)], [None], "text")
    assert p @ rgb > 0.95


def test_image_with_text_is_between_both(model):
    (img,) = model.embed_images([scene(0)], [None], "text")
    (txt,) = model.embed_texts(["red square"], "text")
    (both,) = model.embed_images([scene(0)], ["red square"], "text")
    assert both @ img > 0.5 and both @ txt > 0.5


def test_dimensions_must_be_a_multiple_of_8():
    with pytest.raises(ValueError):
        HashModel(12)
    assert HashModel(32).supported_dimensions == frozenset({8, 16, 24, 32})
