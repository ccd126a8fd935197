"""pipeline.training: the job's pipeline trains the index only when a rebuild is certain
before it starts (the rest of the behaviour: tests/pipeline/test_update_job.py)."""

from __future__ import annotations

import pytest

from pipeline.training import trains_up_front


@pytest.mark.parametrize(
    ("reusable", "rebuild", "factory", "live", "expected"),
    [
        (False, False, None, None, True),  # nothing to update from: a build
        (True, True, None, "HNSW32", True),  # --rebuild
        (True, False, "IVF16,Flat", "HNSW32", True),  # --index naming another type
        (True, False, None, "IVF16,Flat", False),  # an update: train only if it must rebuild
        (True, False, "IVF16,Flat", "IVF16,Flat", False),
    ],
)
def test_the_pipeline_trains_only_when_a_rebuild_is_certain(
    reusable, rebuild, factory, live, expected
):
    assert (
        trains_up_front(reusable=reusable, rebuild=rebuild, factory=factory, live_factory=live)
        is expected
    )
