"""Counters for ``GET /metrics``, in the Prometheus text format (``corpusbeam.asgi.prometheus``).

Series (all counters):

- ``corpusbeam_requests_total{route, status}``: answers by route and HTTP status; a dropped
  connection counts with ``status="dropped"``;
- ``corpusbeam_inputs_total{route}`` and ``corpusbeam_tokens_total{route}``: inputs embedded
  and their prompt tokens, for successful requests;
- ``corpusbeam_errors_total{code}``: error answers by ``error.code``;
- ``corpusbeam_faults_total{kind}``: injected faults.
"""

from __future__ import annotations

from corpusbeam.asgi.prometheus import Counters, family, render

__all__ = ["Metrics"]

_HELP = {
    "corpusbeam_requests_total": "HTTP answers by route and status.",
    "corpusbeam_inputs_total": "Inputs embedded by route.",
    "corpusbeam_tokens_total": "Prompt tokens embedded by route.",
    "corpusbeam_errors_total": "Error answers by error code.",
    "corpusbeam_faults_total": "Injected faults by kind.",
}


class Metrics:
    """Thread-safe counters, rendered by ``render``."""

    def __init__(self) -> None:
        self._counters = Counters()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._counters.inc(name, amount, **labels)

    def render(self) -> str:
        lines: list[str] = []
        for name, help_text in _HELP.items():
            lines += family(name, "counter", help_text, self._counters.samples(name))
        return render(lines)
