"""Client throughput against a latency-bound endpoint, and the official SDK's plain loop.

The endpoint adds 200 ms to every request and serves at most 8 at once; batches are 96
short texts. The limit is 8 x 96 / 0.2 s = 3,840 inputs a second. Prints JSON lines:
inputs a second and the ratio to that limit, for corpusbeam's client and for the
official ``azure-ai-inference`` SDK called in a plain loop (what users write today).

    python -m benchmarks.client_throughput [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from functools import partial

from benchmarks._common import emit as _emit
from corpusbeam.inference.client import AsyncEmbeddingsClient, ClientSettings
from corpusbeam.inference.server import EndpointConfig, running_endpoint

LATENCY_S, CONCURRENCY, BATCH = 0.2, 8, 96
LIMIT = CONCURRENCY * BATCH / LATENCY_S


emit = partial(_emit, "client_throughput")  # emit(metric=..., value=..., unit=..., **extra)


def texts(n: int) -> list[str]:
    return [f"doc {i}" for i in range(n)]


async def ours(url: str, seconds: float) -> float:
    settings = ClientSettings(endpoint=url, max_concurrency=CONCURRENCY, max_inputs=BATCH)
    async with AsyncEmbeddingsClient(settings) as client:
        await client.embed_texts(texts(BATCH))  # warm the connections
        n = int(LIMIT * seconds)
        start = time.perf_counter()
        result = await client.embed_texts(texts(n))
        elapsed = time.perf_counter() - start
    assert result.vectors.shape[0] == n and not result.failures
    return n / elapsed


def sdk_loop(url: str, seconds: float) -> float:
    from azure.ai.inference import EmbeddingsClient
    from azure.core.credentials import AzureKeyCredential

    client = EmbeddingsClient(endpoint=url, credential=AzureKeyCredential("unused"))
    batches = max(3, int(seconds / LATENCY_S))
    client.embed(input=texts(BATCH))
    start = time.perf_counter()
    for _ in range(batches):
        client.embed(input=texts(BATCH))
    elapsed = time.perf_counter() - start
    client.close()
    return batches * BATCH / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    cfg = EndpointConfig(
        latency_ms=(LATENCY_S * 1000, LATENCY_S * 1000), max_concurrency=CONCURRENCY
    )
    with running_endpoint(cfg, subprocess=True) as ep:
        rate = asyncio.run(ours(ep.url, args.seconds))
        emit(
            metric="inputs_per_second",
            client="corpusbeam",
            value=round(rate, 1),
            unit="inputs/s",
            limit=LIMIT,
            ratio_to_limit=round(rate / LIMIT, 3),
        )
        base = sdk_loop(ep.url, min(args.seconds, 6.0))
        emit(
            metric="inputs_per_second",
            client="azure-ai-inference plain loop",
            value=round(base, 1),
            unit="inputs/s",
            limit=LIMIT,
            ratio_to_limit=round(base / LIMIT, 3),
        )
        emit(metric="speedup_over_sdk_loop", value=round(rate / base, 2), unit="x")


if __name__ == "__main__":
    main()
