"""The Prometheus text format (version 0.0.4), written by hand, and read back.

Each app keeps its own metric names and help texts and builds its page from these parts:
``family`` (the ``# HELP`` / ``# TYPE`` lines and the samples), ``sample`` (one line, label
values escaped, numbers exact), ``Counters`` (thread-safe labelled counters or gauges) and
``Histogram`` (cumulative buckets, ``_sum`` and ``_count``); ``render`` joins the lines.
``parse_metrics`` reads a page back into ``{'name{labels}': value}`` for tests and tools.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "CONTENT_TYPE",
    "Counters",
    "Histogram",
    "escape",
    "family",
    "number",
    "parse_metrics",
    "render",
    "sample",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str] | Iterable[tuple[str, str]]


def escape(value: str) -> str:
    """A label value escaped for the text format (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value: integers exactly (``:g`` would print 1234567 as 1.23457e+06), other
    numbers in shortest round-trip form."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def sample(name: str, value: float, labels: Labels = ()) -> str:
    """One sample line, ``name{k="v",...} value`` (no braces without labels)."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    text = ",".join(f'{k}="{escape(str(v))}"' for k, v in pairs)
    return f"{name}{{{text}}} {number(value)}" if text else f"{name} {number(value)}"


def family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    """A metric family: its ``# HELP`` and ``# TYPE`` lines, then ``samples``."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(lines: Iterable[str]) -> str:
    """The page: lines joined, ending in a newline."""
    return "\n".join(lines) + "\n"


class Counters:
    """Thread-safe values by ``(name, labels)``: ``inc`` for counters, ``set`` for gauges."""

    def __init__(self) -> None:
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = value

    def samples(self, name: str) -> list[str]:
        """The sample lines of ``name``, sorted by labels."""
        with self._lock:
            items = sorted((labels, v) for (n, labels), v in self._values.items() if n == name)
        return [sample(name, value, labels) for labels, value in items]


class Histogram:
    """Observations counted in cumulative buckets (``le`` upper bounds), with sum and count.
    Not locked: its owner holds a lock around ``observe`` and ``samples``."""

    def __init__(self, buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"buckets must be increasing and distinct, not {list(buckets)}")
        self.buckets = tuple(float(b) for b in buckets)
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, upper in enumerate(self.buckets):
            if value <= upper:
                self.counts[i] += 1

    def samples(self, name: str) -> list[str]:
        """``name_bucket{le=...}`` lines (``le`` as a float, ``+Inf`` last), sum, count."""
        lines = [
            sample(f"{name}_bucket", n, {"le": repr(upper)})
            for upper, n in zip(self.buckets, self.counts, strict=True)
        ]
        lines.append(sample(f"{name}_bucket", self.count, {"le": "+Inf"}))
        lines.append(f"{name}_sum {self.sum!r}")
        lines.append(sample(f"{name}_count", self.count))
        return lines


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text to ``{'name{labels}': value}`` (comments and blank lines skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out
