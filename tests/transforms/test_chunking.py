"""Chunking: every chunk within budget, at natural boundaries, offsets exact, nothing lost."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusbeam.errors import ConfigError
from corpusbeam.inference.token_budget import estimate_tokens
from transforms.text_split import split_text


def check(text, spans, max_tokens, estimate=estimate_tokens):
    covered = [False] * len(text)
    last_start = -1
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        assert start > last_start  # in order, always progressing
        last_start = start
        assert estimate(text[start:end]) <= max_tokens
        assert not text[start].isspace() and not text[end - 1].isspace()
        for i in range(start, end):
            covered[i] = True
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing, f"characters not in any chunk: {missing[:5]}"


def test_short_text_is_one_chunk():
    assert split_text("  hello world  ", max_tokens=10) == [(2, 13)]
    assert split_text("   \n ", max_tokens=10) == []


def test_paragraphs_before_sentences_before_words():
    para = "First sentence here. Second sentence here.\n\nAnother paragraph now."
    spans = split_text(para, max_tokens=12, overlap_tokens=0)
    texts = [para[s:e] for s, e in spans]
    assert texts == ["First sentence here. Second sentence here.", "Another paragraph now."]
    spans = split_text(para, max_tokens=6, overlap_tokens=0)
    texts = [para[s:e] for s, e in spans]
    assert texts[0] == "First sentence here." and texts[1] == "Second sentence here."


def test_overlap_repeats_the_end_of_the_previous_chunk():
    text = " ".join(f"w{i:03d}" for i in range(300))
    spans = split_text(text, max_tokens=50, overlap_tokens=10)
    check(text, spans, 50)
    for (_, e0), (s1, _) in itertools.pairwise(spans):
        assert s1 < e0  # overlaps
        assert text[s1 - 1] == " "  # starts at a word


def test_a_run_with_no_spaces_is_cut_by_characters():
    text = "x" * 1000
    spans = split_text(text, max_tokens=64, overlap_tokens=0)
    check(text, spans, 64)
    assert len(spans) == 4


def test_pluggable_estimate():
    text = "a b c d e f g h"
    spans = split_text(text, max_tokens=3, overlap_tokens=0, estimate=lambda t: len(t.split()))
    assert [text[s:e] for s, e in spans] == ["a b c", "d e f", "g h"]


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="overlap_tokens=64"):
        split_text("x", max_tokens=64, overlap_tokens=64)
    with pytest.raises(ConfigError, match="max_tokens=0"):
        split_text("x", max_tokens=0)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab cd.\n!é中"), max_size=600),
    st.integers(2, 60),
    st.integers(0, 30),
)
def test_property_within_budget_and_nothing_lost(text, max_tokens, overlap):
    overlap = min(overlap, max_tokens - 1)
    check(text, split_text(text, max_tokens=max_tokens, overlap_tokens=overlap), max_tokens)
