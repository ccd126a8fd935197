"""PreviousVersion: one frozen record that Beam can pickle with the DoFns holding it."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from apache_beam.internal import pickler

from tests.support.manifests import small_manifest
from transforms.build_index.parts import WritePartFn
from transforms.previous import PreviousVersion
from transforms.reuse import _SplitFn

BASE = [{"name": "part-00000", "rows": 3, "id_min": 1, "id_max": 9}]
DELTA = [{"name": "delta-00000", "rows": 2, "id_min": 4, "id_max": 5}]
REMOVED = [{"file": "removed-00000.npy", "count": 1}]


def _previous(**more) -> PreviousVersion:
    return PreviousVersion(
        folder="/out/versions/v1/",
        parts=BASE,
        delta_parts=DELTA,
        removed=REMOVED,
        count=4,
        width=16,
        rescore_dtype="int8",
        layered=True,
        **more,
    )


def test_collections_are_tuples_and_the_folder_has_no_trailing_slash():
    p = _previous(skipped=["b.txt", "a.txt"])
    assert p.folder == "/out/versions/v1"
    assert p.parts == tuple(BASE) and p.delta_parts == tuple(DELTA)
    assert p.removed == tuple(REMOVED) and p.skipped == ("b.txt", "a.txt")


def test_it_is_frozen_and_replace_makes_a_derived_copy():
    p = _previous()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.layered = False  # type: ignore[misc]
    q = dataclasses.replace(p, shards=4, skipped=["x"])
    assert (q.shards, q.skipped) == (4, ("x",))
    assert (p.shards, p.skipped) == (1, ())
    assert dataclasses.replace(q, shards=1, skipped=()) == p


@pytest.mark.parametrize(
    "dumps, loads", [(pickle.dumps, pickle.loads), (pickler.dumps, pickler.loads)]
)
def test_pickles_round_trip(dumps, loads):
    p = _previous(shards=3, skipped=["a.txt"])
    back = loads(dumps(p))
    assert back == p and type(back) is PreviousVersion
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.count = 0  # type: ignore[misc]


def test_the_dofns_holding_it_pickle():
    p = _previous(shards=3, skipped=["a.txt"])
    write_part = pickler.loads(pickler.dumps(WritePartFn("/out/v2", 3, "float", p, True)))
    split = pickler.loads(pickler.dumps(_SplitFn(p)))
    assert write_part._previous == p and split._previous == p


def test_from_a_manifest():
    built = small_manifest(
        count=4,
        parts=BASE,
        overlay={"parts": DELTA, "removed": REMOVED, "base": "v0"},
        rescore={"file": ".rescore.npy", "dtype": "int8", "factor": 4},
    )
    p = PreviousVersion.from_manifest("/out/versions/v1", built, layered=True)
    assert p == dataclasses.replace(_previous(), width=8)  # 8 float values a row


def test_from_a_manifest_without_layers_or_rescoring():
    built = small_manifest(
        dimensions=64,
        encoding="binary",
        index_factory="BFlat",
        count=3,
        metric="hamming",
        parts=BASE,
    )
    p = PreviousVersion.from_manifest("gs://b/index/versions/v1", built)
    assert (p.delta_parts, p.removed, p.rescore_dtype, p.layered) == ((), (), None, False)
    assert p.width == 8 and p.count == 3  # 64 bits: 8 bytes a row
