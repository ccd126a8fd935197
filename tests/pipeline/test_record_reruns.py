"""A rerun over JSONL, CSV and Parquet files embeds only the records that changed: the
unchanged ones are left out before chunking (their digests are kept with the version)
and their rows stay in the base parts; deleted records drop out; the result is a clean
run's. One corpus of the three formats (and a JSONL file without ids), run three times
and once clean, shared by the assertions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusbeam.errors import IndexFolderError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.reader import open_index
from indexes.storage.ids import chunk_id
from pipeline.index_job import run_index_job
from tests.support.cli import run_cli
from tests.support.jobs import WORDS
from tests.support.jobs import update_job as job

N = 40  # records a file: 160 rows, so the second update's delta stays under the layer limit


def _text(key: str, n: int) -> str:
    return f"Record {key} tells of the {WORDS[n % 10]} and the {WORDS[(n * 7) % 10]} #{n * 31}."


class Corpus:
    """Four files of N records: ``rows[fmt]`` maps id -> text (``noid``: by position);
    five records that never change (``e.jsonl``) and a note edited each step (``f.md``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.rows = {
            fmt: {f"{fmt}{i}": _text(f"{fmt}{i}", i) for i in range(N)}
            for fmt in ("jsonl", "csv", "parquet", "noid")
        }
        self.notes: list[int] = []
        lines = [json.dumps({"id": f"e{i}", "text": _text(f"e{i}", i)}) for i in range(5)]
        (folder / "e.jsonl").write_text("\n".join(lines) + "\n")  # never changes: skipped
        self.write()

    def write(self) -> None:
        def records(fmt: str) -> list[dict]:
            return [{"id": k, "text": t, "tag": k[-1]} for k, t in self.rows[fmt].items()]

        lines = [json.dumps(r) for r in records("jsonl")]
        (self.folder / "a.jsonl").write_text("\n".join(lines) + "\n")
        with (self.folder / "b.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, ["id", "text", "tag"])
            writer.writeheader()
            writer.writerows(records("csv"))
        pq.write_table(pa.Table.from_pylist(records("parquet")), self.folder / "c.parquet")
        lines = [json.dumps({"text": t}) for t in self.rows["noid"].values()]
        (self.folder / "d.jsonl").write_text("\n".join(lines) + "\n")
        (self.folder / "f.md").write_text(f"A note on the {WORDS[len(self.notes) % 10]}.\n")

    def change(self, step: int) -> dict[str, str]:
        """In each file with ids: one record edited, one added, one deleted; in the file
        without ids, one edited in place. Returns fmt -> the edited record's id."""
        edited = {}
        for fmt, rows in self.rows.items():
            keys = list(rows)
            key = keys[3]
            rows[key] = _text(key, 1000 * step + 1) + " The lighthouse keeper counted gulls."
            edited[fmt] = key
            if fmt != "noid":
                del rows[f"{fmt}{7 + step}"]
                rows[f"{fmt}new{step}"] = _text(f"{fmt}new{step}", 500 + step)
        self.notes.append(step)  # f.md, not a record file, is read and embedded again
        self.write()
        return edited


def _inputs(ep) -> int:
    return int(sum(v for k, v in ep.metrics().items() if k.startswith("corpusbeam_inputs_total")))


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        yield ep


@pytest.fixture(scope="module")
def runs(tmp_path_factory, endpoint):
    """(the runs' results, the inputs each sent to the endpoint, the corpus, the edits,
    a clean run over the last corpus)."""
    tmp = tmp_path_factory.mktemp("records")
    corpus = Corpus(tmp / "corpus")
    out = tmp / "out"
    results, sent, edits = [], [], []
    for step in range(3):
        if step:
            edits.append(corpus.change(step))
        before = _inputs(endpoint)
        results.append(run_index_job(job(corpus.folder, out, endpoint.url)))
        sent.append(_inputs(endpoint) - before)
    clean = run_index_job(job(corpus.folder, tmp / "clean", endpoint.url))
    return results, sent, corpus, edits, clean


def test_a_rerun_embeds_only_the_changed_and_added_records(runs):
    results, sent, _, _, _ = runs
    assert sent[0] == 4 * N + 5 + 1
    # one edited and one added in each file with ids, one edited in the file without, f.md
    assert sent[1] == 3 * 2 + 1 + 1 and sent[2] == 3 * 2 + 1 + 1
    counts = results[1].report["counts"]
    assert counts["records_unchanged"] == 3 * (N - 2) + (N - 1)
    assert counts["files_skipped"] == 1  # e.jsonl: the same size and time
    assert counts["embedded"] == 8 and counts["deleted"] == 3 and counts["indexed"] == 4 * N + 6
    # The third run reads the second's edited and added records again (their rows are in
    # the live delta parts); of those, only the one edited again is embedded.
    assert results[2].report["counts"]["records_unchanged"] == 3 * (N - 3) + (N - 1)
    assert open_index(results[2].folder).manifest.overlay is not None  # still layered


def test_deleted_records_are_gone_from_the_index_and_metadata(runs):
    results, _, corpus, _, _ = runs
    folder = open_index(results[2].folder)
    gone = [f"{fmt}{i}" for fmt in ("jsonl", "csv", "parquet") for i in (8, 9)]
    assert not set(gone) & set(folder.metadata().column("document_id").to_pylist())
    for doc in gone:
        with pytest.raises(IndexFolderError, match="removed"):
            folder.lookup(np.array([chunk_id(doc, 0)]))
    xq = np.random.default_rng(3).standard_normal((8, 64)).astype(np.float32)
    assert not np.isin(folder.search(xq, 40).I, [chunk_id(d, 0) for d in gone]).any()
    assert folder.parts.count == sum(len(r) for r in corpus.rows.values()) + 5 + 1


def test_the_rerun_equals_a_clean_run(runs):
    results, _, _, _, clean = runs
    a, b = open_index(results[2].folder), open_index(clean.folder)
    np.testing.assert_array_equal(a.parts.ids(), b.parts.ids())
    ma, mb = a.metadata(), b.metadata()
    assert ma.select(mb.column_names).equals(mb)
    for x, y in zip(a.vectors(), b.vectors(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_search_finds_the_changed_text(runs):
    results, _, corpus, edits, _ = runs
    key = edits[1]["csv"]
    query = corpus.rows["csv"][key]
    proc = run_cli("search", str(results[2].folder.parent.parent), query, "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["hits"]
    assert hits[0]["document_id"] == key and hits[0]["text"] == query
    assert "_record_digest" not in hits[0]["metadata"]  # kept for updates, not shown
