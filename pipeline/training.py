"""Training the index only when the job builds it in full.

An update keeps the live version's index (``indexes.updates.folder``): the quantizer the
pipeline would train, and the IVF shards it would fill with every vector, are thrown
away. So the index job's pipeline trains (``transforms.build_index.TrainShards``) only
when a rebuild is certain before it starts (``trains_up_front``: ``--rebuild``, no
version to update from, ``--index`` naming another index type than the live one's);
otherwise it saves the chosen spec alone, and the finish calls ``train_later`` if the
update must give way to a rebuild after all (the retraining policy, a recall drop,
compaction of an index that cannot remove ids, a live version that cannot be read).
``train_later`` runs the same steps as a second, small Beam pipeline over the part list
with the job's own pipeline options, so on a cluster it trains on the workers, and the
index comes out as the first pipeline would have built it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from corpusbeam.errors import JobError
from indexes.ann.spec import IndexSpec

__all__ = ["TRAIN_STAGING", "train_later", "trains_up_front"]

TRAIN_STAGING = "train"  # under the run's staging: what train_later's pipeline writes


def trains_up_front(
    *, reusable: bool, rebuild: bool, factory: str | None, live_factory: str | None
) -> bool:
    """Whether the job's pipeline trains the index: whenever the finish is sure to build
    it in full (``--rebuild``, nothing ``reusable`` to update from, ``factory`` naming
    another index type than the live version's ``live_factory``)."""
    return not reusable or rebuild or (factory is not None and factory != live_factory)


def train_later(
    *,
    pipeline_args: Sequence[str],
    staging: str,
    folder: str,
    spec: IndexSpec,
    parts: list[dict],
    seed: int = 0,
) -> tuple[IndexSpec, bytes, list[dict]]:
    """(the spec, the trained empty index, ``parts`` with their IVF shard files) of the
    parts the job wrote into ``folder``: ``TrainShards`` in a pipeline of its own over the
    part list (flat and graph indexes, which need no vectors to train, in this process)."""
    from transforms.build_index import train_without_data

    blob = train_without_data(spec, seed=seed)
    if blob is not None:
        return spec, blob, parts
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.build_index import TrainShards, load_trained, read_shard_list

    where = f"{staging.rstrip('/')}/{TRAIN_STAGING}"
    p = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
    refs = p | "Parts" >> beam.Create(parts)
    chosen = p | "Spec" >> beam.Create([asdict(spec)])
    _ = (refs, chosen) | "TrainShards" >> TrainShards(
        where, folder=folder, encoding=spec.encoding, seed=seed, shard_list=True
    )
    try:
        p.run().wait_until_finish()
    except Exception as exc:
        raise JobError(f"training the index for the rebuild failed: {exc}") from exc
    loaded = load_trained(where)
    if loaded is None or loaded[1] is None:
        raise JobError(f"training the index for the rebuild wrote nothing under {where}")
    shards = read_shard_list(where)
    return loaded[0], loaded[1], [{**ref, "index": shards.get(ref["part"])} for ref in parts]
