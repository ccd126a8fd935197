"""The local endpoint's own requests a second: hash model, batch 96 and batch 1.

The endpoint runs in a child process (``running_endpoint(..., subprocess=True)``) so that
the clients here do not share its GIL. ``--clients`` threads, each with its own
``httpx.Client`` (keep-alive), send requests back to back for ``--seconds``. The baseline is
``GET /info`` on the same endpoint with the same clients: the HTTP and framework floor, so
``ratio`` is the share of that rate left once a request carries a batch through the model and
the JSON encoder. Texts are ~25-word sentences; answers are ``float`` unless ``--encoding``.
"""

from __future__ import annotations

import argparse
import threading
import time

import httpx

from benchmarks._common import emit
from corpusbeam.inference.server import API_VERSION, EndpointConfig, running_endpoint

__all__ = ["main"]

_VOCABULARY = (
    "beam pipeline vector index faiss embedding query document image batch encode "
    "decode quantise cluster shard merge search recall latency throughput budget"
)
_WORDS = _VOCABULARY.split()


def _texts(n: int, offset: int = 0) -> list[str]:
    return [
        " ".join(_WORDS[(i * 7 + j * 3 + offset) % len(_WORDS)] for j in range(25))
        for i in range(n)
    ]


def _measure(url: str, *, clients: int, seconds: float, request) -> float:
    """Requests a second across ``clients`` threads calling ``request(client)``."""
    counts = [0] * clients
    errors: list[BaseException] = []
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            request(c)  # warm up the connection
            barrier.wait()
            try:
                while time.perf_counter() < stop:
                    request(c)
                    counts[k] += 1
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--encoding", default="float")
    parser.add_argument("--dimensions", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="short run")
    args = parser.parse_args(argv)
    seconds = 0.5 if args.quick else args.seconds
    params = {"api-version": API_VERSION}
    cfg = EndpointConfig(model="hash", dimensions=args.dimensions)
    with running_endpoint(cfg, subprocess=True) as ep:

        def info(c: httpx.Client) -> None:
            c.get("/info", params=params).raise_for_status()

        floor = _measure(ep.url, clients=args.clients, seconds=seconds, request=info)
        emit("endpoint_rps", "info_requests_per_s", round(floor, 1), "requests/s",
             clients=args.clients)  # fmt: skip
        for batch in (96, 1):
            body = {"input": _texts(batch), "encoding_format": args.encoding}

            def embed(c: httpx.Client, body=body) -> None:
                c.post("/embeddings", params=params, json=body).raise_for_status()

            rps = _measure(ep.url, clients=args.clients, seconds=seconds, request=embed)
            common = {
                "ratio": round(rps / floor, 4),
                "baseline": "GET /info requests/s",
                "baseline_value": round(floor, 1),
                "batch": batch,
                "clients": args.clients,
                "dimensions": args.dimensions,
                "encoding": args.encoding,
            }
            emit("endpoint_rps", f"batch{batch}_requests_per_s", round(rps, 1), "requests/s",
                 **common)  # fmt: skip
            emit("endpoint_rps", f"batch{batch}_vectors_per_s", round(rps * batch, 1),
                 "vectors/s", **common)  # fmt: skip


if __name__ == "__main__":
    main()
