"""Counters for ``GET /metrics``, written in the Prometheus text format by hand.

Series (all counters):

- ``corpusbeam_requests_total{route, status}``: answers by route and HTTP status; a dropped
  connection counts with ``status="dropped"``;
- ``corpusbeam_inputs_total{route}`` and ``corpusbeam_tokens_total{route}``: inputs embedded
  and their prompt tokens, for successful requests;
- ``corpusbeam_errors_total{code}``: error answers by ``error.code``;
- ``corpusbeam_faults_total{kind}``: injected faults.

``parse_metrics`` reads the text back into ``{'name{labels}': value}`` for tests and tools.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Metrics", "parse_metrics"]

_HELP = {
    "corpusbeam_requests_total": "HTTP answers by route and status.",
    "corpusbeam_inputs_total": "Inputs embedded by route.",
    "corpusbeam_tokens_total": "Prompt tokens embedded by route.",
    "corpusbeam_errors_total": "Error answers by error code.",
    "corpusbeam_faults_total": "Injected faults by kind.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    """Counts exactly (``:g`` would print 1234567 as 1.23457e+06)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    """Thread-safe counters, rendered by ``render``."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] += amount

    def render(self) -> str:
        with self._lock:
            items = sorted(self._counts.items())
        lines = []
        for name, help_text in _HELP.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            for (n, labels), value in items:
                if n != name:
                    continue
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{n}{{{label_text}}} {_number(value)}")
        return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text to ``{'name{labels}': value}`` (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out
