"""The client against a rate-limited endpoint: how close to the quota, how few 429s.

The endpoint allows 600 requests a minute (sliding window, 429 + Retry-After beyond),
adds no latency, and the client does not know the quota: it learns it from the 429s.
Workers send one-input requests for two minutes. Prints JSON lines: achieved requests a
minute as a ratio of 600 (target >= 0.9) and 429s per success (target <= 0.2).

    python -m benchmarks.client_rate_limit [--seconds 120] [--rpm 600]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from functools import partial

from benchmarks._common import emit as _emit
from corpusbeam.inference.client import AsyncEmbeddingsClient, ClientSettings
from corpusbeam.inference.server import EndpointConfig, running_endpoint

emit = partial(_emit, "client_rate_limit")  # emit(metric=..., value=..., unit=..., **extra)


async def run(url: str, seconds: float, workers: int) -> tuple[int, int, float]:
    settings = ClientSettings(endpoint=url, max_concurrency=workers, max_inputs=1)
    successes = 0
    async with AsyncEmbeddingsClient(settings) as client:
        start = time.monotonic()

        async def worker(w: int) -> None:
            nonlocal successes
            i = 0
            while True:
                await client.embed_texts([f"worker {w} text {i}"])
                if time.monotonic() - start <= seconds:
                    successes += 1
                i += 1

        tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - start
        return successes, client.stats.throttled, min(elapsed, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with running_endpoint(EndpointConfig(rpm=args.rpm), subprocess=True) as ep:
        ok, throttled, elapsed = asyncio.run(run(ep.url, args.seconds, args.workers))
        server_429 = ep.metrics()
    achieved = ok / (elapsed / 60)
    emit(
        metric="requests_per_minute",
        value=round(achieved, 1),
        unit="req/min",
        quota=args.rpm,
        ratio_to_quota=round(achieved / args.rpm, 3),
        seconds=elapsed,
    )
    emit(
        metric="429_per_success",
        value=round(throttled / max(ok, 1), 4),
        unit="ratio",
        throttled=throttled,
        successes=ok,
    )
    emit(
        metric="server_counters",
        unit="counts",
        value={k: v for k, v in server_429.items() if "429" in k},
    )


if __name__ == "__main__":
    main()
