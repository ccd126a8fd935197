"""Pruned lexical search (block-max MaxScore, compiled) equals exhaustive scoring: the same
ids and the same float32 scores, ties in id order, on random queries over a random
corpus, with and without filters, for k in {1, 10, 100}; segments written before the
block maxima still search (their maxima derived on the first query)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from indexes.lexical import topk
from indexes.lexical.blocks import BLOCK_FILES
from indexes.lexical.index import build_lexical, encode_segment, lexical_info, open_lexical

WORDS = [f"w{i}" for i in range(400)]


def write_segments(folder, parts, removed):
    """Write the segments ``parts`` (``[(name, ids, texts)]``, oldest first) and the removed
    ids into ``folder``; returns the manifest's lexical entry."""
    entries = []
    for name, ids, texts in parts:
        entry, files = encode_segment(name, np.asarray(ids, dtype=np.int64), texts)
        for rel, blob in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(blob)
        entries.append(entry)
    np.save(folder / "lexical" / "removed.npy", np.asarray(removed, dtype=np.int64))
    return lexical_info(entries, ["lexical/removed.npy"])


@pytest.fixture(autouse=True)
def prune_every_index(monkeypatch):
    """Prune at any size (small indexes score every posting by default)."""
    monkeypatch.setattr(topk, "PRUNE_ROWS", 0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Three lexical indexes over one random corpus: ``three`` (3 segments), ``changed``
    (a delta segment re-adds some ids with new text, other ids removed: rows shadowed and
    dead, segments with different average lengths), ``old`` (``three`` as written before
    the block maxima)."""
    root = tmp_path_factory.mktemp("pruning")
    rng = np.random.default_rng(11)
    p = 1 / np.arange(1, len(WORDS) + 1)
    p /= p.sum()
    n = 3000  # common words hold a few thousand postings: dozens of blocks of 128
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 50), p=p)) for _ in range(n)]
    texts[7] = None
    ids = np.sort(rng.choice(1 << 40, size=n, replace=False)).astype(np.int64)
    three = build_lexical(root / "three", ids, texts, segment_rows=1000)
    again = np.sort(rng.choice(ids, size=300, replace=False))
    delta = [" ".join(rng.choice(WORDS[:50], size=rng.integers(20, 90))) for _ in again]
    changed = write_segments(
        root / "changed",
        [
            ("part-00000", ids[:1500], texts[:1500]),
            ("part-00001", ids[1500:], texts[1500:]),
            ("delta-00002", again, delta),
        ],
        removed=np.sort(rng.choice(ids, size=200, replace=False)),
    )
    shutil.copytree(root / "three", root / "old")
    old = json.loads(json.dumps(three))
    for entry in old["segments"]:
        del entry["blocks"]
        for file in BLOCK_FILES:
            (root / "old" / entry["dir"] / file).unlink()
    return ids, {
        "three": open_lexical(root / "three", three),
        "changed": open_lexical(root / "changed", changed),
        "old": open_lexical(root / "old", old),
    }


def _queries(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        words = list(rng.choice(WORDS, size=rng.integers(1, 12)))
        words += list(rng.choice(words, size=rng.integers(0, 3)))  # repeated terms
        if rng.random() < 0.3:
            words.append("zzzunknown")
        if rng.random() < 0.3:
            words += ["the", "of"]  # stopwords
        out.append(" ".join(rng.permutation(words)))
    return [*out, "w0 w0 w1", "the of", "zzzunknown", ""]


@pytest.mark.parametrize("name", ["three", "changed", "old"])
def test_pruned_search_equals_exhaustive_scoring(folders, name):
    ids, indexes = folders
    index = indexes[name]
    queries = _queries(len(name), 60)
    rng = np.random.default_rng(5)
    filters = {
        "none": None,
        "a tenth": np.sort(rng.choice(ids, size=ids.size // 10, replace=False)),
        "most": rng.permutation(rng.choice(ids, size=ids.size * 6 // 10, replace=False)),
        "nothing": np.zeros(0, np.int64),
    }
    ties = 0
    for k in (1, 10, 100):
        for label, allowed in filters.items():
            got = index.search(queries, k, allowed_ids=allowed)
            want = index.search_exhaustive(queries, k, allowed_ids=allowed)
            np.testing.assert_array_equal(got.I, want.I, err_msg=f"{name} k={k} {label}")
            np.testing.assert_array_equal(got.D, want.D, err_msg=f"{name} k={k} {label}")
            if allowed is not None:
                assert np.isin(got.I[got.I >= 0], allowed).all()
            if label == "none":
                assert (got.I[:, 0] >= 0).sum() > 40  # the queries do match
            hit = got.I[:, 1:] >= 0
            ties += int((hit & (got.D[:, 1:] == got.D[:, :-1])).sum())
    assert ties > 10  # equal scores occur, and are ordered by id in both


def test_old_segments_derive_their_block_maxima(folders):
    # Derived with the index's average length; the stored ones (each segment's own average)
    # times their scale bound them, block by block.
    _, indexes = folders
    old, new = indexes["old"], indexes["three"]
    assert all(s.blockmax is None for s in old.segments)
    assert all(s.blockmax is not None for s in new.segments)
    old.search(["w3 w40"], 10)
    new.search(["w3 w40"], 10)
    for derived, stored in zip(old.segments, new.segments, strict=True):
        np.testing.assert_array_equal(derived.bounds.blockptr, stored.blockptr)
        assert derived.bounds.scale == 1.0 and stored.bounds.scale >= 1.0
        assert (stored.blockmax * stored.bounds.scale >= derived.bounds.blockmax * (1 - 1e-6)).all()
    assert any(s.bounds.scale > 1.0 for s in new.segments)  # segments' averages differ
