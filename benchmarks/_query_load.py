"""Searching what a benchmark built, the way users do: ``corpusbeam search`` processes and a
``corpusbeam serve`` child under load from several clients.

A benchmark that builds at 100k or 1M ends with ``query_load``: it proves that the
commands users run answer on what the job really wrote, and prints their latency. A
query fails when its command exits non-zero (a crash shows as a signal), the service
answers anything but 200 or drops the connection, or no hit comes back.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks._common import emit

__all__ = ["query_load", "search_commands", "serve_load", "serving"]

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def _ended(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def search_commands(target: str, queries: Sequence[str], *, parallel: int = 2) -> dict:
    """Each query through its own ``corpusbeam search TARGET QUERY --json`` process, timed
    from the process's start to its exit, ``parallel`` at a time."""
    errors: list[str] = []

    def one(query: str) -> float | None:
        cmd = [sys.executable, "-m", "corpusbeam", "search", target, query, "--json", "-k", "10"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
        seconds = time.perf_counter() - started
        if proc.returncode == 0 and json.loads(proc.stdout)["hits"]:
            return seconds
        errors.append(f"{_ended(proc.returncode)}: {proc.stderr.strip()[-300:]}")
        return None

    with ThreadPoolExecutor(parallel) as pool:
        times = [t for t in pool.map(one, queries) if t is not None]
    return {
        "queries": len(queries),
        "failed": len(queries) - len(times),
        "p50_s": round(statistics.median(times), 3) if times else None,
        "p99_s": round(_percentile(times, 99), 3) if times else None,
        "first_error": errors[0] if errors else None,
    }


@contextmanager
def serving(target: str, *, poll_interval: float = 1.0) -> Iterator[tuple[str, int]]:
    """``corpusbeam serve TARGET`` in a child process, ready: (its URL, its pid)."""
    cmd = [sys.executable, "-m", "corpusbeam", "serve", target, "--port", "0"]
    cmd += ["--log-level", "warning", "--poll-interval", str(poll_interval)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("corpusbeam search: listening on "):
            proc.wait(timeout=60)
            raise SystemExit(f"serve {target} did not start: {_ended(proc.returncode)}")
        url = line.rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 600
        while httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve {target} never got ready")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


def _memory(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak, MiB (/proc/PID/status)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def serve_load(url: str, pid: int, queries: Sequence[str], *, clients: int = 4) -> dict:
    """``queries`` sent as ``POST /search`` by ``clients`` threads, each on its own
    connection, one request at a time."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(share: Sequence[str]) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for query in share:
                started = time.perf_counter()
                try:
                    r = http.post("/search", json={"query": query, "k": 10})
                    ok = r.status_code == 200 and bool(r.json()["hits"])
                    why = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                seconds = time.perf_counter() - started
                with lock:
                    (times.append(seconds) if ok else errors.append(why))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(queries[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "queries": len(queries),
        "clients": clients,
        "failed": len(errors),
        "p50_ms": round(statistics.median(times) * 1000, 2) if times else None,
        "p99_ms": round(_percentile(times, 99) * 1000, 2) if times else None,
        "queries_per_s": round(len(times) / wall, 1),
        "memory_mib": _memory(pid),
        "first_error": errors[0] if errors else None,
    }


def query_load(
    bench: str,
    target: str,
    queries: Sequence[str],
    *,
    commands: int,
    requests: int,
    clients: int = 4,
    **extra: object,
) -> None:
    """Search ``target`` through ``commands`` ``corpusbeam search`` processes and
    ``requests`` ``POST /search`` to a ``corpusbeam serve`` child; print both."""

    def cycled(n: int) -> list[str]:
        return [queries[i % len(queries)] for i in range(n)]

    if commands:
        res = search_commands(target, cycled(commands))
        note = "whole corpusbeam search processes, from process start to exit"
        emit(bench, "search_command_p50", res.pop("p50_s"), "s", **res, **extra, note=note)
    if requests:
        started = time.perf_counter()
        with serving(target) as (url, pid):
            ready = time.perf_counter() - started
            res = serve_load(url, pid, cycled(requests), clients=clients)
        note = "POST /search to a corpusbeam serve child"
        extra = {**extra, "serve_ready_s": round(ready, 2), "note": note}
        emit(bench, "serve_p50", res.pop("p50_ms"), "ms", **res, **extra)
