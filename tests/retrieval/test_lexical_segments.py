"""A folder built by the index job, its lexical index rewritten as segments (three a part,
then a delta segment and removed ids, as an update writes them): ``Searcher`` ranks as
with one segment, never returns a removed id, finds a re-added chunk by its new text."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpusbeam.cli.main import main
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.searcher import Searcher
from indexes.lexical.index import LEXICAL_DIR, encode_segment, lexical_info
from indexes.storage import versions
from indexes.storage.files import sha256
from indexes.storage.manifest import Manifest

ANIMALS = ["heron", "otter", "kingfisher", "badger", "swallow", "salmon", "beaver", "vole"]
PLACES = ["bridge", "quay", "mill", "estuary", "meadow", "harbour"]
QUERIES = ["heron bridge", "otter", "salmon estuary mill", "beaver meadow harbour", "vole"]


@pytest.fixture(scope="module")
def job_folder(tmp_path_factory) -> Iterator[Path]:
    corpus = tmp_path_factory.mktemp("lexseg") / "corpus"
    corpus.mkdir()
    for i, a in enumerate(ANIMALS):
        for j, p in enumerate(PLACES):
            words = [a, p, ANIMALS[(i + j) % 8], PLACES[(i * j) % 6], "river", "notes"]
            (corpus / f"{a}-{p}.txt").write_text(" ".join(words[: 3 + (i + j) % 4]) + ".\n")
    out = corpus.parent / "out"
    with running_endpoint(EndpointConfig(dimensions=32)) as ep:
        argv = ["index", str(corpus), "--output", str(out), "--endpoint", ep.url]
        assert main([*argv, "--runner=DirectRunner"]) == 0
        yield versions.current_version(out)  # the endpoint embeds hybrid searches' queries


def relayout(src: Path, dst: Path, delta=None, removed=None) -> None:
    """``src`` copied to ``dst`` with its lexical index as three segments a part, then
    ``delta`` (``(ids, texts)``) as a later segment and ``removed`` ids; the manifest
    updated with the new files' checksums."""
    shutil.copytree(src, dst)
    shutil.rmtree(dst / LEXICAL_DIR)
    m = Manifest.from_json((dst / "manifest.json").read_text())
    segments, blobs = [], {}
    for part in m.parts:
        t = pq.read_table(dst / f"{part['name']}.metadata.parquet", columns=["id", "text"])
        ids, texts = t.column("id").to_numpy(), t.column("text").to_pylist()
        for j, rows in enumerate(np.array_split(np.arange(len(ids)), 3)):
            name = f"{Path(part['name']).name}-{j}"
            entry, files = encode_segment(name, ids[rows], [texts[r] for r in rows])
            segments.append(entry)
            blobs |= files
    if delta is not None:
        entry, files = encode_segment("delta-00000", *delta)
        segments.append(entry)
        blobs |= files
    listed = []
    if removed is not None:
        blobs[f"{LEXICAL_DIR}/removed-00001.npy"] = b""
        listed.append(f"{LEXICAL_DIR}/removed-00001.npy")
    for rel, blob in blobs.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(blob)
    if removed is not None:
        np.save(dst / listed[0], np.asarray(removed, dtype=np.int64))
    files = {k: v for k, v in m.files.items() if not k.startswith(f"{LEXICAL_DIR}/")}
    for rel in blobs:
        files[rel] = {"sha256": sha256(dst / rel), "bytes": (dst / rel).stat().st_size}
    lexical = lexical_info(segments, listed)
    m = dataclasses.replace(m, lexical=lexical, files=dict(sorted(files.items())))
    (dst / "manifest.json").write_text(m.to_json())


def ranked(folder: Path, mode: str = "lexical", **kw) -> list[list[tuple[int, float]]]:
    with Searcher(folder) as s:  # verified: the rewritten manifest's checksums hold
        return [
            [(h.id, h.score) for h in hits] for hits in s.search_texts(QUERIES, 8, mode=mode, **kw)
        ]


def test_segments_rank_like_the_job_built_index(job_folder, tmp_path):
    relayout(job_folder, tmp_path / "seg")
    info = json.loads((tmp_path / "seg" / "manifest.json").read_text())["lexical"]
    assert len(info["segments"]) >= 3 and info["count"] == len(ANIMALS) * len(PLACES)
    one, many = ranked(job_folder), ranked(tmp_path / "seg")
    assert sum(len(r) for r in one) > 20
    for a, b in zip(one, many, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-5)
    assert ranked(job_folder, "hybrid") == ranked(tmp_path / "seg", "hybrid")
    with Searcher(tmp_path / "seg") as s:  # a filter across the segments, before top-k
        hits = s.search("heron river notes", k=3, mode="lexical", filter={"chunk": 0})
    assert hits and all(h.metadata["chunk"] == 0 for h in hits)


def test_removed_ids_and_a_re_added_chunk_through_the_searcher(job_folder, tmp_path):
    first = ranked(job_folder)
    gone, changed = first[0][0][0], first[1][0][0]  # the best hits of two queries
    relayout(
        job_folder, tmp_path / "upd", delta=(np.array([changed]), ["zebra crossing"]),
        removed=[gone, changed],
    )  # fmt: skip
    after = ranked(tmp_path / "upd")
    assert all(gone != i and changed != i for row in after for i, _ in row)
    with Searcher(tmp_path / "upd") as s:
        hits = s.search("zebra", k=3, mode="lexical")
        assert [h.id for h in hits] == [changed]  # its new text, in the delta segment
        assert s.lexical.count == len(ANIMALS) * len(PLACES) - 1
