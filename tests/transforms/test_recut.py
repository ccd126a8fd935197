"""Cutting a chunk again: pieces on the chunker's boundaries, exact offsets, each fits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusbeam.inference.token_budget import TokenBudget
from transforms.elements import Chunk, content_hash
from transforms.recut import RECUT_STRIDE, FitEstimate, TooLongError, recut
from transforms.text_split import split_text


def _chunk(doc: str, start: int, end: int, index: int = 3) -> Chunk:
    return Chunk(
        document_id="doc",
        chunk_index=index,
        uri="mem://doc",
        text=doc[start:end],
        start=start,
        end=end,
        content_hash=content_hash(doc[start:end]),
        metadata={"lang": "en"},
    )


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.text("abcdefghij .,\n", min_size=1, max_size=12), min_size=1, max_size=80),
    limit=st.integers(min_value=2, max_value=40),
    lead=st.integers(min_value=0, max_value=5),
)
def test_pieces_fit_keep_offsets_and_cover_the_chunk(words, limit, lead):
    doc = "Intro. " * lead + " ".join(words)
    start = len("Intro. ") * lead
    if not doc[start:].strip():
        return
    chunk = _chunk(doc, start, len(doc))
    budget = TokenBudget(limit, mode="calibrated", margin=1.0)
    pieces = recut(chunk, budget)
    covered = set()
    for j, p in enumerate(pieces):
        assert p.text == doc[p.start : p.end] and p.content_hash == content_hash(p.text)
        assert budget.cost(p.text) <= limit
        assert p.chunk_index == 3 + j * RECUT_STRIDE
        assert p.document_id == "doc" and p.metadata == {"lang": "en"}
        covered.update(range(p.start, p.end))
    missed = [i for i in range(chunk.start, chunk.end) if i not in covered]
    assert all(doc[i].isspace() for i in missed)


def test_pieces_cut_at_sentences_before_words():
    doc = "One two three four. Five six seven eight. Nine ten eleven twelve."
    budget = TokenBudget(10, mode="calibrated", margin=1.0)
    pieces = recut(_chunk(doc, 0, len(doc), 0), budget)
    assert all(p.text.endswith(".") for p in pieces)
    assert pieces[0].chunk_index == 0


def test_a_character_that_cannot_fit_is_an_error():
    budget = TokenBudget(3, mode="calibrated", margin=1.0, counter=lambda t: 10 * len(t))
    with pytest.raises(TooLongError, match="single character"):
        recut(_chunk("abc", 0, 3), budget)


def test_the_chunker_cuts_for_the_models_limit():
    text = " ".join(f"w{i}" for i in range(400))  # about 500 estimated tokens
    budget = TokenBudget(50, mode="calibrated", margin=1.0, counter=len)
    spans = split_text(text, max_tokens=512, estimate=FitEstimate(budget, 512))
    assert len(spans) > 1
    assert all(budget.cost(text[s:e]) <= 50 for s, e in spans)
    assert split_text(text, max_tokens=512) == [(0, len(text))]  # without it: one chunk
