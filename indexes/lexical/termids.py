"""Numbering a segment's tokens while its texts are read: each distinct run of a text
(``indexes.lexical.analyzer.runs``) is tokenized and numbered once, and a text's token
numbers are its runs' numbers joined, with no Python step a token. Gives the same numbers,
in the same order, as numbering ``tokenize(text)`` token by token."""

from __future__ import annotations

from itertools import chain

from indexes.lexical.analyzer import run_tokens, runs

__all__ = ["TermIds"]

_MAX_RUNS = 1 << 20  # distinct runs remembered (then forgotten and numbered again)


class TermIds:
    """Token numbers in order of first appearance; ``vocab`` maps token -> number."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._runs: dict[str, tuple[int, ...]] = {}

    def _number(self, run: str) -> tuple[int, ...]:
        vocab = self.vocab
        ids = tuple(vocab.setdefault(t, len(vocab)) for t in run_tokens(run))
        if len(self._runs) >= _MAX_RUNS:
            self._runs.clear()
        self._runs[run] = ids
        return ids

    def extend(self, out: list[int], text: str | None) -> int:
        """Append ``text``'s token numbers to ``out``; returns how many (its length)."""
        if not text:
            return 0
        found = runs(text)
        got = list(map(self._runs.get, found))
        if None in got:
            got = [g if g is not None else self._number(r) for g, r in zip(got, found, strict=True)]
        before = len(out)
        out.extend(chain.from_iterable(got))
        return len(out) - before
