"""The files ``BuildIndexShards`` leaves under ``staging`` for the job's final step, and the
byte reads and writes every module of the package goes through.

No Beam transform here: plain functions the launcher, the remote finish and the workers
call alike. Files are reached through Beam's filesystems (``FileSystems``), so a path may
be local or on any store the pipeline's options reach.
"""

from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems

from indexes.ann.spec import IndexSpec

__all__ = [
    "PART_LIST",
    "RUNS",
    "SHARD_LIST",
    "TRAINED_INDEX",
    "TRAINED_SPEC",
    "has_trained",
    "load_trained",
    "read_bytes",
    "read_part_list",
    "read_shard_list",
    "save_spec",
    "save_trained",
    "write_bytes",
]

PART_LIST = "parts.jsonl"
RUNS = "runs"  # in the staging: each part's embedded rows, until the part is written
SHARD_LIST = "shards.jsonl"  # TrainShards run on its own: {"part", "index"} a line
TRAINED_INDEX = "trained.faiss"
TRAINED_SPEC = "spec.json"


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def save_trained(trained: dict | None, staging: str) -> None:
    """The trained empty index and its spec, for the final step (``load_trained``)."""
    if trained is not None:
        write_bytes(f"{staging.rstrip('/')}/{TRAINED_INDEX}", trained["blob"])
        save_spec(trained["spec"], staging)


def save_spec(spec: dict | None, staging: str) -> None:
    """The chosen index's spec alone (nothing trained: the job updates the live index)."""
    if spec is not None:
        write_bytes(f"{staging.rstrip('/')}/{TRAINED_SPEC}", json.dumps(spec).encode())


def load_trained(staging: str) -> tuple[IndexSpec, bytes | None] | None:
    """(the chosen index's spec, the trained empty index: None when the job did not train
    one), or None when there was nothing to index."""
    spec_path = f"{staging.rstrip('/')}/{TRAINED_SPEC}"
    if not FileSystems.exists(spec_path):
        return None
    spec = IndexSpec(**json.loads(read_bytes(spec_path)))
    blob_path = f"{staging.rstrip('/')}/{TRAINED_INDEX}"
    if not FileSystems.exists(blob_path):
        return spec, None
    return spec, read_bytes(blob_path)


def has_trained(staging: str) -> bool:
    """Whether ``BuildIndexShards`` trained an index (there was something to index),
    without reading it."""
    return FileSystems.exists(f"{staging.rstrip('/')}/{TRAINED_SPEC}")


def read_shard_list(staging: str) -> dict[int, str]:
    """part -> shard file, of a ``TrainShards`` run on its own (``shard_list`` set)."""
    path = f"{staging.rstrip('/')}/{SHARD_LIST}"
    if not FileSystems.exists(path):
        return {}
    lines = read_bytes(path).decode("utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line]
    return {int(r["part"]): r["index"] for r in rows}


def read_part_list(staging: str) -> list[dict]:
    """The parts (and IVF shard files) ``BuildIndexShards`` wrote, in part order: each
    ``{"part", "info", "files", "rescore_dtype", "index"}``."""
    path = f"{staging.rstrip('/')}/{PART_LIST}"
    if not FileSystems.exists(path):
        return []
    rows: dict[int, dict] = {}
    for line in read_bytes(path).decode("utf-8").splitlines():
        if line:
            row = json.loads(line)
            rows.setdefault(row["part"], {"index": None}).update(
                {k: v for k, v in row.items() if v is not None}
            )
    return [rows[p] for p in sorted(rows)]
