"""Cutting a chunk again when the model finds it too long, on the chunker's boundaries.

``recut(chunk, budget)`` splits a ``Chunk`` with ``split_text`` (paragraphs, lines,
sentences, words, then characters) into pieces the ``TokenBudget`` says fit, each a
``Chunk`` of the same document with exact offsets into the document's text. Pieces
overlap as the chunker's chunks do (an eighth of the budget), so every character of the
chunk but the whitespace at a cut lies inside some piece. Piece 0 keeps the chunk's
number; piece j > 0 is numbered ``chunk_index + j * RECUT_STRIDE``, so the ids of the
document's other chunks never change. ``FitEstimate`` lets the chunker itself cut for
the model's limit in the first place, so most chunks never need this.
"""

from __future__ import annotations

from dataclasses import replace

from corpusbeam.errors import ConfigError
from corpusbeam.inference.token_budget import TokenBudget, estimate_tokens
from transforms.elements import Chunk, content_hash
from transforms.text_split import split_text

__all__ = ["RECUT_STRIDE", "FitEstimate", "TooLongError", "recut"]

# The metadata's ``chunk`` column is int32: piece j of chunk i is i + j * 2**16, unique
# while a document has fewer than 65,536 chunks and a chunk is cut in fewer than 32,768.
RECUT_STRIDE = 1 << 16


class TooLongError(ConfigError):
    """Not even a single character of the chunk fits the model's limit."""


def recut(chunk: Chunk, budget: TokenBudget, *, target: int | None = None) -> list[Chunk]:
    """``chunk`` cut into pieces of at most ``target`` tokens (default: what the budget
    allows) by ``budget.cost``. Raises TooLongError if a single character cannot fit."""
    usable = budget.usable()
    if usable is None and target is None:
        raise ConfigError("budget", budget, "has no limit to cut for")
    limit = min(x for x in (usable, target) if x is not None)
    limit = max(1, limit)
    overlap = limit // 8
    spans = split_text(chunk.text, max_tokens=limit, overlap_tokens=overlap, estimate=budget.cost)
    pieces = []
    for j, (s, e) in enumerate(spans):
        text = chunk.text[s:e]
        if e - s == 1 and budget.cost(text) > limit:
            raise TooLongError(
                "input",
                f"{chunk.document_id}#{chunk.chunk_index}",
                f"the single character {text!r} costs {budget.cost(text)} tokens, more "
                f"than the model's limit ({budget.limit})",
            )
        pieces.append(
            replace(
                chunk,
                chunk_index=chunk.chunk_index + j * RECUT_STRIDE,
                text=text,
                start=chunk.start + s,
                end=chunk.start + e,
                content_hash=content_hash(text),
            )
        )
    return pieces


class FitEstimate:
    """A chunker estimate that also keeps chunks under the model's limit: a text costs
    the larger of its estimate and its ``budget`` cost scaled to ``max_tokens`` units, so
    ``split_text(max_tokens=max_tokens)`` chunks fit both. Picklable (Beam ships it)."""

    def __init__(self, budget: TokenBudget, max_tokens: int) -> None:
        self.budget = budget
        self.max_tokens = max_tokens

    def __call__(self, text: str) -> int:
        est = estimate_tokens(text)
        usable = self.budget.usable()
        if usable is None:
            return est
        return max(est, -(-self.budget.cost(text) * self.max_tokens // usable))
