"""Snippets: the best window of a long chunk for a query, with the query's terms marked.

    s = snippet("... a long chunk ...", "how do cats purr", words=30)
    s.text, s.start, s.end        # the window (characters start:end of the chunk)
    s.highlights                  # [(start, end), ...] of matching words, within s.text

A word of the chunk matches when one of its tokens is one of the query's tokens, both
read by the lexical index's analyzer (``indexes.lexical.analyzer.tokenize``): stopwords
("the", "in") are never tokens, so they are never marked; plurals, accents and code
identifiers' parts match as they do for BM25 ("cat" marks "cats", "join" marks
``os.path.join``). The window is ``words`` consecutive words with the most distinct query
terms, then the most matching words, then the earliest; a chunk no longer than
``words`` is its own window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corpusbeam.errors import ConfigError
from indexes.lexical.analyzer import tokenize

__all__ = ["DEFAULT_SNIPPET_WORDS", "Snippet", "snippet"]

DEFAULT_SNIPPET_WORDS = 40
_WORD = re.compile(r"\w+(?:(?:\.|::|-)\w+)*")  # the analyzer's runs


@dataclass(frozen=True)
class Snippet:
    """A window of a chunk's text; ``highlights`` are (start, end) offsets in ``text``."""

    text: str
    start: int
    end: int
    highlights: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "highlights": [list(h) for h in self.highlights],
        }


def snippet(text: str, query: str, *, words: int = DEFAULT_SNIPPET_WORDS) -> Snippet:
    """The best ``words``-word window of ``text`` for ``query`` (see the module)."""
    if isinstance(words, bool) or not isinstance(words, int) or words < 1:
        raise ConfigError("snippet", words, "must be a number of words >= 1")
    wanted = set(tokenize(query))
    spans = [m.span() for m in _WORD.finditer(text)]
    terms = [wanted.intersection(tokenize(text[a:b])) for a, b in spans]
    first = _best_window(terms, words) if len(spans) > words else 0
    window = spans[first : first + words]
    if not window or len(spans) <= words:
        start, end = 0, len(text)
    else:
        start = window[0][0] if first else 0
        end = window[-1][1] if first + words < len(spans) else len(text)
    marks = tuple(
        (a - start, b - start)
        for (a, b), t in zip(spans, terms, strict=True)
        if t and start <= a and b <= end
    )
    return Snippet(text[start:end], start, end, marks)


def _best_window(terms: list[set[str]], words: int) -> int:
    """The first word of the window with the most distinct terms, then most matches
    (windows that start at a matching word, or the last one, are the candidates)."""
    last = len(terms) - words
    starts = sorted({min(i, last) for i, t in enumerate(terms) if t} | {0})
    best, best_at = (-1, -1), 0
    for first in starts:
        window = terms[first : first + words]
        distinct = len(set().union(*window))
        score = (distinct, sum(1 for t in window if t))
        if score > best:
            best, best_at = score, first
    return best_at
