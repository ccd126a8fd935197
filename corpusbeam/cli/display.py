"""The index job's live progress, shown: a redrawn line on a terminal, log lines elsewhere.

``display(mode, every)`` is a context manager yielding the ``on_progress`` callback that
``pipeline.job.run_index_job`` calls with a ``pipeline.job.tracking.Snapshot``:

- ``bar`` (``auto`` on a terminal): one line redrawn by rich in place, with a bar once the
  total is known;
- ``log`` (``auto`` otherwise: cron, CI, a pipe): one plain log line every ``every``
  seconds, and one at the end;
- ``off``: nothing.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.job.tracking import Snapshot

__all__ = ["MODES", "display"]

MODES = ("auto", "bar", "log", "off")

log = logging.getLogger(__name__)


@contextlib.contextmanager
def display(mode: str = "auto", every: float = 10.0) -> Iterator[Callable[[Snapshot], None] | None]:
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "off":
        yield None
    elif mode == "bar":
        with _bar() as update:
            yield update
    else:
        with _log_lines(every) as update:
            yield update


@contextlib.contextmanager
def _log_lines(every: float) -> Iterator[Callable[[Snapshot], None]]:
    lock = threading.Lock()
    state: dict = {"next": time.monotonic() + every, "last": None}

    def update(s: Snapshot) -> None:
        with lock:
            state["last"] = s
            if time.monotonic() >= state["next"]:
                state["next"] = time.monotonic() + every
                log.info("%s", s.line())

    yield update
    if state["last"] is not None:
        log.info("%s", state["last"].line())


@contextlib.contextmanager
def _bar() -> Iterator[Callable[[Snapshot], None]]:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    # Log lines go above the live line: rich swaps sys.stderr for a proxy while it runs,
    # and the log handlers writing to the real stderr are pointed at it meanwhile.
    real = sys.stderr
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is real
    ]
    with Live(console=console, auto_refresh=False, transient=False) as live:

        def update(s: Snapshot) -> None:
            live.update(_render(s), refresh=True)

        for h in handlers:
            h.setStream(sys.stderr)
        try:
            yield update
        finally:
            for h in handlers:
                h.setStream(real)


def _render(s: Snapshot):
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text  # plain text: "[reading]" is not markup

    top = Table.grid(padding=(0, 1))
    if s.total:
        top.add_row(
            ProgressBar(total=s.total, completed=min(s.done, s.total), width=24), Text(s.head())
        )
    else:
        top.add_row(Text(s.head()))
    return Group(top, Text(s.tail(), style="dim"))
