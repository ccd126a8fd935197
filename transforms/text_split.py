"""Splitting text into chunks under a token budget, at natural boundaries, with offsets.

``split_text`` cuts at the coarsest boundary that works: paragraphs, then lines, then
sentences, then words, then (for a run of text with no spaces) characters. Adjacent
pieces are packed into chunks of at most ``max_tokens``; each chunk after the first
starts ``overlap_tokens`` earlier, at a word boundary, so no sentence is only ever seen
cut in half. Chunks are ``(start, end)`` character offsets: ``text[start:end]``.

The token count is an estimate, pluggable: by default UTF-8 bytes / 4, about right for
English with BPE tokenizers and cautious for other scripts (CJK counts ~0.75 a char).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from corpusbeam.errors import ConfigError
from corpusbeam.inference.token_budget import estimate_tokens

__all__ = ["TokenEstimator", "split_text"]

TokenEstimator = Callable[[str], int]

_LEVELS = (
    re.compile(r"\n\s*\n"),  # paragraphs
    re.compile(r"\n"),  # lines
    re.compile(r"(?<=[.!?。！？])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)


def split_text(
    text: str,
    *,
    max_tokens: int = 512,
    overlap_tokens: int | None = None,
    estimate: TokenEstimator = estimate_tokens,
) -> list[tuple[int, int]]:
    """Character spans of ``text``'s chunks, in order; empty text gives no chunks.

    ``overlap_tokens`` defaults to an eighth of ``max_tokens``.
    """
    if max_tokens < 1:
        raise ConfigError("max_tokens", max_tokens, "must be at least 1")
    if overlap_tokens is None:
        overlap_tokens = max_tokens // 8
    if not 0 <= overlap_tokens < max_tokens:
        raise ConfigError("overlap_tokens", overlap_tokens, "must be >= 0 and < max_tokens")
    if not text.strip():
        return []
    pieces = _pieces(text, 0, len(text), 0, max_tokens, estimate)
    return _pack(text, pieces, max_tokens, overlap_tokens, estimate)


def _pieces(text, start, end, level, max_tokens, estimate) -> list[tuple[int, int, int]]:
    """(start, end, tokens) pieces covering text[start:end], each within max_tokens."""
    tokens = estimate(text[start:end])
    if tokens <= max_tokens:
        return [(start, end, tokens)]
    if level == len(_LEVELS):
        return _hard_cut(text, start, end, max_tokens, estimate)
    out: list[tuple[int, int, int]] = []
    cut = start
    for m in _LEVELS[level].finditer(text, start, end):
        if m.end() >= end or m.end() == cut:
            continue
        out.extend(_pieces(text, cut, m.end(), level + 1, max_tokens, estimate))
        cut = m.end()
    out.extend(_pieces(text, cut, end, level + 1, max_tokens, estimate))
    return out


def _hard_cut(text, start, end, max_tokens, estimate) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        # Largest prefix within budget, by bisection on its estimate.
        lo, hi = start + 1, end
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append((start, lo, estimate(text[start:lo])))
        start = lo
    return out


def _pack(text, pieces, max_tokens, overlap_tokens, estimate) -> list[tuple[int, int]]:
    chunks: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        start = pieces[i][0]
        budget = max_tokens
        if chunks and overlap_tokens:
            start = _overlap_start(text, chunks[-1], start, overlap_tokens, estimate)
            budget -= estimate(text[start : pieces[i][0]])
            if pieces[i][2] > budget:  # no room for overlap before this piece
                start, budget = pieces[i][0], max_tokens
        end, used = pieces[i][1], pieces[i][2]
        i += 1
        while i < len(pieces) and used + pieces[i][2] <= budget:
            end, used = pieces[i][1], used + pieces[i][2]
            i += 1
        chunks.append(_trim(text, start, end))
    return [c for c in chunks if c[1] > c[0]]


def _overlap_start(text, previous, boundary, overlap_tokens, estimate) -> int:
    """Where a chunk starting at ``boundary`` begins so as to repeat about
    ``overlap_tokens`` of the previous chunk, at a word start."""
    prev_start = previous[0]
    start = boundary
    for m in reversed(list(re.finditer(r"\S+", text[prev_start:boundary]))):
        candidate = prev_start + m.start()
        if estimate(text[candidate:boundary]) > overlap_tokens or candidate <= prev_start:
            break
        start = candidate
    return start


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
