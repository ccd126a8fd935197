"""EmbedTexts in a Beam pipeline against a latency-bound endpoint.

50,000 short documents go through ``EmbedTexts`` on the DirectRunner, then on its
multi-processing mode with 2 workers. The endpoint adds 200 ms to every request and
serves at most 8 at once, so the limit is 8 x 96 / 0.2 s = 3,840 inputs a second.
Prints inputs a second and the ratio to that limit (target >= 0.8) for each runner.

    python -m benchmarks.embed_pipeline [--docs 50000]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks._common import emit as _emit
from corpusbeam.inference.client import ClientSettings
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from transforms import Document, EmbedTexts

LATENCY_S, CONCURRENCY, BATCH = 0.2, 8, 96
LIMIT = CONCURRENCY * BATCH / LATENCY_S
RUNNERS = {
    "DirectRunner": ["--runner=DirectRunner"],
    "DirectRunner multi_processing x2": [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}


emit = partial(_emit, "embed_pipeline")  # emit(metric=..., value=..., unit=..., **extra)


def document(i: int) -> Document:
    return Document.of(document_id=f"d{i}", uri=f"mem://d{i}", text=f"doc {i} topic {i % 97}")


def check_count(count: int, n: int) -> None:
    if count != n:
        raise AssertionError(f"embedded {count} of {n} documents")


def run_once(
    url: str, n: int, options: list[str], concurrency: int = CONCURRENCY
) -> tuple[float, int]:
    settings = ClientSettings(endpoint=url, max_concurrency=concurrency, max_inputs=BATCH)
    p = beam.Pipeline(options=PipelineOptions(options))
    documents = p | beam.Create(range(n)) | "Documents" >> beam.Map(document)
    embedded, _ = documents | EmbedTexts(settings, batch_size=CONCURRENCY * BATCH)
    _ = embedded | beam.combiners.Count.Globally() | beam.Map(check_count, n)
    start = time.perf_counter()
    p.run().wait_until_finish()
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument(
        "--client-concurrency",
        default="8,10",
        help="requests each worker keeps in flight; above the endpoint's 8 slots, its queue "
        "never runs dry while the worker is busy with Beam's own work",
    )
    args = parser.parse_args()
    cfg = EndpointConfig(latency_ms=(LATENCY_S * 1000,) * 2, max_concurrency=CONCURRENCY)
    with running_endpoint(cfg, subprocess=True) as ep:
        for name, options in RUNNERS.items():
            for concurrency in map(int, args.client_concurrency.split(",")):
                elapsed, n = run_once(ep.url, args.docs, options, concurrency)
                rate = n / elapsed
                emit(
                    metric="inputs_per_second",
                    runner=name,
                    client_concurrency=concurrency,
                    endpoint_slots=CONCURRENCY,
                    value=round(rate, 1),
                    unit="inputs/s",
                    seconds=round(elapsed, 2),
                    limit=LIMIT,
                    ratio_to_limit=round(rate / LIMIT, 3),
                    note="wall time of the whole pipeline, start-up included",
                )


if __name__ == "__main__":
    main()
