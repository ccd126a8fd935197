"""The workers read a part's vectors a batch at a time (training sample, IVF shards): the
index is the same as with whole parts."""

from __future__ import annotations

import json

import faiss
import numpy as np

from corpusbeam.inference.server import EndpointConfig, running_endpoint
from indexes.reader import open_index
from indexes.storage import versions
from pipeline.index_job import IndexJobConfig, run_index_job
from transforms.build_index import training


def _corpus(root, n: int = 400):
    root.mkdir()
    lines = [
        json.dumps({"id": f"d{i}", "text": f"Document {i} is about topic {i % 17}."})
        for i in range(n)
    ]
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_batched_part_reads_build_the_same_ivf_index(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "corpus")
    lists = {}
    with running_endpoint(EndpointConfig(dimensions=32)) as ep:
        for batch_rows in (training.BATCH_ROWS, 7):
            monkeypatch.setattr(training, "BATCH_ROWS", batch_rows)
            out = tmp_path / f"out-{batch_rows}"
            result = run_index_job(
                IndexJobConfig(
                    inputs=(str(corpus),),
                    output=str(out),
                    endpoint=ep.url,
                    index="IVF8,Flat",
                    shards=3,
                    pipeline_args=("--runner=DirectRunner",),
                )
            )
            assert result.exit_code == 0 and result.report["counts"]["indexed"] == 400
            folder = open_index(versions.resolve_index_folder(out))
            ivf = faiss.extract_index_ivf(folder.index)
            lists[batch_rows] = [
                (
                    faiss.rev_swig_ptr(ivf.invlists.get_ids(i), ivf.invlists.list_size(i)).copy(),
                    faiss.rev_swig_ptr(
                        ivf.invlists.get_codes(i), ivf.invlists.list_size(i) * ivf.code_size
                    ).copy(),
                )
                for i in range(ivf.nlist)
            ]
    whole, batched = lists.values()
    assert sum(len(ids) for ids, _ in whole) == 400
    for (ids_a, codes_a), (ids_b, codes_b) in zip(whole, batched, strict=True):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(codes_a, codes_b)
