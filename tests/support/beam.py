"""Running real Beam pipelines in tests, on each runner that works offline, and checking
their outputs with matchers that run inside the pipeline (so they work on every runner).
Beam loads when a pipeline runs, not when ``RUNNERS`` is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import apache_beam as beam

RUNNERS = {
    "direct": ["--runner=DirectRunner"],
    "portable": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
    "multiprocess": [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}


def run(build: Callable[[beam.Pipeline], None], runner: str = "direct"):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    p = beam.Pipeline(options=PipelineOptions(RUNNERS[runner]))
    build(p)
    result = p.run()
    result.wait_until_finish()
    return result


def exactly(expected: dict[str, str]):
    """Matcher for (id, message) pairs: each expected id once, its message containing
    the expected fragment, and nothing else."""
    from apache_beam.testing.util import BeamAssertException

    def check(actual):
        seen: dict[str, str] = {}
        for key, message in actual:
            if key in seen:
                raise BeamAssertException(f"{key!r} came out twice")
            seen[key] = str(message)[:300]
        missing = sorted(set(expected) - set(seen))
        extra = sorted(set(seen) - set(expected))
        if missing or extra:
            raise BeamAssertException(f"missing {missing}, unexpected {extra}: {seen}")
        wrong = {k: seen[k] for k, frag in expected.items() if frag not in seen[k]}
        if wrong:
            raise BeamAssertException(f"messages without the expected reason: {wrong}")

    return check
