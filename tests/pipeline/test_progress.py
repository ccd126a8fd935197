"""The progress channel on its own: worker counters reach the launcher's tracker over
loopback UDP, and the tracker derives the stage, total and ETA from the counts."""

from __future__ import annotations

import os
import time

from pipeline.job import tracking as launcher
from pipeline.job.tracking import MATCHERS, ProgressTracker, tracking
from transforms import counters as progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counters_reach_the_tracker_and_the_variable_is_restored():
    seen = []
    assert progress.ENV not in os.environ
    with tracking(1, seen.append, interval=0.05) as tracker:
        assert progress.ENV in os.environ
        c = progress.counter("chunks")
        for _ in range(7):
            c.inc()
        progress.counter("inputs_embedded").inc(5)
        progress.latency(42)
        progress.watch("in_flight", lambda: 3)
        time.sleep(3 * progress.FLUSH_SECONDS)
        mid = tracker.snapshot()
        assert mid.in_flight == 3
    assert progress.ENV not in os.environ
    final = seen[-1]
    assert final.get("chunks") == 7 and final.get("inputs_embedded") == 5
    assert 42 in tracker.record()["request_latency_ms"]
    assert tracker.record()["timeline"][-1]["chunks"] == 7


def test_the_stage_total_and_eta_follow_the_counts():
    clock = Clock()
    t = ProgressTracker(patterns=1, clock=clock)
    s = t.snapshot()
    assert (s.stage, s.total, s.eta) == ("reading", None, None)
    t.receive({"c": {"patterns_matched": MATCHERS, "files_matched": 10, "files_read": 9}})
    assert t.snapshot().stage == "reading"  # one file still unread: the total is not known
    t.receive({"c": {"files_read": 1, "chunks": 20, "inputs_embedded": 0}})
    clock.now += 1
    s = t.snapshot()
    assert (s.stage, s.total, s.eta) == ("embedding", 20, None)  # no rate yet
    clock.now += 2
    t.receive({"c": {"inputs_embedded": 10}})
    s = t.snapshot()
    assert s.rate == 10 / 3 and s.eta == 10 / (10 / 3)
    t.receive({"c": {"inputs_embedded": 8, "inputs_failed": 2}})
    clock.now += 1
    assert t.snapshot().stage == "building" and t.snapshot().eta == 0.0
    t.stage("merging")
    assert t.snapshot().stage == "merging"


def test_gauges_sum_the_latest_value_of_each_process():
    t = ProgressTracker(patterns=1)
    t.receive({"src": "a", "g": {"in_flight": 2}})
    t.receive({"src": "b", "g": {"in_flight": 3}})
    t.receive({"src": "a", "g": {"in_flight": 1}})
    assert t.snapshot().in_flight == 4


def test_a_long_run_keeps_a_bounded_time_series(monkeypatch):
    monkeypatch.setattr(launcher, "_MAX_POINTS", 10)
    clock = Clock()
    t = ProgressTracker(patterns=1, clock=clock)
    for _ in range(100):
        clock.now += 1
        t.receive({"c": {"inputs_embedded": 1}})
        t.sample()
    timeline = t.record()["timeline"]
    assert len(timeline) <= 11
    assert timeline[0]["t"] == 1 and timeline[-1]["inputs_embedded"] == 100  # ends kept
    assert [p["t"] for p in timeline] == sorted(p["t"] for p in timeline)
