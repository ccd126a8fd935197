"""What the index job adds to a folder's manifest once it is assembled: which model
answered (``GET /info``), what the endpoint sent, how readers reach the endpoint (the
name of the key's environment variable, never the key, and the deployment header), and a
plain statement of what the vectors are and what the recall was measured against.

A binary folder with derived int8 rescoring vectors gets its recall twice: rescored (the
manifest's ``value``, as searches run by default) and ``unrescored`` (the bits alone),
both against exact search over the int8 vectors, i.e. float search's ranking. A binary
folder without them (``--wire-encoding ubinary``) can only be measured against exact
Hamming search, and its note says so and that it is unrescored.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from corpusbeam.inference.client import ModelInfo
from corpusbeam.inference.protocol import BIT_ENCODINGS
from indexes.building.evaluate import evaluate_folder
from indexes.storage.files import MANIFEST
from indexes.storage.manifest import Manifest

__all__ = ["finish_manifest", "vectors_note"]


def vectors_note(encoding: str, wire: str, rescored: bool) -> str:
    """One sentence: what the folder's vectors are and how it is searched."""
    if encoding in BIT_ENCODINGS and rescored:
        return (
            f"{encoding} bits and int8 rescoring vectors, both derived from one {wire} "
            "answer an input; searches rescore by default; recall measured against exact "
            "float search (over the int8 vectors), rescored and unrescored"
        )
    if encoding in BIT_ENCODINGS:
        return (
            f"unrescored: the endpoint sent {wire} bits only, so there are no float or "
            "int8 vectors to rescore with; recall is measured against exact Hamming "
            "search, not float search"
        )
    if encoding in ("int8", "uint8"):
        return f"{encoding} vectors as sent ({wire}); searches rescore with their own bytes"
    return f"float vectors ({wire}); recall measured against exact float search"


def finish_manifest(
    folder: Path,
    manifest: Manifest,
    *,
    info: ModelInfo,
    wire: str,
    rescored: bool,
    api_key_env: str | None = None,
    deployment: str | None = None,
) -> Manifest:
    """Rewrite ``folder``'s manifest with the model's info, the wire encoding, the note,
    how readers reach the endpoint (``api_key_env``: a variable's name; ``deployment``)
    and, for rescored binary folders, the unrescored recall. Returns the new manifest."""
    recall = manifest.recall
    if recall is not None and manifest.encoding in BIT_ENCODINGS and manifest.rescore:
        bits = evaluate_folder(
            folder,
            k=recall["k"],
            n_queries=recall["queries"],
            seed=1,  # the build's own queries (BuildConfig.seed + 1)
            rescore=False,
            latency_queries=0,
            verify=False,
        )
        recall = {**recall, "unrescored": bits[f"recall_at_{recall['k']}"]}
    finished = replace(
        manifest,
        recall=recall,
        model_info=info.to_dict(),
        wire_encoding=wire if wire != manifest.encoding else None,
        note=vectors_note(manifest.encoding, wire, rescored),
        api_key_env=api_key_env,
        deployment=deployment,
    )
    (folder / MANIFEST).write_text(finished.to_json())
    return finished
