"""The hash model's tokenizer: words and punctuation, nothing learnt.

A token is a run of word characters (letters, digits, underscore; Unicode-aware) or a single
character that is neither a word character nor whitespace. So ``"Don't stop!"`` is five
tokens: ``Don``, ``'``, ``t``, ``stop``, ``!``. Counting is what usage, the per-input limit
and the tokens-a-minute budget use; the hash model's word features use the lower-cased word
tokens. (The minilm model counts with its own WordPiece tokenizer instead.)
"""

from __future__ import annotations

import re

__all__ = ["count_tokens", "tokenize", "words"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``, in order (see the module docstring)."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens ``text`` has."""
    return sum(1 for _ in _TOKEN.finditer(text))


def words(text: str) -> list[str]:
    """The lower-cased word tokens of ``text`` (punctuation left out)."""
    return _WORD.findall(text.lower())
