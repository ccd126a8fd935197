"""The object stores' own mechanics, on both stand-ins (``tests/support/stores.py``): the
lease's conditional writes, ``CURRENT`` switched only over the tag read (S3's ETags with
``If-Match``/``If-None-Match``, GCS's generations with ``ifGenerationMatch``), errors
converted to ours, and a copy inside the store. The job on a store is
``tests/pipeline/test_object_store.py``."""

from __future__ import annotations

import pytest

from corpusbeam.errors import ConfigError, IndexFolderError, JobError
from corpusbeam.retrieval.fusion import FUSION_FILE, Fusion, read_fusion, write_fusion
from indexes.storage import remote_versions as remote
from indexes.storage.objectstore import PreconditionFailed, open_store
from tests.support.stores import BUCKET


def test_a_lease_is_refused_while_live_taken_over_once_expired_and_lost_to_the_taker(store):
    """The lease's conditional writes on each store, on an injected clock: created only if
    absent, taken over only over the tag read, and a renewal over a stale tag is refused."""
    leased = open_store(store.url("lease-only"))
    now = [1000.0]
    with remote.hold_lease(leased, seconds=60, clock=lambda: now[0]) as held:
        with pytest.raises(ConfigError, match=r"another run .* expires in 60 s"):
            with remote.hold_lease(leased, seconds=60, clock=lambda: now[0]):
                pass
        assert ".lease" in store.keys("lease-only")
        now[0] += 61  # the holder stopped renewing (its run died): the lease expired
        with remote.hold_lease(leased, seconds=60, clock=lambda: now[0]) as taker:
            taker.check()  # the taker renews over the tag it wrote
            with pytest.raises(JobError, match="lost the lease"):
                held.check()  # the old holder's renewal is over a stale tag
    # The taker released the lease; the old holder, no longer its owner, deleted nothing.
    assert ".lease" not in store.keys("lease-only")


def _current_is_switched_only_over_the_tag_read(url: str) -> tuple[str, str]:
    """CURRENT created only if absent, then moved only from the tag read: the two tags."""
    current = open_store(url)
    assert remote.read_current(current) == (None, None)
    first = remote.switch_current(current, "v1", None)  # created only if absent
    with pytest.raises(JobError, match="changed during the run"):
        remote.switch_current(current, "v1b", None)  # it exists now
    name, tag = remote.read_current(current)
    assert (name, tag) == ("v1", first)
    second = remote.switch_current(current, "v2", tag)
    assert second != first
    with pytest.raises(JobError, match="v3 was written but not made live"):
        remote.switch_current(current, "v3", first)  # another run moved it since
    assert remote.read_current(current) == ("v2", second)
    with pytest.raises(PreconditionFailed):
        current.put("CURRENT", b"v4\n", if_match=first)
    assert current.read("CURRENT") == b"v2\n"
    return first, second


def test_s3_current_is_switched_with_if_match_and_if_none_match(s3):
    first, second = _current_is_switched_only_over_the_tag_read(s3.url("switch"))
    # The tags are the object's ETags, the values S3's If-Match compares.
    import boto3

    head = boto3.client("s3").head_object(Bucket=BUCKET, Key="switch/CURRENT")
    assert head["ETag"] == second != first
    # boto3's errors come out as ours, naming the object.
    with pytest.raises(IndexFolderError, match="s3://corpus/switch/missing -> copied"):
        open_store(s3.url("switch")).copy("missing", "copied")


def test_gcs_current_is_switched_with_if_generation_match(gcs, tmp_path):
    first, second = _current_is_switched_only_over_the_tag_read(gcs.url("switch"))
    # The tags are the object's generations, the values GCS's ifGenerationMatch compares.
    from google.cloud import storage

    blob = storage.Client().bucket(BUCKET).get_blob("switch/CURRENT")
    assert str(blob.generation) == second != first
    # google-cloud-storage's errors come out as ours, naming the object.
    with pytest.raises(IndexFolderError, match="gs://corpus/switch/missing: 404"):
        open_store(gcs.url("switch")).download("missing", tmp_path / "missing")


def test_a_copy_inside_the_store_keeps_the_bytes(store):
    # What an update uses for the files it shares with the live version.
    copies = open_store(store.url("copies"))
    data = bytes(range(256)) * 1000
    copies.put("versions/v1/index.faiss", data)
    copies.copy("versions/v1/index.faiss", "versions/v2/index.faiss")
    assert copies.read("versions/v2/index.faiss") == data
    with pytest.raises(IndexFolderError, match=f"{store.url('copies')}/versions/v0/missing"):
        copies.copy("versions/v0/missing", "versions/v2/missing")


def test_readers_downloading_one_version_at_once_keep_the_first_complete_copy(
    s3, tmp_path, xb, metadata
):
    """Several readers (``search`` processes, ``serve``) may fetch a version into the same
    cache at once. The first complete copy stays where it is, open files and all; a later
    download is dropped instead of replacing it, and no reader sees the folder missing."""
    import threading

    from indexes.storage.files import MANIFEST
    from tests.support.indexes import build

    local = tmp_path / "v1"
    build(local, xb[:300], {k: v[:300] for k, v in metadata.items()})
    url = s3.url("race")
    out = open_store(url)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            out.upload(f"versions/v1/{p.relative_to(local).as_posix()}", p)
    remote.switch_current(out, "v1", None)
    cache = tmp_path / "cache"

    first = remote.cached_version(url, cache=cache)
    inode = (first / MANIFEST).stat().st_ino
    with open(first / MANIFEST, "rb"):  # a reader holds it open
        # A copy downloaded meanwhile is dropped: the first one is complete.
        folder = first.with_name(".v1.late.tmp")
        folder.mkdir()
        (folder / MANIFEST).write_bytes((first / MANIFEST).read_bytes())
        remote._put_in_place(folder, first, (first / MANIFEST).read_bytes())
        assert (first / MANIFEST).stat().st_ino == inode

    # Readers racing on an empty cache: each gets a complete folder, none an error.
    fresh, errors, seen_missing = tmp_path / "fresh", [], []
    done = threading.Event()

    def reader():
        try:
            got = remote.cached_version(url, cache=fresh)
            assert (got / MANIFEST).is_file()
        except Exception as exc:  # collected: an assert in a thread would be lost
            errors.append(exc)

    watched = remote.cache_folder(url, fresh) / "v1" / MANIFEST

    def watcher():
        appeared = False
        while not done.is_set():
            there = watched.exists()
            seen_missing.append(appeared and not there)
            appeared = appeared or there

    threads = [threading.Thread(target=reader) for _ in range(6)]
    watch = threading.Thread(target=watcher)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watch.join()
    assert not errors
    assert not any(seen_missing)
    assert not [p for p in remote.cache_folder(url, fresh).iterdir() if p.name.startswith(".")]


def test_a_tuned_fusion_is_kept_at_the_outputs_root(store):
    """``evaluate --tune`` on an s3:// or gs:// output writes its choice beside CURRENT,
    where every reader of the output finds it."""
    url = store.url("fused")
    assert read_fusion(url) is None
    chosen = Fusion(method="rrf", rrf_k=20)
    assert write_fusion(url, chosen, {"queries": 3}) == f"{url}/{FUSION_FILE}"
    assert store.keys("fused") == [FUSION_FILE]
    assert read_fusion(url) == Fusion(method="rrf", rrf_k=20, tuned=True)
