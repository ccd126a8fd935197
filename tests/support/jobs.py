"""The index job in tests: its configuration on a test runner, the requests an endpoint
answered, and a corpus of records that each step edits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.index_job import IndexJobConfig
from tests.support.beam import RUNNERS

WORDS = ["otter", "heron", "maple", "granite", "comet"]
WORDS += ["violin", "lantern", "harbor", "cedar", "falcon"]


def job(corpus, output, *, runner="direct", **kw) -> IndexJobConfig:
    return IndexJobConfig(
        inputs=(str(corpus),), output=str(output), pipeline_args=tuple(RUNNERS[runner]), **kw
    )


def update_job(corpus: Path, output: Path, url: str, **kw) -> IndexJobConfig:
    """The update tests' job: ``corpus`` into ``output`` through the endpoint at ``url`` on
    the direct runner, 4 shards unless ``kw`` says otherwise."""
    return job(corpus, output, endpoint=url, **{"shards": 4, **kw})


def embedding_requests(ep) -> int:
    m = ep.metrics()
    return int(sum(v for k, v in m.items() if "requests_total" in k and "embeddings" in k))


class Records:
    """Records with ids in two JSONL files; each step edits, adds, deletes and moves."""

    def __init__(self, folder: Path, n: int = 160) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {f"r{i}": ("a.jsonl" if i % 2 else "b.jsonl", self._text(i)) for i in range(n)}
        self.next = n
        self.deleted: set[str] = set()
        self.rng = np.random.default_rng(7)
        self.write()

    def _text(self, i: int) -> str:
        return f"Record {i} tells of the {WORDS[i % 10]} and the {WORDS[(i * 7) % 10]} #{i * 31}."

    def write(self) -> None:
        by_file: dict[str, list[str]] = {"a.jsonl": [], "b.jsonl": []}
        for rid, (name, text) in sorted(self.files.items()):
            by_file[name].append(json.dumps({"id": rid, "text": text}))
        for name, lines in by_file.items():
            (self.folder / name).write_text("\n".join(lines) + "\n")

    def step(self) -> str:
        names = sorted(self.files)
        picked = self.rng.choice(len(names), 9, replace=False)
        for j in picked[:4]:  # edits
            where, _ = self.files[names[j]]
            self.files[names[j]] = (where, self._text(self.next))
            self.next += 1
        for j in picked[4:8]:  # deletions
            del self.files[names[j]]
            self.deleted.add(names[j])
        moved = names[picked[8]]  # to the other file, same id and text
        where, text = self.files[moved]
        self.files[moved] = ("b.jsonl" if where == "a.jsonl" else "a.jsonl", text)
        for _ in range(4):  # additions
            self.files[f"r{self.next}"] = ("a.jsonl", self._text(self.next))
            self.next += 1
        self.write()
        return moved
