"""The launcher's memory does not grow with the corpus: nothing is gathered on it.

Runs ``corpusbeam index`` in a child process on the DirectRunner (its workers run inside
the launcher, so every stage's memory shows in it) at 25,000 and 100,000 chunks, sampling
the launcher's resident memory and its whole process tree's (the reference endpoint is a
child) from /proc every 0.1 s.

The runs build the lexical index too: each part's BM25 segment is written by the worker
that writes the part, so the launcher holds no postings (before, its in-memory build held
about 115 MB at 200,000 chunks of this corpus). What this test bounds is the whole job:
reading, embedding, parts and their segments, training, shards, merge, recall, tuning.
Both runs use the default ``--shards auto``, which cuts each corpus into parts of about
12,500 rows (``pipeline.shard_count``: 2 parts at 25,000, 8 at 100,000): a worker holds
one part at a time, so a part's size is what a worker's memory follows, and on the
DirectRunner the workers are the launcher. With ``--shards 8`` at both sizes (a part
four times larger at 200,000 than at 50,000) the difference was 177-195 MB; at 25,000
and 100,000 with ``--shards auto`` it is about 70 MB (the HNSW index the launcher builds
at the finish: 100,000 vectors and their links); gathering the 75,000 more chunks as
Python objects would add more (an estimate: about 110 MB at 1.5 KB a chunk).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks._rss import RssSampler
from benchmarks.index_job import write_corpus
from tests.support.cli import start_cli


def _peak(corpus: Path, output: Path) -> tuple[RssSampler, dict]:
    proc = start_cli(
        "index",
        str(corpus),
        "--output",
        str(output),
        "--dimensions",
        "64",
        "--json",
        "--runner=DirectRunner",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(proc.pid).start()
    out, err = proc.communicate()
    sampler.stop()
    assert proc.returncode == 0, err[-2000:]
    return sampler, json.loads(out)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_launcher_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    peaks = {}
    for n in (25_000, 100_000):
        write_corpus(tmp_path / f"c{n}", n)
        # The default --shards auto: parts of the same size at both sizes (12,500 rows). A
        # worker holds one part at a time, so what may grow with N is the part.
        sampler, report = _peak(tmp_path / f"c{n}", tmp_path / f"o{n}")
        assert report["counts"]["indexed"] == n
        assert report["job"]["shards"] == n // 12_500
        peaks[n] = {
            "launcher": round(sampler.peak_launcher, 1),
            "launcher_anonymous": round(sampler.peak_launcher_anon, 1),
            "tree": round(sampler.peak_tree, 1),
            "index": report["index"]["factory"],
            "shards": report["job"]["shards"],
        }
    print(json.dumps({"peaks_mib": peaks}))
    small, large = peaks[25_000]["launcher"], peaks[100_000]["launcher"]
    # 4x the chunks, the vectors and texts never gathered: at most 150 MB more.
    assert large - small <= 150, peaks
