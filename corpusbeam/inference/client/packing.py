"""Which inputs go in which request, and what a refusal says about the inputs sent.

``pack_requests`` cuts a batch into requests; ``screen`` keeps back the texts a
``TokenBudget`` knows cannot fit; ``learn_refusal`` teaches the budget from a refusal of an
input as too long; ``caused_by_inputs`` and ``input_may_fail_alone`` decide whether a
failed request is split, recorded against its inputs, or raised.
"""

from __future__ import annotations

from collections.abc import Sequence

from corpusbeam.inference.client.responses import input_position
from corpusbeam.inference.errors import (
    BadRequestError,
    ContentFilterError,
    DeadlineExceeded,
    PayloadTooLargeError,
    RateLimitError,
    StatusError,
    TransportError,
    UnprocessableError,
)
from corpusbeam.inference.token_budget import LengthRefusal, TokenBudget, length_refusal

__all__ = [
    "caused_by_inputs",
    "input_may_fail_alone",
    "learn_refusal",
    "pack_requests",
    "screen",
]


def pack_requests(weights: Sequence[int], max_count: int, max_weight: int | None) -> list:
    """Consecutive positions grouped into requests of at most ``max_count`` inputs and,
    when given, ``max_weight`` total weight (estimated tokens, or bytes for images).
    An input heavier than ``max_weight`` goes alone: the endpoint decides about it."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, w in enumerate(weights):
        full = len(current) >= max_count
        if current and (full or (max_weight is not None and total + w > max_weight)):
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += w
    if current:
        groups.append(current)
    return groups


def screen(budget: TokenBudget, positions: list[int], items: list, failures: dict) -> list[int]:
    """The positions whose texts the budget says fit; the others fail unsent."""
    if budget.usable() is None:
        return positions
    keep = []
    for p in positions:
        if budget.fits(items[p]):
            keep.append(p)
        else:
            failures[p] = PayloadTooLargeError(
                f"not sent: about {budget.cost(items[p])} tokens by this client's count, "
                f"more than the {budget.usable()} it sends the model (limit {budget.limit})",
                status=413,
                code="input_too_long",
                param="input",
            )
    return keep


def learn_refusal(budget: TokenBudget, exc: StatusError, positions: list[int], items) -> None:
    """Teach the budget what a refusal of one input as too long says."""
    refusal = length_refusal(exc)
    if refusal is None:
        return
    named = input_position(exc)
    if named is None and len(positions) == 1:
        named = 0
    if named is not None and 0 <= named < len(positions):
        budget.observe_refusal(items[positions[named]], refusal)
    elif refusal.limit is not None:
        budget.observe_refusal("", LengthRefusal(count=None, limit=refusal.limit))


def caused_by_inputs(exc: StatusError) -> bool:
    """Whether a refusal is about the inputs sent (so splitting the batch can help)."""
    if isinstance(exc, PayloadTooLargeError | ContentFilterError):
        return True
    param = exc.param or ""
    return isinstance(exc, BadRequestError | UnprocessableError) and param.startswith("input")


def input_may_fail_alone(exc: Exception) -> bool:
    """Whether ``exc`` can be recorded against inputs rather than stopping the run."""
    return isinstance(exc, TransportError | DeadlineExceeded | RateLimitError) or (
        isinstance(exc, StatusError) and exc.status >= 500
    )
