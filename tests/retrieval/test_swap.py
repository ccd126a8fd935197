"""Version swaps: the service follows CURRENT under load without failing a request."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import httpx
import pytest

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.retrieval.embedder import EmbedderPool
from corpusbeam.retrieval.live import LiveIndex
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import running_service
from tests.support.folders import flip, make_versioned

QUERY = {"query": "the rabbit eats carrots", "k": 3}
UPDATES = 5  # each an update and a swap under load (issue 13: five successive updates)


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_swap_under_load_fails_no_request(tmp_path, build_text):
    root = make_versioned(tmp_path / "out", build_text, "v1", tag="v1")
    config = ServiceConfig(poll_interval=0.05)
    failures: list[str] = []
    seen: list[list[str]] = [[] for _ in range(4)]
    stop = threading.Event()

    def fire(url: str, mine: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post("/search", json=QUERY)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                    continue
                body = r.json()
                version = body["indexes"][0]["version"]
                tags = {h["metadata"]["tag"] for h in body["hits"]}
                if tags != {version}:
                    failures.append(f"hits of {tags} reported as {version}")
                mine.append(version)

    with running_service([root], config=config) as svc:
        threads = [threading.Thread(target=fire, args=(svc.url, seen[i])) for i in range(4)]
        for t in threads:
            t.start()
        try:
            _wait(lambda: all(len(s) >= 3 for s in seen))
            build_text(root / "versions" / "v2", tag="v2")  # written while serving v1
            flip(root, "v2")
            _wait(lambda: all(s and s[-1] == "v2" for s in seen))
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert failures == []
        for versions in seen:
            # Each client sees v1, then only v2: the swap is atomic and permanent.
            first_v2 = versions.index("v2")
            assert set(versions[:first_v2]) == {"v1"} and set(versions[first_v2:]) == {"v2"}
        counts = Counter(v for s in seen for v in s)
        assert counts["v1"] >= 12 and counts["v2"] >= 4
        live = svc.indexes[0]
        assert live.version == "v2" and live.swaps == 1


def test_damaged_new_version_is_skipped_and_the_old_one_kept(tmp_path, build_text):
    root = make_versioned(tmp_path / "out", build_text, "v1", tag="v1")
    with running_service([root], config=ServiceConfig(poll_interval=0.05)) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            bad = root / "versions" / "v2"
            shutil.copytree(root / "versions" / "v1", bad)
            (bad / "index.faiss").write_bytes(b"\0" * 16)
            flip(root, "v2")
            live = svc.indexes[0]
            _wait(lambda: live.failed_swaps == 1)
            r = c.post("/search", json=QUERY)
            assert r.status_code == 200 and r.json()["indexes"][0]["version"] == "v1"
            listing = c.get("/indexes").json()["indexes"][0]
            assert listing["version"] == "v1" and "index.faiss" in listing["last_error"]
            metrics = parse_metrics(c.get("/metrics").text)
            assert metrics['corpusbeam_index_swap_failures_total{index="out"}'] == 1
            time.sleep(0.2)
            assert live.failed_swaps == 1  # not retried until CURRENT moves again
            build_text(root / "versions" / "v3", tag="v3")
            flip(root, "v3")
            _wait(lambda: live.version == "v3")
            r = c.post("/search", json=QUERY)
            assert {h["metadata"]["tag"] for h in r.json()["hits"]} == {"v3"}
            assert listing["follows_current"] is True


def test_live_index_refresh_directly(tmp_path, build_text, float_folder):
    root = make_versioned(tmp_path / "out", build_text, "v1", tag="v1")
    with EmbedderPool() as pool:
        live = LiveIndex(root, embedders=pool)
        old = live.current
        assert live.refresh() is False
        build_text(root / "versions" / "v2", tag="v2")
        flip(root, "v2")
        assert live.refresh() is True and live.version == "v2"
        # The old searcher still answers for whoever holds it.
        assert old.search("the owl eats mice")[0].metadata["tag"] == "v1"
        assert live.current.search("the owl eats mice")[0].metadata["tag"] == "v2"
        assert live.current.embedder() is old.embedder()  # one endpoint for both
        plain = LiveIndex(float_folder, embedders=pool)
        assert plain.follows is False and plain.refresh() is False


def test_a_served_version_survives_its_folder_being_deleted(tmp_path, build_text):
    """The index job keeps three versions and deletes older ones, possibly while a
    service still answers from one: everything is mapped or read at opening."""
    root = make_versioned(tmp_path / "out", build_text, "v1", tag="v1", encoding="ubinary")
    with EmbedderPool() as pool:
        live = LiveIndex(root, embedders=pool)
        shutil.rmtree(root / "versions" / "v1")
        hits = live.current.search("the owl eats mice", k=3)
        assert live.current.rescores and hits[0].metadata["tag"] == "v1"


@pytest.mark.slow
def test_swap_to_each_updated_version_under_load(tmp_path):
    """The index job updates the live index five times (segments: the main index shared,
    a delta and tombstones) while 4 clients search; every request succeeds, each client
    follows every version, and no response holds a document deleted by then."""
    from corpusbeam.inference.server import EndpointConfig, running_endpoint
    from indexes.storage import versions
    from pipeline.index_job import IndexJobConfig, run_index_job
    from tests.support.beam import RUNNERS
    from tests.support.jobs import Records

    records = Records(tmp_path / "corpus", n=200)
    out = tmp_path / "out"
    queries = [text for _, text in records.files.values()]
    failures: list[str] = []
    seen: list[list[tuple[str, set[str]]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def fire(url: str, mine: list, offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            i = offset
            while not stop.is_set():
                i += 4
                try:
                    r = c.post("/search", json={"query": queries[i % len(queries)], "k": 5})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                    continue
                body = r.json()
                hits = {h["document_id"] for h in body["hits"]}
                mine.append((body["indexes"][0]["version"], hits))
                time.sleep(0.05)  # 4 clients at up to 20 requests a second each

    deleted_by: dict[str, set[str]] = {}
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:

        def index() -> str:
            cfg = IndexJobConfig(
                inputs=(str(records.folder),),
                output=str(out),
                endpoint=ep.url,
                shards=4,
                pipeline_args=tuple(RUNNERS["direct"]),
            )
            result = run_index_job(cfg)
            deleted_by[result.version] = {r for r in records.deleted if r not in records.files}
            return result

        index()
        with running_service([out], config=ServiceConfig(poll_interval=0.05)) as svc:
            threads = [threading.Thread(target=fire, args=(svc.url, seen[i], i)) for i in range(4)]
            for t in threads:
                t.start()
            try:
                _wait(lambda: all(len(s) >= 3 for s in seen), timeout=60)
                for _ in range(UPDATES):
                    records.step()
                    result = index()
                    assert result.report["update"]["mode"] == "update"
                    name = result.version
                    _wait(lambda n=name: all(s and s[-1][0] == n for s in seen), timeout=60)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=60)
            live = svc.indexes[0]
            assert live.swaps == UPDATES and live.version == versions.read_current(out)
    assert failures == []
    order = list(deleted_by)
    for mine in seen:
        names = [v for v, _ in mine]
        # Each client saw every version, in order, never going back.
        assert [order.index(v) for v in names] == sorted(order.index(v) for v in names)
        assert set(names) == set(order)
        for version, hits in mine:
            assert not hits & deleted_by[version], version
