"""``manifest.json``: what an index folder holds, enough to refuse the wrong one.

A frozen dataclass, written as sorted, indented JSON. ``Manifest.from_json`` validates
every field and raises IndexFolderError for anything missing, mistyped or from a newer
format; ``check_expected`` refuses a folder whose model, encoding or dimensions differ
from what the caller will query it with. The endpoint is stored without credentials
(user info, query string and fragment are dropped), and never with its key:
``api_key_env`` only names the environment variable that holds it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference import codec
from corpusbeam.inference.protocol import INPUT_TYPES
from indexes.storage.files import INDEX, MANIFEST

__all__ = ["FORMAT_VERSION", "LAYOUTS", "Manifest", "check_expected", "sanitize_endpoint"]

FORMAT_VERSION = 2
LAYOUTS = ("single", "ondisk", "shards")


def sanitize_endpoint(url: str | None) -> str | None:
    """An endpoint URL without user info, query string or fragment (where keys hide)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything a reader needs to check before trusting an index folder.

    ``files`` maps each file name (relative to the folder) to ``{"sha256", "bytes"}``;
    ``index_files`` names the FAISS file(s); ``parts`` lists the id-partitioned table parts
    (``indexes.storage.part_ranges.PartInfo``: ``name``, ``rows``, ``id_min``, ``id_max``,
    in id order);
    ``rescore`` is None or ``{"file"`` (each part's suffix), ``"dtype", "factor"}``;
    ``recall`` is None or ``{"k", "value", "queries", "reference", "source", "rescored"}``
    (binary folders with rescoring add ``unrescored``, the recall of their bits alone);
    ``lexical`` is None or the BM25 index's ``{"dir", "tokenizer", "k1", "b", "count",
    "terms", "postings", "segments", "removed"}`` (``indexes.lexical.segment``);
    ``overlay`` (layered tables, ``indexes.storage.layers``), ``model_info``, ``wire_encoding``,
    ``note``, ``api_key_env`` and ``deployment`` are left out when not set; ``digest`` is
    the sha256 of all other fields, so a reader detects an edited manifest (the other files
    are covered by ``files``).
    """

    model: str
    dimensions: int
    encoding: str
    index_factory: str
    count: int
    metric: str
    format_version: int = FORMAT_VERSION
    endpoint: str | None = None
    api_version: str | None = None
    input_type: str | None = None
    normalized: bool = False
    search_params: dict[str, int] = field(default_factory=dict)
    layout: str = "single"
    index_files: tuple[str, ...] = (INDEX,)
    rescore: dict | None = None
    recall: dict | None = None
    latency_ms: float | None = None
    parts: list[dict] = field(default_factory=list)
    lexical: dict | None = None
    files: dict[str, dict] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    # Added later: written only when set, so older manifests keep their digests.
    model_info: dict | None = None  # GET /info: name, type, provider (error if it failed)
    wire_encoding: str | None = None  # what the endpoint sent, when not ``encoding``
    note: str | None = None  # a plain statement of what the vectors are (e.g. unrescored)
    # An updated version (indexes.updates.folder): the main index's files are the version's
    # ``index_files``; ``delta``/``tombstones`` name the segment files and their counts;
    # ``trained`` says which version last trained (built) the main index, with how many
    # vectors and the recall measured then; ``added_since_training`` counts vectors added
    # since. None for a version built in full.
    segments: dict | None = None
    # Tables written as layers (indexes.storage.layers): ``parts`` are the base, shared with the
    # version that wrote them; ``overlay`` lists the delta parts and the removed ids'
    # files (``{"parts", "removed": [{"file", "count"}], "base"}``). None: no layers.
    overlay: dict | None = None
    # How readers reach ``endpoint`` without being told: the *name* of the environment
    # variable holding its key (never the key) and the azureml-model-deployment header.
    api_key_env: str | None = None
    deployment: str | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model", self.model, "must be a non-empty string")
        if isinstance(self.dimensions, bool) or not isinstance(self.dimensions, int):
            raise ConfigError("dimensions", self.dimensions, "must be an integer")
        codec.wire_width(self.encoding, self.dimensions)
        if self.input_type is not None and self.input_type not in INPUT_TYPES:
            raise ConfigError("input_type", self.input_type, f"must be one of {INPUT_TYPES}")
        if self.layout not in LAYOUTS:
            raise ConfigError("layout", self.layout, f"must be one of {LAYOUTS}")
        if self.metric not in ("inner_product", "hamming"):
            raise ConfigError("metric", self.metric, "must be inner_product or hamming")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ConfigError("count", self.count, "must be a non-negative integer")
        if not self.index_files:
            raise ConfigError("index_files", self.index_files, "names no index file")
        if self.endpoint is not None and sanitize_endpoint(self.endpoint) != self.endpoint:
            raise ConfigError("endpoint", "<redacted>", "must not carry credentials or a query")
        if self.api_key_env is not None and not _ENV_NAME.fullmatch(self.api_key_env):
            # A name, never a value: anything else is not written (it may be the key).
            raise ConfigError("api_key_env", "<redacted>", "must be an environment variable name")
        rows = sum(int(p.get("rows", 0)) for p in self.parts)
        if self.overlay is not None:
            try:
                delta = sum(int(p["rows"]) for p in self.overlay["parts"])
                gone = sum(int(r["count"]) for r in self.overlay.get("removed", []))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    "overlay", "<dict>", "needs parts[].rows, removed[].count"
                ) from None
            rows += delta - gone
        if (self.parts or self.overlay) and rows != self.count:
            raise ConfigError("parts", len(self.parts), f"their rows do not add up to {self.count}")
        if self.segments is not None:
            _check_segments(self.segments, self.count)
        object.__setattr__(self, "index_files", tuple(self.index_files))

    def _body(self) -> dict:
        data = asdict(self)
        data["index_files"] = list(self.index_files)
        data.pop("digest")
        for name in _OPTIONAL:
            if data[name] is None:
                del data[name]
        return data

    def compute_digest(self) -> str:
        """sha256 of every other field, canonical JSON: an edited manifest is detected."""
        canon = json.dumps(self._body(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

    def to_json(self) -> str:
        data = self._body()
        data["digest"] = self.compute_digest()
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexFolderError(f"{MANIFEST} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise IndexFolderError(f"{MANIFEST} must hold a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexFolderError(
                f"manifest format_version {version!r} is not supported (this reader: "
                f"{FORMAT_VERSION})"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise IndexFolderError(f"{MANIFEST} has unknown fields {unknown}")
        try:
            manifest = cls(**data)
        except (ConfigError, TypeError) as exc:
            raise IndexFolderError(f"{MANIFEST} is invalid: {exc}") from None
        if manifest.digest != manifest.compute_digest():
            raise IndexFolderError(f"{MANIFEST} was modified after it was written (digest)")
        return manifest


def _check_segments(seg: dict, count: int) -> None:
    """A segmented folder's counts must add up: main - tombstones + delta = count."""
    try:
        main = int(seg["main"]["count"])
        delta = int(seg["delta"]["count"])
        dead = int(seg["tombstones"]["count"])
        str(seg["delta"]["file"]), str(seg["tombstones"]["file"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "segments", "<dict>", "needs main.count, delta.file/count, tombstones.file/count"
        ) from None
    if main - dead + delta != count:
        raise ConfigError(
            "segments", f"{main} - {dead} + {delta}", f"main - tombstones + delta must be {count}"
        )


_OPTIONAL = (
    "model_info",
    "wire_encoding",
    "note",
    "segments",
    "overlay",
    "api_key_env",
    "deployment",
)


def check_expected(
    manifest: Manifest,
    *,
    encoding: str | None = None,
    model: str | None = None,
    dimensions: int | None = None,
) -> None:
    """Raise IndexFolderError if the folder was built for something else."""
    for name, want in (("encoding", encoding), ("model", model), ("dimensions", dimensions)):
        have = getattr(manifest, name)
        if want is not None and want != have:
            raise IndexFolderError(
                f"index folder was built with {name}={have!r}, expected {name}={want!r}"
            )
