"""The on-disk merge of IVF shards: the same lists file as FAISS's own merge, in the
memory of about one shard."""

from __future__ import annotations

import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from faiss.contrib.ondisk import merge_ondisk as faiss_merge_ondisk

from corpusbeam.errors import IndexFolderError
from indexes.ann.choose import choose_index
from indexes.ann.merge import merge_indexes, merge_ondisk
from indexes.ann.ondisk import is_lists_file, merge_shards_ondisk, shard_lists_bytes
from indexes.ann.serialize import (
    _unmapped_lists,
    deserialize_index,
    read_index,
    serialize_index,
    write_index,
)
from indexes.ann.train import add_vectors, train_index

D = 32


def _shards(tmp_path: Path, factory: str, sizes: list[int], *, seed: int = 0, lists=False):
    """(serialised trained index, shard files): shard s holds ``sizes[s]`` vectors, all
    near a few centroids so that some lists stay empty in some shards; with ``lists``,
    also each shard's lists file (what the index job's workers write), in ``.lists``."""
    rng = np.random.default_rng(seed)
    spec = choose_index(2_000, D, "float", factory=factory)
    xt = rng.standard_normal((2_000, D)).astype("float32")
    blob = serialize_index(train_index(spec, xt, seed=0))
    paths, start = [], 0
    for s, n in enumerate(sizes):
        shard = deserialize_index(blob, "float")
        centre = rng.standard_normal(D).astype("float32")
        xb = (centre + 0.3 * rng.standard_normal((n, D))).astype("float32")
        add_vectors(shard, xb, np.arange(start, start + n, dtype=np.int64) * 7, spec)
        start += n
        paths.append(tmp_path / f"shard-{s}.faiss")
        write_index(shard, paths[-1])
        if lists:
            paths[-1].with_suffix(".lists").write_bytes(shard_lists_bytes(shard))
    return spec, blob, paths


@pytest.mark.parametrize("shard_files", ["faiss", "lists"])
@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,SQ8"])
def test_the_lists_file_is_faiss_own_merge_byte_for_byte(tmp_path, factory, shard_files):
    spec, blob, paths = _shards(tmp_path, factory, [300, 0, 500, 7], lists=True)
    theirs = deserialize_index(blob, "float")
    faiss_merge_ondisk(theirs, [str(p) for p in paths], str(tmp_path / "theirs.ivfdata"))
    ours = deserialize_index(blob, "float")
    given = paths if shard_files == "faiss" else [p.with_suffix(".lists") for p in paths]
    assert [is_lists_file(p) for p in given] == [shard_files == "lists"] * 4
    assert merge_shards_ondisk(ours, given, tmp_path / "ours.ivfdata") == 807
    assert ours.ntotal == theirs.ntotal == 807
    a = (tmp_path / "theirs.ivfdata").read_bytes()
    assert a == (tmp_path / "ours.ivfdata").read_bytes()
    lists_a, lists_b = (faiss.extract_index_ivf(i).invlists for i in (theirs, ours))
    sizes = [lists_b.list_size(i) for i in range(16)]
    assert sizes == [lists_a.list_size(i) for i in range(16)] and 0 in sizes
    # Written and read back the way the index job does, it searches like one build.
    write_index(ours, tmp_path / "index.faiss")
    again = read_index(tmp_path / "index.faiss", "float")
    single = deserialize_index(blob, "float")
    for p in paths:
        merge_indexes([single, read_index(p, "float")], spec)
    xq = np.random.default_rng(1).standard_normal((20, D)).astype("float32")
    for index in (again, single):
        faiss.extract_index_ivf(index).nprobe = 16
    D1, I1 = again.search(xq, 10)
    D2, I2 = single.search(xq, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-6)


@pytest.mark.parametrize("suffix", [".faiss", ".lists"])
def test_a_shard_of_another_index_is_refused(tmp_path, suffix):
    _, blob, paths = _shards(tmp_path, "IVF16,Flat", [50], lists=True)
    (tmp_path / "other").mkdir()
    _, _, other = _shards(tmp_path / "other", "IVF32,Flat", [50], lists=True)
    other = [p.with_suffix(suffix) for p in other]
    with pytest.raises(IndexFolderError, match="not a shard of this trained index"):
        trained = deserialize_index(blob, "float")
        merge_shards_ondisk(trained, [*paths, *other], tmp_path / "x")


def test_a_lists_file_cut_short_is_refused_with_its_size(tmp_path):
    _, blob, paths = _shards(tmp_path, "IVF16,Flat", [50, 40], lists=True)
    lists = [p.with_suffix(".lists") for p in paths]
    lists[1].write_bytes(lists[1].read_bytes()[:-100])
    with pytest.raises(IndexFolderError, match=r"shard-1\.lists: a lists file of .* cut short"):
        merge_shards_ondisk(deserialize_index(blob, "float"), lists, tmp_path / "x")


def test_a_lists_file_holds_no_quantizer(tmp_path):
    """The lists file is the codes and ids alone: the FAISS shard of the same lists also
    carries the trained quantizer (K x d floats)."""
    spec = choose_index(50_000, 64, "float", factory="IVF1024,Flat")
    rng = np.random.default_rng(0)
    blob = serialize_index(
        train_index(spec, rng.standard_normal((40_000, 64)).astype("float32"), seed=0)
    )
    shard = deserialize_index(blob, "float")
    add_vectors(shard, rng.standard_normal((500, 64)).astype("float32"), np.arange(500), spec)
    lists = shard_lists_bytes(shard)
    vectors = 500 * (64 * 4 + 8)
    assert len(lists) - vectors == 24 + 1024 * 8  # the head and the list sizes
    assert len(serialize_index(shard)) - vectors > 1024 * 64 * 4  # the quantizer


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / (1 << 20)


def test_the_merge_holds_about_one_shard_in_memory(tmp_path):
    """8 shards of 12 MiB of codes each: FAISS's merge maps all of them and the merged file
    (about 200 MiB resident); this one holds one shard at a time."""
    spec = choose_index(50_000, 256, "float", factory="IVF64,Flat")
    rng = np.random.default_rng(0)
    blob = serialize_index(
        train_index(spec, rng.standard_normal((5_000, 256)).astype("float32"), seed=0)
    )
    paths = []
    for s in range(8):
        shard = deserialize_index(blob, "float")
        xb = rng.standard_normal((12_000, 256)).astype("float32")
        add_vectors(shard, xb, np.arange(s * 12_000, (s + 1) * 12_000), spec)
        paths.append(tmp_path / f"shard-{s}.lists")
        paths[-1].write_bytes(shard_lists_bytes(shard))
        del shard, xb
    trained = deserialize_index(blob, "float")
    peak, done = [_rss_mib()], threading.Event()
    base = peak[0]

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert merge_shards_ondisk(trained, paths, tmp_path / "index.ivfdata") == 96_000
    finally:
        done.set()
        sampler.join()
    shard_mib = paths[0].stat().st_size / (1 << 20)
    assert peak[0] - base < 2.5 * shard_mib, (base, peak[0], shard_mib)


def test_readers_map_the_lists_of_an_index_merged_on_disk_read_only(tmp_path):
    """What crashed every reader of the job's IVF indexes: FAISS's ``IO_FLAG_MMAP`` skips
    the lists' own mapping. ``read_index`` maps them, read-only, whatever ``mmap`` says
    (checked before any search, so a regression fails here instead of crashing)."""
    spec, blob, paths = _shards(tmp_path, "IVF16,Flat", [300, 200])
    path = tmp_path / "index.faiss"
    merge_ondisk(deserialize_index(blob, "float"), paths, path, spec)
    flags = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_MMAP
    assert _unmapped_lists(faiss.read_index(str(path), flags))
    single = deserialize_index(blob, "float")
    for p in paths:
        merge_indexes([single, read_index(p, "float")], spec)
    xq = np.random.default_rng(1).standard_normal((20, D)).astype("float32")
    faiss.extract_index_ivf(single).nprobe = 16
    want = single.search(xq, 10)
    for mmap in (False, True):
        index = read_index(path, "float", mmap=mmap)
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
        assert isinstance(lists, faiss.OnDiskInvertedLists)
        assert lists.ptr is not None and lists.read_only
        faiss.extract_index_ivf(index).nprobe = 16
        got = index.search(xq, 10)
        np.testing.assert_array_equal(got[1], want[1])
    # Without its lists file: an error that names the file, never a crash.
    path.with_name("index.faiss.ivfdata").rename(tmp_path / "elsewhere")
    for mmap in (False, True):
        with pytest.raises(IndexFolderError, match=r"index\.faiss.*(could not open|not mapped)"):
            read_index(path, "float", mmap=mmap)
