"""Every index family the job writes, searched through what users run, fresh and updated.

For each family the real job (``corpusbeam index``, the local reference endpoint it starts,
the DirectRunner) builds a small corpus. ``--index auto`` picks every family itself: its
flat and graph limits and its memory budget are lowered through options
(``--flat-max``, ``--graph-max``, ``--memory-budget``), never by naming the factory; one
case forces a factory the way a user would. The job then runs again over the corpus with
a few records changed and added, which updates the version in place (a delta segment and
tombstones).

Each version is searched in child processes, so that a native crash fails the test that
names the family instead of killing pytest: the fresh one through ``corpusbeam search``
(which searches through ``Searcher``) and ``corpusbeam serve``; the updated one through
those and, in one more child, ``Searcher`` with its defaults, then ``corpusbeam evaluate
--qrels`` (through ``Searcher`` too). ``corpusbeam serve`` serves the output from before
the update and must swap to the updated version while it runs. One family runs on the S3 stand-in
(moto's server on loopback), through the readers' cache of an object-store version.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from corpusbeam.cli.main import main
from indexes.storage import versions
from indexes.storage.manifest import Manifest
from tests.support.cli import cli_command
from tests.support.paths import REPO

DOCS = 1000  # auto's IVF lists: 32, at 30 training vectors a list
WORDS = [f"w{i}" for i in range(300)]
ASKED = 5  # the document the fresh version is asked for
CHANGED = 100  # a document whose text the update changes, asked of the updated version

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Family:
    """One kind of index the job writes: the options that make the job build it, and the
    factory and layout it must then have written."""

    options: tuple[str, ...]
    factory: str
    layout: str = "single"


AUTO_IVF = ("--flat-max", "0", "--graph-max", "0")
FAMILIES = {
    "flat": Family((), "IDMap2,Flat"),
    "hnsw": Family(("--flat-max", "0"), "IDMap2,HNSW32"),
    "ivf-flat-ondisk": Family(AUTO_IVF, "IVF32,Flat", "ondisk"),
    "ivf-sq8-ondisk": Family((*AUTO_IVF, "--memory-budget", "150k"), "IVF32,SQ8", "ondisk"),
    "ivf-pq-fastscan": Family((*AUTO_IVF, "--memory-budget", "50k"), "IVF32,PQ32x4fs"),
    "ivf-forced": Family(("--index", "IVF16,SQ8"), "IVF16,SQ8", "ondisk"),
    "int8-flat": Family(("--encoding-format", "int8"), "IDMap2,SQ8_direct_signed"),
    "int8-ivf-ondisk": Family(
        ("--encoding-format", "int8", "--flat-max", "0"), "IVF32,SQ8_direct_signed", "ondisk"
    ),
    "uint8-flat": Family(("--encoding-format", "uint8"), "IDMap2,SQ8_direct_signed"),
    "binary-flat": Family(("--encoding-format", "binary"), "IDMap,BFlat"),
    "binary-hnsw": Family(("--encoding-format", "binary", "--flat-max", "0"), "IDMap2,BHNSW32"),
    "binary-ivf": Family(("--encoding-format", "ubinary", *AUTO_IVF), "BIVF32", "shards"),
}


# ``report`` and ``retry-failures`` read the updated version too: once for lists on disk
# (the other on-disk families are read by the same ``read_index``) and once for shards.
READ_BY_THE_OTHER_COMMANDS = ("ivf-flat-ondisk", "binary-ivf")


def text_of(i: int, *, changed: bool = False) -> str:
    rng = random.Random(i * 7919 + (1 if changed else 0))
    return f"doc{i} " + " ".join(rng.choice(WORDS) for _ in range(14))


def write_corpus(path: Path, n: int, *, changed: int | None = None) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "text": text_of(i, changed=i == changed)}) + "\n")


def index(corpus: Path, out: str, family: Family, *extra: str) -> Manifest:
    argv = ["index", str(corpus), "--output", out, "--dimensions", "64", "--progress", "off"]
    assert main([*argv, *family.options, "--runner=DirectRunner", *extra]) == 0
    folder = versions.resolve_index_folder(out)
    return Manifest.from_json((Path(folder) / "manifest.json").read_text())


# ---------------------------------------------------------------- readers, in children

# ``Searcher`` with its defaults, then ``corpusbeam evaluate --qrels`` through the command
# line's own ``main`` (``Searcher`` again, as evaluate opens it): one child for both, as
# each starting Python and loading FAISS is what a reader's check costs.
SEARCHER_THEN_EVALUATE = """
import json, sys
from corpusbeam.cli.main import main
from corpusbeam.retrieval.searcher import Searcher
with Searcher(sys.argv[1]) as s:
    print(json.dumps([h.document_id for h in s.search(sys.argv[2], k=5)]), flush=True)
sys.exit(main(["evaluate", sys.argv[1], *sys.argv[3:]]))
"""


def child(command: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.Popen(command, cwd=REPO, env=env, text=True, **pipes)


def how_it_ended(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a child, killed after 120 s; never raises, so that
    one reader's failure leaves no other child running."""
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


@contextmanager
def serving(target: str) -> Iterator[str]:
    """``corpusbeam serve TARGET`` in a child, following CURRENT every 0.2 s; its URL."""
    argv = ["serve", target, "--name", "m", "--port", "0"]
    proc = child(cli_command(*argv, "--poll-interval", "0.2", "--log-level", "warning"))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("corpusbeam search: listening on "):
            proc.wait(timeout=30)
            _, err = proc.communicate()
            pytest.fail(f"serve {target}: {how_it_ended(proc.returncode)}\n{err[-2000:]}")
        url = line.rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None, "serve never got ready"
            time.sleep(0.05)
        yield url
        assert proc.poll() is None, f"serve {target}: {how_it_ended(proc.returncode)}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def served(url: str, query: str) -> tuple[str, list[str]]:
    """(the version that answered, the hits' document ids) of ``POST /search``; a failed
    request raises AssertionError saying how."""
    try:
        r = httpx.post(f"{url}/search", json={"query": query, "k": 5}, timeout=60)
    except httpx.TransportError as exc:  # the service died under the request
        raise AssertionError(f"the request failed ({exc!r}): did serve die?") from None
    assert r.status_code == 200, f"answered {r.status_code}: {r.text[:500]}"
    body = r.json()
    return body["indexes"][0]["version"], [h["document_id"] for h in body["hits"]]


def every_reader_finds(
    target: str, url: str, doc: int, text: str, what: str, tmp: Path, *, all_readers: bool
):
    """``search`` and ``serve`` (and with ``all_readers``, ``Searcher`` and ``evaluate
    --qrels``) each find document ``doc`` in their top 5 for ``text``; a failure lists
    every reader that failed."""
    queries, qrels = tmp / "queries.jsonl", tmp / "qrels.tsv"
    queries.write_text(json.dumps({"_id": "q", "text": text}) + "\n")
    qrels.write_text(f"query-id\tcorpus-id\tscore\nq\td{doc}\t1\n")
    judged = ["--queries", str(queries), "--qrels", str(qrels), "-k", "5", "--json"]
    procs = {
        "corpusbeam search": child(cli_command("search", target, text, "-k", "5", "--json")),
    }
    if all_readers:
        procs["Searcher, then corpusbeam evaluate --qrels"] = child(
            [sys.executable, "-c", SEARCHER_THEN_EVALUATE, target, text, *judged]
        )
    hits: dict[str, list[str]] = {}
    problems: list[str] = []
    try:
        hits["corpusbeam serve"] = served(url, text)[1]
    except AssertionError as exc:
        problems.append(f"corpusbeam serve: {exc}")
    for name, proc in procs.items():
        code, out, err = finish(proc)
        if code != 0:
            problems.append(f"{name}: {how_it_ended(code)}: {err.strip()[-1500:]}")
        elif name == "corpusbeam search":
            hits[name] = [h["document_id"] for h in json.loads(out)["hits"]]
        else:
            searched, evaluated = out.split("\n", 1)
            hits["Searcher"] = json.loads(searched)
            found = json.loads(evaluated)["modes"]["hybrid"]["recall@10"] == 1.0
            judged_hits = [f"d{doc}"] if found else ["(recall@10 of the judged document: 0)"]
            hits["corpusbeam evaluate --qrels"] = judged_hits
    problems += [f"{n}: d{doc} not in its hits {h}" for n, h in hits.items() if f"d{doc}" not in h]
    assert not problems, f"{what}:\n" + "\n".join(problems)


def swapped_to(url: str, version: str, text: str, what: str) -> None:
    """The service answers from ``version`` within 30 s, failing no request meanwhile."""
    deadline = time.monotonic() + 30
    while served(url, text)[0] != version:
        assert time.monotonic() < deadline, f"{what}: serve never swapped to {version}"
        time.sleep(0.1)


def the_other_commands_read(out: str, what: str, tmp: Path) -> None:
    """``corpusbeam report`` and ``corpusbeam retry-failures`` (a whole job again, which
    reads the live version to update it) exit 0 on the output."""
    procs = {
        "report": child(cli_command("report", out, "--output", str(tmp / "report"))),
        "retry-failures": child(cli_command("retry-failures", out, "--progress", "off")),
    }
    ended = {name: finish(proc) for name, proc in procs.items()}
    problems = [
        f"{n}: {how_it_ended(c)}: {e.strip()[-1500:]}" for n, (c, _, e) in ended.items() if c
    ]
    assert not problems, f"{what}:\n" + "\n".join(problems)


def fresh_then_updated(out: str, family: Family, name: str, tmp: Path, *extra: str) -> None:
    corpus = tmp / "docs.jsonl"
    write_corpus(corpus, DOCS)
    first = index(corpus, out, family, *extra)
    assert (first.index_factory, first.layout) == (family.factory, family.layout)
    with serving(out) as url:
        fresh = f"{name}, fresh"
        every_reader_finds(out, url, ASKED, text_of(ASKED), fresh, tmp, all_readers=False)
        write_corpus(corpus, DOCS + 9, changed=CHANGED)
        second = index(corpus, out, family, *extra)
        assert second.segments is not None and second.segments["delta"]["count"] > 0
        assert second.index_factory == family.factory
        new = text_of(CHANGED, changed=True)
        swapped_to(url, versions.read_current(out), new, f"{name}, updated")
        updated = f"{name}, updated"
        every_reader_finds(out, url, CHANGED, new, updated, tmp, all_readers=True)
    if name in READ_BY_THE_OTHER_COMMANDS:
        the_other_commands_read(out, f"{name}, updated", tmp)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_reader_searches_what_the_job_wrote(name, tmp_path):
    fresh_then_updated(str(tmp_path / "out"), FAMILIES[name], name, tmp_path)


@pytest.mark.parametrize("name", ["ivf-flat-ondisk"])
def test_every_reader_searches_what_the_job_wrote_on_s3(name, s3, tmp_path):
    out = s3.url(f"matrix-{name}")
    fresh_then_updated(out, FAMILIES[name], f"{name} on s3", tmp_path, *s3.worker_args)
