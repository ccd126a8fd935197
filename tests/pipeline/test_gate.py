"""Issue 24: the quality gate, ``versions`` and ``rollback``, on one output's history.

One module fixture runs the index job three times on a tiny labelled corpus (the hash
model), gated on its queries: v1 through the reference endpoint (published, its figures
recorded), v2 through an endpoint that answers with the wrong model's vectors under the
same name and dimensions (``tests.support.wrong_model``, a fault injection: rejected), v3
through the reference endpoint again with 4 documents added (published). A ``serve`` started
after v1 answers throughout; the tests read that history.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.exit_codes import ExitCode
from corpusbeam.inference.client import ClientSettings
from corpusbeam.inference.derive import EncodingPlan
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import running_service
from indexes.storage import remote_versions as remote
from indexes.storage import versions
from indexes.storage.manifest import Manifest
from indexes.storage.objectstore import open_store
from indexes.storage.rollback import rollback
from indexes.storage.version_list import (
    GATE_FILE,
    VersionInfo,
    _doomed,
    list_versions,
    rollback_target,
)
from pipeline.gate import decide
from pipeline.gate_run import gate_queries, judge
from pipeline.index_job import run_index_job
from pipeline.outputs import RunOutput
from tests.support.cli import run_cli
from tests.support.jobs import job
from tests.support.wrong_model import wrong_model_endpoint

ANIMALS = ["otter", "heron", "badger", "falcon", "walrus", "lynx", "bison", "gecko"]
PLACES = ["harbor", "canyon", "meadow", "glacier", "delta", "tundra", "reef", "marsh"]
N = 32


def _text(i: int) -> str:
    a, p = ANIMALS[i % 8], PLACES[(i // 8) % 8]
    return f"The {a} of the {p} keeps token{i} and mark{i * 7}."


def _corpus(folder, n: int = N) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": f"d{i}", "text": _text(i)}) for i in range(n)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")


def _labels(folder):
    queries = [json.dumps({"_id": f"q{i}", "text": f"{ANIMALS[i % 8]} token{i}"}) for i in range(N)]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    qrels = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1" for i in range(N)]
    (folder / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    return str(folder / "queries.jsonl"), str(folder / "qrels.tsv")


class Clients:
    """4 clients searching the service until stopped; every failure and version seen."""

    def __init__(self, url: str) -> None:
        self.url, self.failures, self.seen = url, [], [[] for _ in range(4)]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._fire, args=(s,)) for s in self.seen]

    def _fire(self, mine: list[str]) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self.stop.is_set():
                try:
                    r = c.post("/search", json={"query": "otter token0", "k": 3})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text}")
                else:
                    mine.append(r.json()["indexes"][0]["version"])
                time.sleep(0.02)

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        _wait(lambda: all(len(s) >= 2 for s in self.seen))
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def settle_on(self, version: str) -> None:
        _wait(lambda: all(s and s[-1] == version for s in self.seen))
        n = [len(s) for s in self.seen]
        _wait(lambda: all(len(s) >= k + 2 for s, k in zip(self.seen, n, strict=True)))
        assert all(set(s[k:]) == {version} for s, k in zip(self.seen, n, strict=True))


@dataclass(frozen=True)
class _Plan:
    """What the gate reads of a run's plan."""

    config: object
    live_version: str | None
    settings: object
    encodings: object = EncodingPlan.of("float")


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    corpus, out = root / "corpus", root / "out"
    _corpus(corpus)
    q, r = _labels(root)
    gate = {"gate_queries": q, "gate_qrels": r, "gate_max_drop": 0.05, "min_recall": 0.5}
    with running_endpoint(EndpointConfig()) as good:
        first = run_index_job(job(corpus, out, endpoint=good.url, **gate))
        # The service embeds queries through the reference endpoint whichever version it
        # serves (the rejected one's manifest names the faulty endpoint, gone by then).
        service = {"config": ServiceConfig(poll_interval=0.05), "endpoint": good.url}
        with running_service([out], **service) as svc:
            live = svc.indexes[0]
            with wrong_model_endpoint() as wrong:
                second = run_index_job(job(corpus, out, endpoint=wrong, **gate))
            time.sleep(0.3)  # several polls of CURRENT
            served = (live.version, live.swaps)
            _corpus(corpus, n=N + 4)
            third = run_index_job(job(corpus, out, endpoint=good.url, keep=2, **gate))
            yield {
                "out": out,
                "corpus": corpus,
                "gate": gate,
                "runs": (first, second, third),
                "served_after_rejection": served,
                "service": svc,
                "service_settings": service,
            }


def test_a_wrong_model_is_rejected_and_never_served(history):
    first, second, third = history["runs"]
    out = history["out"]
    assert first.exit_code == ExitCode.OK and third.exit_code == ExitCode.OK
    assert second.exit_code == ExitCode.GATE_REJECTED == 5
    assert second.report["counts"]["embedded"] == N  # nothing reused: another endpoint
    gate = second.report["gate"]
    assert gate["status"] == "rejected" and gate["live_version"] == first.version
    assert gate["live"]["ndcg@10"] >= 0.9  # v1's own figures, recorded when published
    assert gate["new"]["ndcg@10"] < gate["live"]["ndcg@10"] - 0.05
    assert "recorded" in gate["against"] and "nDCG@10" in gate["reasons"][0]
    marker = json.loads((out / "versions" / second.version / GATE_FILE).read_text())
    assert marker["status"] == "rejected" and marker["new"] == gate["new"]
    assert first.report["gate"]["status"] == "passed"
    assert first.report["gate"]["against"].startswith("no live version")
    assert history["served_after_rejection"] == (first.version, 0)  # serve never saw v2
    assert third.report["gate"]["status"] == "passed"
    assert third.report["gate"]["live_version"] == first.version  # CURRENT stayed on v1


def test_versions_lists_states_figures_and_shared_bytes(history):
    first, second, third = history["runs"]
    r = run_cli("versions", str(history["out"]), "--json")
    assert r.returncode == 0, r.stderr
    listed = {v["name"]: v for v in json.loads(r.stdout)}
    assert [listed[v.version]["state"] for v in (first, second, third)] == [
        "complete",
        "rejected",
        "live",
    ]
    v3 = listed[third.version]
    assert v3["chunks"] == N + 4 and listed[first.version]["documents"] == N and v3["index"]
    assert v3["gate"]["new"]["ndcg@10"] >= 0.9 and v3["gate"]["new"]["recall@10_vs_exact"] == 1.0
    assert v3["bytes_own"] > 0 and listed[first.version]["bytes_own"] > 0
    text = run_cli("versions", str(history["out"])).stdout
    assert "rejected" in text and "live" in text and "gate passed" in text


def test_keep_never_prunes_the_live_version_or_the_rollback_target(history):
    # v3 ran with --keep 2: the newest two are v2 (rejected) and v3; v1 is v3's rollback
    # target (v2 was rejected), so it stays too.
    names = [v.name for v in list_versions(history["out"])]
    assert names == [r.version for r in history["runs"]]


def test_pruning_keeps_the_live_version_and_its_target_whatever_keep_says():
    def v(name, state):
        return VersionInfo(name=name, state=state)

    infos = [v("a", "complete"), v("b", "complete"), v("c", "rejected"), v("d", "rejected")]
    infos += [v("e", "live"), v("f", "rejected"), v("g", "partial")]
    assert rollback_target(infos, "e") == "b"  # rejected ones skipped
    assert _doomed(infos, keep=1) == ["a", "c", "d"]  # rejected count; e and b stay
    assert _doomed(infos, keep=3) == ["a", "c"] and _doomed(infos, keep=4) == ["a"]
    with pytest.raises(ConfigError, match="keep"):
        job("in", "out", keep=0)  # IndexJobConfig checks it (pipeline.gate.check_gate_config)


def test_min_recall_rejects_without_labels_and_names_its_queries():
    cfg = job("in", "out", min_recall=0.95)
    new = {"recall@10_vs_exact": 0.9, "recall_queries": "sampled from the indexed vectors"}
    verdict = decide(cfg, "v2", new, ("v1", None, "no labelled queries"), None)
    assert verdict.rejected and "below --min-recall 0.95 (sampled" in verdict.reasons[0]
    assert not decide(
        cfg, "v2", {**new, "recall@10_vs_exact": 0.96}, (None, None, ""), None
    ).rejected
    with pytest.raises(ConfigError, match="needs the other one"):
        job("in", "out", gate_queries=__file__)
    with pytest.raises(ConfigError, match=r"test_gate\.py:1.*not JSON"):
        job("in", "out", gate_queries=__file__, gate_qrels=__file__)  # refused before a run


def test_rollback_refusals(history):
    _first, second, third = history["runs"]
    out = history["out"]
    with pytest.raises(ConfigError, match="rejected"):
        rollback(out, second.version)
    with pytest.raises(ConfigError, match="no such version"):
        rollback(out, "v1-unknown")
    with pytest.raises(ConfigError, match="already the live"):
        rollback(out, third.version)
    (out / "versions" / "vzz-killed.partial").mkdir()
    with pytest.raises(ConfigError, match="partial"):
        rollback(out, "vzz-killed", force=True)
    (out / "versions" / "vzz-killed.partial").rmdir()
    with versions.acquire_lock(out), pytest.raises(ConfigError, match=r"holds \.lock"):
        rollback(out)  # a run writes the output (flock: refused on another open file too)
    assert versions.read_current(out) == third.version


def test_rollback_under_load_local_then_forced(history):
    first, second, third = history["runs"]
    out, svc = history["out"], history["service"]
    with Clients(svc.url) as clients:
        clients.settle_on(third.version)
        r = run_cli("rollback", str(out))  # the previous complete one: v1, not rejected v2
        assert r.returncode == 0, r.stderr
        assert f"-> {first.version}" in r.stdout
        clients.settle_on(first.version)
        r = run_cli("rollback", str(out), second.version, "--force")
        assert r.returncode == 0, r.stderr
        clients.settle_on(second.version)
        rollback(out, third.version)
        clients.settle_on(third.version)
    assert clients.failures == []


def _upload(store, folder, name) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    extra = [f for f in ("failures.parquet", "report.json", GATE_FILE) if (folder / f).is_file()]
    remote.upload_folder(store, folder, f"versions/{name}", [*manifest["files"], *extra])
    remote.upload_folder(store, folder, f"versions/{name}", ["manifest.json"])


def test_rollback_on_s3_under_load_and_a_held_lease(history, s3):
    """The job's versions in the object store's layout (uploaded: v1, then v3 live),
    rolled back while 4 clients query a service of the URL."""
    first, _second, third = history["runs"]
    url = s3.url("rollback")
    store = open_store(url)
    for run in (first, third):
        _upload(store, history["out"] / "versions" / run.version, run.version)
    remote.switch_current(store, third.version, None)
    with running_service([url], **history["service_settings"]) as svc:
        with Clients(svc.url) as clients:
            clients.settle_on(third.version)
            with remote.hold_lease(store, seconds=30):  # a live run's lease
                with pytest.raises(ConfigError, match="lease expires"):
                    rollback(url)
            r = run_cli("rollback", url)
            assert r.returncode == 0, r.stderr
            clients.settle_on(first.version)
        assert clients.failures == []
    assert remote.read_current(store)[0] == first.version
    assert store.get(remote.LEASE)[0] is None  # the rollback's own lease was released


def test_the_gate_reads_and_judges_an_object_store_version(history, s3):
    """The gate's object-store path without a second job run: the rejected version's
    files uploaded without their manifest (as a run's workers leave them), judged
    against the live version's figures recorded in the store."""
    first, second, _third = history["runs"]
    url = s3.url("gated")
    store = open_store(url)
    _upload(store, history["out"] / "versions" / first.version, first.version)
    remote.switch_current(store, first.version, None)
    folder = history["out"] / "versions" / second.version
    manifest = Manifest.from_json((folder / "manifest.json").read_text())
    remote.upload_folder(store, folder, f"versions/{second.version}", list(manifest.files))
    cfg = job(history["corpus"], url, **history["gate"])
    live = Manifest.from_json(
        (history["out"] / "versions" / first.version / "manifest.json").read_text()
    )
    run = RunOutput(
        root=url,
        name=second.version,
        folder=f"{url}/versions/{second.version}",
        staging=f"{url}/staging/{second.version}",
        local=None,
        previous=f"{url}/versions/{first.version}",
        previous_manifest=live,
    )
    with wrong_model_endpoint() as wrong:
        queries = gate_queries(_Plan(cfg, first.version, ClientSettings(endpoint=wrong)), run)
    verdict = judge(_Plan(cfg, first.version, None), run, queries, manifest)
    assert verdict.rejected and verdict.new == second.report["gate"]["new"]
    assert verdict.live == first.report["gate"]["new"] and "recorded" in verdict.against
