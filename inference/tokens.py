"""How many tokens a text costs, estimated before the endpoint counts them.

One estimate for everything that plans ahead of the endpoint: the chunker's chunk sizes
and the client's tokens-a-minute budget. The endpoint's own count comes back in
``usage``; the local reference endpoint's tokenizer is ``inference.server.tokens``.
"""

from __future__ import annotations

import math

__all__ = ["estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """About one token for every four UTF-8 bytes (at least one for a non-empty text)."""
    return math.ceil(len(text.encode("utf-8")) / 4)
