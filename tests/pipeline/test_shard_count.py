"""``--shards auto``: the chunk estimate from the inputs, and the count it gives."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.index_job import write_corpus
from corpusbeam.errors import ConfigError
from indexes.storage.part_ranges import id_starts, part_name
from pipeline.config import IndexJobConfig
from pipeline.shard_count import ROWS_PER_PART, auto_shards, estimate_chunks, live_shards


def _listing(root) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def _live(count: int, *, drop: int | None = None) -> SimpleNamespace:
    """A live version's manifest as ``live_shards`` reads it: parts over ``count`` ranges."""
    starts = [*id_starts(count).tolist(), (1 << 63) - 1]
    parts = [
        {"name": part_name(i), "id_min": starts[i] + 1, "id_max": starts[i + 1] - 1}
        for i in range(count)
        if i != drop
    ]
    return SimpleNamespace(parts=parts)


def test_records_are_counted_from_a_sample_of_their_lines(tmp_path):
    write_corpus(tmp_path / "small", 10_000)  # 20 JSONL files, one chunk a record
    estimate = estimate_chunks(_listing(tmp_path / "small"), max_tokens=512)
    assert 9_500 <= estimate <= 10_500
    # Records longer than a chunk count as several chunks each.
    long = tmp_path / "long.jsonl"
    long.write_text(
        "".join(json.dumps({"id": str(i), "text": "word " * 1000}) + "\n" for i in range(50))
    )
    assert estimate_chunks([(str(long), long.stat().st_size)], max_tokens=512) == 150


def test_text_images_and_parquet_are_estimated_by_their_own_measure(tmp_path):
    text = tmp_path / "a.md"
    text.write_text("x" * 20_480)  # 512 tokens x 4 bytes a chunk: 10 chunks
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG" + b"\0" * 50_000)
    table = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": list(range(1234)), "text": ["t"] * 1234}), table)
    files = [(str(p), p.stat().st_size) for p in (text, image, table)]
    assert estimate_chunks(files, max_tokens=512) == 10 + 1 + 1234


def test_auto_follows_the_corpus_size_and_keeps_the_live_count_within_2x(tmp_path):
    assert ROWS_PER_PART == 12_500
    write_corpus(tmp_path / "c", 50_000)
    assert auto_shards([str(tmp_path / "c")], max_tokens=512)[0] == 4
    # An update keeps the live version's count while the estimate is within 2x of it ...
    count, why = auto_shards([str(tmp_path / "c")], max_tokens=512, live=_live(8))
    assert (count, why.split(",")[0]) == (8, "8")
    assert auto_shards([str(tmp_path / "c")], max_tokens=512, live=_live(2))[0] == 2
    # ... and past it writes its parts with the new count.
    assert auto_shards([str(tmp_path / "c")], max_tokens=512, live=_live(16))[0] == 4
    assert auto_shards([str(tmp_path / "c")], max_tokens=512, live=_live(1))[0] == 4
    # A tiny corpus gets one part.
    (tmp_path / "one.txt").write_text("one document")
    assert auto_shards([str(tmp_path / "one.txt")], max_tokens=512)[0] == 1


def test_the_live_count_is_read_from_its_parts():
    assert live_shards(_live(8)) == 8
    assert live_shards(_live(8, drop=3)) == 8  # an empty part is not written
    assert live_shards(None) is None
    # A part whose id range does not agree with its number: not told.
    wrong = {"name": part_name(1), "id_min": 0, "id_max": 5}
    assert live_shards(SimpleNamespace(parts=[wrong])) is None


@pytest.mark.parametrize("bad", [0, -2, "many", 2.5, True])
def test_shards_is_auto_or_a_whole_number(bad):
    with pytest.raises(ConfigError, match="shards"):
        IndexJobConfig(inputs=("x",), output="out", shards=bad)
    assert IndexJobConfig(inputs=("x",), output="out").shards == "auto"
