"""The service's added latency at concurrency 1 (``benchmarks.search_latency``): each query
searched directly and then through ``corpusbeam serve``, interleaved, so both see the same
machine load; the median of the per-query differences. ``added`` times httpx requests,
``added_minimal_client`` one kept-alive ``http.client`` connection."""

from __future__ import annotations

import http.client
import json
import os
import time
from urllib.parse import urlsplit

import httpx
import numpy as np

__all__ = ["added", "added_minimal_client"]


def added(folder, url: str, xq: np.ndarray, bodies: list[dict], k: int) -> dict:
    """The service's added latency at concurrency 1: each query searched directly and then
    through the service, interleaved, so both see the same machine load; the median of
    the per-query differences."""
    direct_s, service_s, handler_s = [], [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/search", json=bodies[0]).raise_for_status()
        for i, body in enumerate(bodies):
            t0 = time.perf_counter()
            folder.search(xq[i : i + 1], k)
            t1 = time.perf_counter()
            r = client.post("/search", json=body)
            t2 = time.perf_counter()
            r.raise_for_status()
            direct_s.append(t1 - t0)
            service_s.append(t2 - t1)
            handler_s.append(r.json()["took_ms"] / 1000)
    d, s, h = (np.asarray(x) * 1000 for x in (direct_s, service_s, handler_s))
    return {
        "value": round(float(np.median(s - d)), 3),
        "unit": "ms at p50",
        "direct_p50_ms": round(float(np.median(d)), 3),
        "service_p50_ms": round(float(np.median(s)), 3),
        "service_search_p50_ms": round(float(np.median(h)), 3),
        "http_and_json_p50_ms": round(float(np.median(s - h)), 3),
        "concurrency": 1,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "method": "interleaved direct/service per query vector; median of differences",
        "target": "< 2 ms",
    }


def added_minimal_client(folder, url: str, xq: np.ndarray, bodies: list[dict], k: int) -> dict:
    """``added`` again, with a minimal client (``http.client`` on one kept-alive connection,
    bodies serialised before the clock starts), so the figure is the service's own cost
    and not also the benchmark's HTTP library's (httpx spends ~0.5 ms a request itself)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    raw = [json.dumps(b).encode() for b in bodies]
    headers = {"Content-Type": "application/json"}
    direct_s, service_s = [], []
    try:
        conn.request("POST", "/search", body=raw[0], headers=headers)
        conn.getresponse().read()
        for i, body in enumerate(raw):
            t0 = time.perf_counter()
            folder.search(xq[i : i + 1], k)
            t1 = time.perf_counter()
            conn.request("POST", "/search", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            t2 = time.perf_counter()
            if response.status != 200:
                raise RuntimeError(f"/search answered {response.status}")
            direct_s.append(t1 - t0)
            service_s.append(t2 - t1)
    finally:
        conn.close()
    d, s = (np.asarray(x) * 1000 for x in (direct_s, service_s))
    return {
        "value": round(float(np.median(s - d)), 3),
        "unit": "ms at p50",
        "direct_p50_ms": round(float(np.median(d)), 3),
        "service_p50_ms": round(float(np.median(s)), 3),
        "client": "http.client, one kept-alive connection",
        "concurrency": 1,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "target": "< 2 ms",
    }
